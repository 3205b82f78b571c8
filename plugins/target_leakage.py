"""``target-leakage``: an input feature that is a copy of the label (or the label spread over a few features); for
``task: sequence``, targets that are the very tokens the model sees.

A label left in the input columns (a DataFrame whose target column was not dropped, a label-derived column such as
``diagnosis_code``, a one-hot of the class kept among the features) lets the model score almost perfectly from the
first steps while learning nothing that holds outside this dataset. The sequence form of the same mistake is a
language model's dataset that forgot to shift its targets (``return chunk, chunk`` instead of ``chunk[:-1],
chunk[1:]``): every position is scored against the token it already reads. Reads the inputs the one data pass
cached; no training beyond a logistic regression on the other features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.trainer import rounded as _r


class Settings(CheckSettings):
    accuracy: float = Field(0.99, gt=0.5, le=1, description="A feature alone must predict at least this share of the "
                            "held-out labels (R² for regression) ...")
    error_cut: float = Field(0.9, gt=0, le=1, description="... removing at least this share of the errors of "
                             "always predicting the most frequent class ...")
    margin: float = Field(0.02, ge=0, lt=1, description="... while a logistic (or linear) model on all the other "
                          "features falls at least this far short of it.")
    train_samples: int = Field(5000, ge=50, description="Training samples the per-feature rules are fit on.")
    eval_samples: int = Field(2000, ge=20, description="Held-out samples they are scored on.")
    max_features: int = Field(4096, ge=2, description="Inputs with more values per sample are not examined.")


CODES = (
    CodeDoc(
        code="SC1801", title="The label is copied into an input feature", severity="warning",
        what="Flattens each input into features (tabular columns, or pixels) and fits, per feature, the simplest "
        "rule on training samples (up to 5000): the most frequent class for each distinct value (64 or fewer "
        "distinct values) or for each of 32 quantile bins; for regression, the mean target per bin. Each rule is "
        "scored on held-out samples (up to 2000 of the validation split, or a disjoint quarter of train). It also "
        "looks for the label spread over a few features, one per class (a one-hot of the label): features whose "
        "rule tells one class from the rest on 99% of held-out samples, covering every class but at most one. "
        "Decision rule: warning when a feature's rule (or that set of features) predicts at least 99% of the "
        "held-out labels (R² 0.99), removes at least 90% of the errors of always predicting the most frequent "
        "class, and a logistic regression (linear for regression) on all the other features scores at least 2 "
        "points less: when the other features separate the classes as well, nothing is suspicious. The features "
        "are named by their index in the flattened input.",
        why="A feature that is the label makes the task trivial on this data: training and validation scores look "
        "perfect from the first steps, and the model learns to read that column instead of the signal, so it "
        "fails on real inputs where the column is absent or unknown at prediction time.",
        example="features = df.drop(columns=['id']) that keeps the 'target' column; a 'diagnosis' column next to "
        "the 'malignant' label it was derived from; a one-hot of the class left among the inputs.",
        fix="Drop the named feature(s) from the inputs (or compute them only from what is known at prediction "
        "time), and check the column list the dataset builds its inputs from.",
    ),
    CodeDoc(
        code="SC1802", title="The targets are tokens the model already reads", severity="error",
        what="task: sequence. Position t of the outputs is scored against target t + s, where s is the shift the "
        "loss applies (0 for a loss given in the config; 1 when a model computing its own loss shifts labels == "
        "input_ids inside, as Hugging Face causal LMs do, found by matching its loss). On up to 5000 training "
        "sequences it counts the scored positions (targets not negative and not the loss's ignore_index) whose "
        "target equals the input token at the same position, and at the one before. Decision rule: error when "
        "either share is at least 99% (the accuracy setting). Skipped when the model computes its own loss and "
        "it is not a cross-entropy sanitycheck can match (the shift is then unknown).",
        why="A language model's target at position t is the next token, which a causal model has not read yet. "
        "A target equal to the input at t (or before) is copied, not predicted: the loss falls to zero within "
        "a few hundred steps and the model learns nothing about the text.",
        example="A Dataset returning (chunk, chunk) instead of (chunk[:-1], chunk[1:]); labels = input_ids passed "
        "to a model that does not shift them inside; targets built with torch.roll in the wrong direction.",
        fix="Make the target at position t the token at t + 1: x, y = chunk[:-1], chunk[1:] (nanoGPT's get_batch: "
        "y = data[i + 1:i + 1 + block_size]), or pass labels == input_ids only to a model whose loss shifts them.",
    ),
)


class TargetLeakage(Check):
    name = "target-leakage"
    summary = ("an input feature that is a copy of the label (or a one-hot of it), or, for sequences, targets that "
               "are the tokens the model reads: the task is trivially solved")
    cost = "about a second for tabular data: per-feature rules on up to 5000 samples and one logistic regression"
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        if ctx.task == "sequence":
            yield from self._sequence(ctx, settings)
            return
        if ctx.task not in ("classification", "regression"):
            self.skip(f"per-feature rules need one label per sample (task is {ctx.task})")
        train_idx, eval_split, eval_idx = _subsets(ctx, settings)
        if len(train_idx) < 50 or len(eval_idx) < 20:
            self.skip(f"too few samples ({len(train_idx)} to fit, {len(eval_idx)} to score)")
        x, xv = _features(ctx.train, train_idx), _features(eval_split, eval_idx)
        if x is None or xv is None or x.shape[1] != xv.shape[1]:
            self.skip("the inputs are not equally shaped numeric arrays")
        if x.shape[1] < 2 or x.shape[1] > settings.max_features:
            self.skip(f"{x.shape[1]} input values per sample (examined: 2 to {settings.max_features})")
        if ctx.task == "classification":
            y, yv = ctx.class_labels(ctx.train), ctx.class_labels(eval_split)
            if y is None or yv is None:
                self.skip("the targets are not one class label per sample")
            y, yv = y[train_idx], yv[eval_idx]
            keep, keep_v = y >= 0, yv >= 0
            x, y, xv, yv = x[keep], y[keep], xv[keep_v], yv[keep_v]
            if len(y) < 50 or len(yv) < 20:  # e.g. float targets under task: classification (data-integrity: SC808)
                self.skip(f"too few samples with a class label ({len(y)} to fit, {len(yv)} to score)")
            yield from self._classification(x, y, xv, yv, settings, eval_split.name, ctx)
        else:
            t, tv = ctx.train.data_pass().targets, eval_split.data_pass().targets
            if t is None or tv is None or t.ndim != 1 and not (t.ndim == 2 and t.shape[1] == 1):
                self.skip("the targets are not one number per sample")
            y, yv = t.reshape(len(t), -1)[train_idx, 0].astype(np.float64), tv.reshape(len(tv), -1)[eval_idx, 0]
            yield from self._regression(x, y, xv, yv.astype(np.float64), settings, eval_split.name, ctx)

    # ------------------------------------------------------------------------------------ classification

    def _classification(self, x, y, xv, yv, settings: Settings, split: str, ctx: Any):
        classes = int(max(y.max(), yv.max())) + 1
        if len(np.unique(y)) < 2:
            return
        majority = float(np.bincount(yv, minlength=classes).max() / len(yv))
        candidates = np.flatnonzero(_rank_eta2(x, y, classes) >= PREFILTER)
        scores, predictions = {}, {}
        for j in candidates:
            predictions[j] = _apply_rule(_fit_rule(x[:, j], y, classes), xv[:, j])
            scores[j] = float((predictions[j] == yv).mean())
        good = lambda acc: acc >= settings.accuracy and (1 - acc) <= (1 - settings.error_cut) * (1 - majority)  # noqa: E731
        single = sorted((j for j in candidates if good(scores[j])), key=lambda j: -scores[j])
        groups = [] if single else _one_hot_groups(predictions, yv, classes, settings.accuracy)
        suspects = sorted(set(single) | {j for features, _ in groups for j in features})
        found = [([j], scores[j]) for j in single] or [g for g in groups if good(g[1])]
        if not found:
            return
        rest = np.setdiff1d(np.arange(x.shape[1]), suspects)  # without every copy of the label
        rest_score = _rest_score(x[:, rest], y, xv[:, rest], yv, classes, "classification",
                                 ctx.derived_seed("target-leakage"))
        found = [(f, a) for f, a in found if rest_score is None or rest_score <= a - settings.margin]
        if found:  # else the other features separate the classes as well: an easy task, not a leak
            yield self._finding(found, rest_score, len(rest), majority, "accuracy", split, len(yv), len(y), settings)

    # ------------------------------------------------------------------------------------ regression

    def _regression(self, x, y, xv, yv, settings: Settings, split: str, ctx: Any):
        total = float(((yv - yv.mean()) ** 2).sum())
        if total <= 0:
            return
        candidates = np.flatnonzero(np.abs(_rank_corr(x, y)) >= 0.9)
        scores = {j: 1 - float(((_bin_means(x[:, j], y, xv[:, j]) - yv) ** 2).sum()) / total for j in candidates}
        suspects = sorted((j for j in candidates if scores[j] >= settings.accuracy), key=lambda j: -scores[j])
        if not suspects:
            return
        rest = np.setdiff1d(np.arange(x.shape[1]), suspects)
        rest_score = _rest_score(x[:, rest], y, xv[:, rest], yv, 0, "regression", 0)
        found = [([j], scores[j]) for j in suspects if rest_score is None or rest_score <= scores[j] - settings.margin]
        if found:
            yield self._finding(found, rest_score, len(rest), 0.0, "R²", split, len(yv), len(y), settings)

    # ------------------------------------------------------------------------------------------ sequences

    def _sequence(self, ctx: Any, settings: Settings):
        from sanitycheck.pipeline.losses import ModelLoss

        loss = ctx.loss_fn
        if isinstance(loss, ModelLoss) and loss.kind == "unknown":
            self.skip("the model computes its own loss and it is not a cross-entropy sanitycheck can match, so which "
                      "target each position is scored against is unknown")
        data = ctx.train.data_pass()
        x, y = data.inputs, data.targets
        if x is None or y is None or x.ndim != 2 or x.shape != y.shape:
            self.skip("the inputs and targets are not equally long token sequences held by the data pass")
        if not ctx.inputs_are_token_ids():
            self.skip("the inputs are not token ids")
        rows = ctx.sample_indices(ctx.train, settings.train_samples, "target-leakage:train")
        shift, ignore = int(getattr(loss, "shift", 0) or 0), getattr(loss, "ignore_index", None)
        x, y = x[rows].astype(np.int64), y[rows].astype(np.int64)
        shares = {}
        for back in (0, 1):  # the input at the scored position, and the one before it
            target, seen = y[:, shift + back:], x[:, :x.shape[1] - shift - back]
            counted = (target >= 0) & ((target != ignore) if ignore is not None else True)
            if counted.sum():
                shares[back] = float((target == seen)[counted].mean())
        if not shares:
            return
        back = max(shares, key=shares.get)
        if shares[back] < settings.accuracy:
            return
        where = "at the same position" if back == 0 else "one position earlier"
        yield self.finding(
            "SC1802", f"At {shares[back]:.1%} of the scored positions of {len(rows)} training sequences the target "
            f"is the input token {where}"
            + (f" (with the shift by {shift} the model's loss applies)" if shift else "") + ": the model is asked to "
            "copy a token it already reads, not to predict the next one. The targets are not shifted by one.",
            evidence={"share": _r(shares[back]), "shares": {("same position" if b == 0 else "one before"): _r(v)
                                                            for b, v in shares.items()},
                      "loss_shift": shift, "sequences": len(rows), "threshold": settings.accuracy},
        )

    def _finding(self, found: list[tuple[list[int], float]], rest_score: float | None, n_rest: int, majority: float,
                 metric: str, split: str, n_eval: int, n_train: int, settings: Settings):
        features = [j for f, _ in found for j in f]
        score = max(a for _, a in found)
        named = ", ".join(str(int(j)) for j in features)
        if len(found) > 1:
            what = f"Input features {named} each alone"
        elif len(features) == 1:
            what = f"Input feature {named} alone"
        else:
            what = f"Input features {named}, one per class (a one-hot of the label), together"
        if metric == "accuracy":
            scored = (f"predict{'s' if len(features) == 1 else ''} {score:.1%} of the {n_eval} held-out ({split}) labels (always predicting the most frequent "
                      f"class: {majority:.1%})")
            rest = (f"a logistic regression on all the other {n_rest} features reaches {rest_score:.1%}"
                    if rest_score is not None else "there are no other features")
        else:
            scored = f"explain{'s' if len(features) == 1 else ''} the {n_eval} held-out ({split}) targets with R² {score:.3f}"
            rest = (f"a linear model on all the other {n_rest} features reaches R² {rest_score:.3f}"
                    if rest_score is not None else "there are no other features")
        return self.finding(
            "SC1801", f"{what} {scored} with a rule fit on {n_train} training samples, while {rest}. The label "
            "looks copied into the inputs.",
            evidence={"features": [int(j) for j in features],
                      "scores": {",".join(str(int(j)) for j in f): _r(a) for f, a in found}, "metric": metric,
                      "rest_score": _r(rest_score) if rest_score is not None else None,
                      "majority_baseline": _r(majority) if metric == "accuracy" else None, "eval_split": split,
                      "eval_samples": n_eval, "train_samples": n_train, "other_features": n_rest,
                      "threshold": settings.accuracy, "margin": settings.margin},
        )


# ------------------------------------------------------------------------------------------------ helpers


def _subsets(ctx: Any, settings: Settings) -> tuple[np.ndarray, Any, np.ndarray]:
    """(training indices, the held-out split, its indices): the validation split, else a disjoint quarter of train."""
    if ctx.val is not None:
        return (ctx.sample_indices(ctx.train, settings.train_samples, "target-leakage:train"), ctx.val,
                ctx.sample_indices(ctx.val, settings.eval_samples, "target-leakage:eval"))
    pool = ctx.rng("target-leakage:holdout").permutation(ctx.usable_indices(ctx.train))
    n_eval = min(settings.eval_samples, len(pool) // 4)
    return np.sort(pool[n_eval:n_eval + settings.train_samples]), ctx.train, np.sort(pool[:n_eval])


def _features(split: Any, indices: np.ndarray) -> np.ndarray | None:
    try:
        x = np.asarray(split.inputs(indices))
    except Exception:  # inputs of different shapes, or not arrays
        return None
    if not np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_:
        x = x.astype(np.float64) if x.dtype == np.bool_ else None
    if x is None or len(x) == 0:
        return None
    x = x.reshape(len(x), -1).astype(np.float64)
    x[~np.isfinite(x)] = 0.0  # in place: a second copy of 5000 images as float64 is 123 MB more
    return x


#: Only features whose ranks carry at least this share of their variance between the classes (correlation ratio
#: eta² of the ranks; 1 for any function of the class) get a rule: a cheap screen that keeps every near-perfect one.
PREFILTER = 0.3


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=0)


#: Features ranked at a time: ranking copies its block several times (float64 ranks, int64 sort orders), so a
#: block of 5000 samples x 256 features keeps that under 50 MB where the whole 5000 x 3072 image took 630 MB.
RANK_BLOCK = 256


def _by_blocks(fn: Any, x: np.ndarray, *args: Any) -> np.ndarray:
    """``fn(x[:, block], *args)`` over blocks of :data:`RANK_BLOCK` features, concatenated."""
    return np.concatenate([fn(x[:, lo:lo + RANK_BLOCK], *args) for lo in range(0, x.shape[1], RANK_BLOCK)])


def _rank_eta2(x: np.ndarray, y: np.ndarray, classes: int) -> np.ndarray:
    """Per feature, the correlation ratio of its ranks with the class: between-class over total variance."""
    if x.shape[1] > RANK_BLOCK:
        return _by_blocks(_rank_eta2, x, y, classes)
    r = _ranks(x)
    r -= r.mean(0)
    total = (r ** 2).sum(0)
    sums = np.zeros((classes, r.shape[1]))
    np.add.at(sums, y, r)
    counts = np.bincount(y, minlength=classes)[:, None]
    between = (sums ** 2 / np.maximum(counts, 1)).sum(0)
    return np.where(total > 0, between / np.where(total > 0, total, 1), 0.0)


def _rank_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per feature, Spearman's rank correlation with the target."""
    if x.shape[1] > RANK_BLOCK:
        return _by_blocks(_rank_corr, x, y)
    r = _ranks(x)
    r -= r.mean(0)
    t = _ranks(y[:, None])[:, 0]
    t -= t.mean()
    norm = np.sqrt((r ** 2).sum(0) * (t ** 2).sum())
    return np.where(norm > 0, (r * t[:, None]).sum(0) / np.where(norm > 0, norm, 1), 0.0)


#: Features with at most this many distinct training values map each value to a class; others use quantile bins.
MAX_VALUES = 64
BINS = 32


def _fit_rule(column: np.ndarray, y: np.ndarray, classes: int) -> tuple[str, np.ndarray, np.ndarray, int]:
    """The majority class per distinct value (few values) or per quantile bin: (kind, keys, classes, fallback)."""
    fallback = int(np.bincount(y, minlength=classes).argmax())
    values = np.unique(column)
    if len(values) <= MAX_VALUES:
        keys, codes = values, np.searchsorted(values, column)
        kind = "values"
    else:
        keys = np.unique(np.quantile(column, np.linspace(0, 1, BINS + 1)[1:-1]))
        codes, kind = np.searchsorted(keys, column, side="right"), "bins"
    counts = np.zeros((len(keys) + 1, classes))
    np.add.at(counts, (codes, y), 1)
    best = np.where(counts.sum(1) > 0, counts.argmax(1), fallback)
    return kind, keys, best, fallback


def _apply_rule(rule: tuple[str, np.ndarray, np.ndarray, int], column: np.ndarray) -> np.ndarray:
    kind, keys, best, fallback = rule
    if kind == "bins":
        return best[np.searchsorted(keys, column, side="right")]
    pos = np.clip(np.searchsorted(keys, column), 0, len(keys) - 1)
    return np.where(keys[pos] == column, best[pos], fallback)


def _bin_means(column: np.ndarray, y: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Regression's simplest rule: the mean training target of each quantile bin (or distinct value)."""
    keys = np.unique(column) if len(np.unique(column)) <= MAX_VALUES else \
        np.unique(np.quantile(column, np.linspace(0, 1, BINS + 1)[1:-1]))
    side = "left" if len(keys) == len(np.unique(column)) else "right"
    codes = np.searchsorted(keys, column, side=side)
    sums, counts = np.zeros(len(keys) + 1), np.zeros(len(keys) + 1)
    np.add.at(sums, codes, y)
    np.add.at(counts, codes, 1)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), y.mean())
    return means[np.searchsorted(keys, query, side=side)]


def _one_hot_groups(predictions: dict[int, np.ndarray], yv: np.ndarray, classes: int,
                    accuracy: float) -> list[tuple[list[int], float]]:
    """The label spread over features, one per class: for each class the best feature whose rule tells it from the
    rest on ``accuracy`` of the held-out samples; when every class but at most one has one, the decision list of those
    features and its held-out accuracy."""
    present = [k for k in range(classes) if (yv == k).sum() >= 2]
    owners: dict[int, int] = {}
    for k in present:
        truth = yv == k
        best_j, best = None, accuracy
        for j, pred in predictions.items():
            hit = float(((pred == k) == truth).mean())
            if hit >= best and (pred == k).any():
                best_j, best = j, hit
        if best_j is not None:
            owners[k] = best_j
    if len(present) < 2 or len(owners) < len(present) - 1 or len(set(owners.values())) < 2:
        return []
    missing = [k for k in present if k not in owners]
    rest = missing[0] if missing else int(np.bincount(yv, minlength=classes).argmax())
    combined = np.full(len(yv), -1)
    for k, j in owners.items():  # a decision list: the first feature that claims a sample decides it
        combined = np.where((combined == -1) & (predictions[j] == k), k, combined)
    combined = np.where(combined == -1, rest, combined)
    return [(sorted(set(owners.values())), float((combined == yv).mean()))]


def _rest_score(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, classes: int, task: str,
                seed: int) -> float | None:
    """Held-out accuracy of a logistic regression (R² of a ridge regression) on the given features."""
    if x.shape[1] == 0:
        return None
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    x, xv = (x - mean) / std, (xv - mean) / std
    if task == "regression":
        a = np.c_[x, np.ones(len(x))]
        w = np.linalg.solve(a.T @ a + 1e-3 * np.eye(a.shape[1]), a.T @ y)
        pred = np.c_[xv, np.ones(len(xv))] @ w
        total = float(((yv - yv.mean()) ** 2).sum())
        return 1 - float(((pred - yv) ** 2).sum()) / total if total > 0 else None
    from sanitycheck.probing.probes import fit_mlp, predict_proba
    from sanitycheck.probing.numerics import flush_denormal

    with flush_denormal():
        model = fit_mlp(x.astype(np.float32), y, classes, epochs=30, hidden=0, seed=seed)
        return float((predict_proba(model, xv.astype(np.float32)).argmax(1) == yv).mean())


@hookimpl
def sanitycheck_checks():
    return [TargetLeakage()]
