"""``influence``: training samples whose label is probably wrong, and samples with unusual influence.

Label issues come from out-of-fold predictions on the shared embedding (confident learning, Northcutt et al.
2021, plus a below-chance rule; see SC701). Influence is TracIn-style (Pruthi et al. 2020) on the shared
reference model's last linear layer (SC702).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.engine.threads import torch_threads
from sanitycheck.probing.budget import mlp_threads
from sanitycheck.probing.trainer import rounded as _r

#: Thumbnails attached to a finding (they travel inside the JSON report).
THUMBNAILS = 12


class Settings(CheckSettings):
    folds: int = Field(5, ge=2, description="Folds of the out-of-fold predictions.")
    epochs: int = Field(20, ge=1, description="Epochs of each fold's classifier on the embedding (scaled by "
                                              "the profile, at least 5).")
    hidden: int = Field(256, ge=0, description="Hidden units of the fold classifier (0 = logistic regression).")
    alpha: float = Field(0.001, gt=0, lt=0.5, description="Significance level of the excess over the classifier's own "
                         "errors (one-sided Fisher exact test, Bonferroni over the 5 looks).")
    min_excess: float = Field(0.002, ge=0, lt=1, description="... and the excess must be at least this share of the "
                              "training samples (and at least 5 samples) for a warning.")
    influential: bool = Field(True, description="Also rank samples by TracIn influence (SC702; trains the shared "
                                                "reference model if no other check has).")
    top_k: int = Field(10, ge=1, description="How many of the most influential samples to report (SC702).")


CODES = (
    CodeDoc(
        code="SC701", title="Likely mislabeled training samples", severity="warning",
        what="Labels are class ids: one per sample, a (N, 1) column of 0/1 (binary BCEWithLogitsLoss) or one-hot "
        "rows. Every training sample gets class probabilities from a small classifier (an MLP on the shared "
        "embedding, averaged with the vote of its 10 nearest inputs) that never saw it: 5-fold, stratified, seeded. "
        "A sample is flagged when (a) confident learning says so: some other class k reaches its own threshold t_k "
        "(the mean probability of class k over the samples labeled k) and is the most probable such class; or (b) "
        "the given label gets less than chance, p(given) < 1/C, and another class is the most probable. Every "
        "classifier makes such mistakes on correct labels, so flags alone prove nothing (a 97.8%-accurate model "
        "misses 10 of 455 clean breast-cancer samples, a 45%-accurate one on CIFAR-10 pixels most of them). The "
        "classifier's own error rate is measured on the validation split: each validation sample is scored the "
        "same way (one fold model, the vote of its 10 nearest training inputs, the same thresholds). Decision "
        "rule: warning when the training split has significantly more suspicious labels than the validation "
        "split, in one of 5 looks: the flagged share, or the share whose p(given) lies below the pooled 0.5%, 1%, "
        "2% or 5% quantile of p(given) (one-sided Fisher exact tests, Bonferroni-corrected, p < 0.001), with an "
        "excess of at least 5 samples and 0.2% of the training split. The listed samples are the flagged ones "
        "(below the quantile when a quantile look decided), most suspicious first; the suggested label is the "
        "class from (a), else the most probable one; the score is p(suggested) - p(given). Info, not a warning, "
        "when the excess is not significant, and without a validation split (nothing to compare with).",
        why="Wrong labels teach the model wrong answers, cap its accuracy, and make validation metrics lie; a few "
        "percent of flipped labels is common in hand-labeled data.",
        example="4% of the digits relabeled at random: the flagged samples are mostly exactly those.",
        fix="Review the flagged samples (most suspicious first) and relabel or drop them; if many are wrong, audit "
        "the labeling process (a class-index mapping off by one, a shifted label file).",
    ),
    CodeDoc(
        code="SC702", title="Most influential training samples", severity="info",
        what="TracIn-style influence at the end of the shared reference training: for each training sample of the "
        "reference subset, the dot product of its loss gradient with the held-out samples' loss gradients, with "
        "respect to the model's last linear layer (exact for that layer: (p - y) outer h). Positive: training on "
        "it lowers the held-out loss (proponent); negative: raises it (opponent). The top-k by absolute influence "
        "are reported, and the self-influence (squared gradient norm) ranks samples the model finds hard.",
        why="Samples with outsized influence steer the model; strong opponents are often mislabeled or atypical.",
        example="A training 7 labeled 1 is a strong opponent of the held-out 1s.",
        fix="Look at the listed samples; relabel or remove the ones that are wrong.",
    ),
)


class Influence(Check):
    name = "influence"
    summary = "likely mislabeled training samples (out-of-fold confident learning) and the most influential ones"
    cost = "about 1 s per 1000 training samples (5-fold MLP on the shared embedding) + the shared reference training"
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        if ctx.task == "sequence":
            self.skip("task: sequence: the targets are the next tokens of a text (or per-position tags), not "
                      "per-sample labels that an annotator could have got wrong; mislabeling and per-sample "
                      "influence are not defined for them")
        if ctx.task != "classification":
            self.skip("label issues need class labels (task is not classification)")
        # class ids from scalar labels, (n, 1) columns (binary BCEWithLogitsLoss) and one-hot rows
        labels = ctx.class_labels(ctx.train)
        if labels is None or not (labels >= 0).any():
            self.skip("the training targets are not one class label per sample")
        classes = max(ctx.class_limit or ctx.num_classes or 0, int(labels.max()) + 1)
        if classes < 2:
            self.skip("the number of classes is unknown")
        yield from self._label_issues(ctx, settings, labels, classes)
        if settings.influential and ctx.train.data_pass().targets.ndim == 1:  # TracIn's closed form reads class ids
            yield from self._influential(ctx, settings, classes)

    # --------------------------------------------------------------------------------- label issues

    def _label_issues(self, ctx: Any, settings: Settings, targets: np.ndarray, classes: int):
        from sanitycheck.probing.embedding import EmbeddingUnavailable, embedding

        try:
            features = embedding(ctx, ctx.train)
        except EmbeddingUnavailable as exc:
            self.skip(f"the training inputs cannot be embedded: {exc}")
        usable = ctx.usable_indices(ctx.train)
        usable = usable[(targets[usable] >= 0) & (targets[usable] < classes)]  # a fractional label is no class id
        labels = targets[usable].astype(np.int64)
        present = np.unique(labels)
        if len(usable) < 10 * settings.folds or len(present) < 2:
            self.skip(f"needs at least {10 * settings.folds} labeled training samples in 2 or more classes for "
                      f"{settings.folds}-fold predictions (has {len(usable)} in {len(present)})")
        neighbor_proba = _neighbor_proba(ctx, targets, usable, classes)
        val = _validation(ctx, features[usable], labels, classes)
        epochs, budget = _epochs(ctx, settings, len(usable), features.shape[1], classes)
        with torch_threads(mlp_threads(ctx, features.shape[1], settings.hidden, classes, MLP_BATCH)):
            result = label_issues(features[usable], labels, classes, folds=settings.folds, epochs=epochs,
                                  hidden=settings.hidden, seed=ctx.derived_seed("influence:folds"),
                                  neighbor_proba=neighbor_proba, val=val, alpha=settings.alpha,
                                  min_excess=settings.min_excess, device=ctx.device)
        own = result["own_errors"]
        chosen = result["listed"]
        if not len(chosen) or (own is not None and own["excess"] <= 0):
            return
        order = chosen[np.argsort(-result["score"][chosen], kind="stable")]
        idx = usable[order]
        given, suggested = labels[order], result["suggested"][order]
        share = len(order) / len(usable)
        pairs: dict[str, int] = {}
        for g, s in zip(given.tolist(), suggested.tolist()):
            pairs[f"{g}->{s}"] = pairs.get(f"{g}->{s}", 0) + 1
        from sanitycheck.probing.thumbnails import thumbnail

        common = ", ".join(f"{k} ({v})" for k, v in sorted(pairs.items(), key=lambda kv: -kv[1])[:5])
        head = (f"{len(order)} of {len(usable)} training samples ({share:.1%}) get little probability for their label "
                f"from a classifier that never saw them and prefer another class (out-of-fold accuracy on the given "
                f"labels {result['accuracy']:.1%}).")
        if own is None:
            severity = "info"
            verdict = (" There is no validation split to measure the classifier's own error rate on, so this cannot "
                       "tell label errors from its mistakes.")
        elif own["significant"]:
            severity = "warning"
            verdict = (f" That is {own['excess']:.0f} more than the classifier's own errors explain: {own['what']} "
                       f"{own['train_rate']:.2%} of the training samples and {own['val_rate']:.2%} of the "
                       f"{own['val_samples']} validation samples (Fisher exact test, p = {own['p_value']:.2g} after "
                       "5 looks).")
        else:
            severity = "info"
            # p is Bonferroni-corrected: a p of 0.005 is more than its mistakes usually give, but not the rule's proof
            hint = own["p_value"] < 0.05
            verdict = ((" Somewhat more than the classifier's own errors predict, but short of the warning's rule "
                        f"(p < {settings.alpha:g}): " if hint else
                        " About what the classifier's own errors predict: ")
                       + f"{own['what']} {own['train_rate']:.2%} of the training samples and {own['val_rate']:.2%} of "
                       f"the validation samples (p = {own['p_value']:.2g}"
                       + (" after 5 looks): the most suspicious are listed for a look." if hint else
                          "): no sign of label errors beyond its mistakes; the most suspicious are listed for a look."))
        thumbs = [t for t in (thumbnail(ctx, "train", int(i), f"given {g} / suggested {s}")
                              for i, g, s in zip(idx[:THUMBNAILS], given, suggested)) if t is not None]
        yield self.finding(
            "SC701", head + verdict + f" Most common given -> suggested: {common}.",
            severity=severity,
            samples={"train": [int(i) for i in idx[:1000]]},
            evidence={
                "flagged": len(order), "examined": len(usable), "flagged_fraction": _r(share),
                "out_of_fold_accuracy": _r(result["accuracy"]), "folds": settings.folds, **budget,
                "class_thresholds": [_r(t) for t in result["thresholds"]],
                "own_errors": own,
                "top": [{"index": int(i), "given": int(g), "suggested": int(s), "score": _r(float(sc)),
                         "p_given": _r(float(pg))}
                        for i, g, s, sc, pg in zip(idx[:50], given, suggested, result["score"][order],
                                                   result["p_given"][order])],
                "given_to_suggested": pairs, "thumbnails": thumbs,
            },
        )

    # --------------------------------------------------------------------------------- influence

    def _influential(self, ctx: Any, settings: Settings, classes: int):
        from sanitycheck.pipeline.losses import loss_kind
        from sanitycheck.probing.trainer import eval_split_of, reference_model, reference_plan

        if loss_kind(ctx.loss_fn) not in ("cross_entropy", "nll"):
            return  # the closed-form last-layer gradient below is the softmax cross-entropy's
        ref = reference_model(ctx)
        plan = reference_plan(ctx)
        train_g = _last_layer_grads(ctx, ref.model, ctx.train, ref.indices, classes)
        eval_g = _last_layer_grads(ctx, ref.model, eval_split_of(ctx, plan), plan.eval_indices, classes)
        if train_g is None or eval_g is None:
            return
        (gt, ht), (gv, hv) = train_g, eval_g
        # <grad_i, grad_v> for a linear layer = <g_i, g_v> * (<h_i, h_v> + 1): weights and bias together;
        # minus: a gradient step on i lowers eval loss. Computed on the device the gradients are on.
        influence = (-(((gt @ gv.T) * (ht @ hv.T + 1.0)).mean(1))).cpu().numpy()
        self_influence = ((gt * gt).sum(1) * ((ht * ht).sum(1) + 1.0)).cpu().numpy()
        top = np.argsort(-np.abs(influence), kind="stable")[:settings.top_k]
        hard = np.argsort(-self_influence, kind="stable")[:settings.top_k]
        idx = ref.indices
        labels = ctx.train.data_pass().targets
        yield self.finding(
            "SC702", f"The {len(top)} training samples (of the {len(idx)} the reference model trained on) with the "
            f"largest influence on the held-out loss: {sum(influence[top] < 0)} opponents (training on them raises "
            f"it), {sum(influence[top] > 0)} proponents.",
            samples={"train": [int(idx[i]) for i in top]},
            evidence={
                "method": "TracIn, last linear layer, final checkpoint",
                "top": [{"index": int(idx[i]), "label": int(labels[idx[i]]), "influence": _r(float(influence[i]))}
                        for i in top],
                "self_influence_top": [{"index": int(idx[i]), "self_influence": _r(float(self_influence[i]))}
                                       for i in hard],
                "influence_median_abs": _r(float(np.median(np.abs(influence)))),
            },
        )


def label_issues(x: np.ndarray, labels: np.ndarray, classes: int, *, folds: int, epochs: int, hidden: int,
                 seed: int, neighbor_proba: np.ndarray | None = None, val: dict | None = None, alpha: float = 0.001,
                 min_excess: float = 0.002, device: Any = None) -> dict[str, Any]:
    """The SC701 rule on features ``x`` and given ``labels``: flags, suggested labels, scores, and the comparison
    with the classifier's own errors on ``val`` (see the CodeDoc); the classifiers train on ``device``.

    ``neighbor_proba`` (leave-one-out k-NN label frequencies, rows aligned with ``labels``) is averaged with the
    out-of-fold MLP's probabilities: the two err on different samples (measured on digits with 4% flipped
    labels: precision 0.79/0.76/0.80 for the MLP alone, 0.89/0.92/0.95 for the average, recall 0.95-1.0).
    ``val`` (from :func:`_validation`): the validation split's features ``x``, labels ``labels`` and k-NN label
    frequencies ``neighbor_proba``, scored the same way to measure the classifier's own error rate.
    """
    from sanitycheck.probing.probes import out_of_fold_proba

    out = out_of_fold_proba(x, labels, classes, folds=folds, epochs=epochs, hidden=hidden, seed=seed,
                            also=None if val is None else val["x"], device=device)
    proba, val_folds = (out, None) if val is None else out
    if neighbor_proba is not None:
        proba = (proba + neighbor_proba) / 2
    n = len(labels)
    rows = np.arange(n)
    p_given = proba[rows, labels]
    # confident-learning thresholds: the mean self-confidence of each class (1.0 = unreachable for absent classes)
    thresholds = np.array([proba[labels == k, k].mean() if (labels == k).any() else 1.0 for k in range(classes)])
    flagged, suggested = _flags(proba, labels, thresholds, classes)
    result = {"flagged": flagged, "suggested": suggested, "p_given": p_given,
              "score": proba[rows, suggested] - p_given, "thresholds": thresholds,
              "accuracy": float((proba.argmax(1) == labels).mean()), "proba": proba,
              "own_errors": None, "listed": np.flatnonzero(flagged)}
    if val is not None and len(val["labels"]) >= 10:
        m = len(val["labels"])
        vp = val_folds[np.arange(m) % val_folds.shape[0], np.arange(m)]  # one fold model per sample, like the folds
        if val.get("neighbor_proba") is not None:
            vp = (vp + val["neighbor_proba"]) / 2
        v_flagged, _ = _flags(vp, val["labels"], thresholds, classes)
        own, listed = own_errors(p_given, flagged, vp[np.arange(m), val["labels"]], v_flagged, alpha, min_excess)
        result["own_errors"], result["listed"] = own, listed
    return result


def _flags(proba: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(flagged, suggested) by the confident-learning and below-chance rules of SC701."""
    confident = proba >= thresholds
    cl_class = np.where(confident, proba, -1.0).argmax(1)
    by_cl = confident.any(1) & (cl_class != labels)
    best = proba.argmax(1)
    below_chance = (proba[np.arange(len(labels)), labels] < 1.0 / classes) & (best != labels)
    return by_cl | below_chance, np.where(by_cl, cl_class, best)


#: The quantiles of p(given) whose low tails SC701 compares between the splits (besides the flagged share).
TAILS = (0.005, 0.01, 0.02, 0.05)


def own_errors(p_train: np.ndarray, f_train: np.ndarray, p_val: np.ndarray, f_val: np.ndarray, alpha: float,
               min_excess: float) -> tuple[dict, np.ndarray]:
    """Does the training split have more suspicious labels than the classifier's own errors on the validation split
    explain? Five looks (the flagged share; the share below each pooled quantile in TAILS), one-sided Fisher exact
    tests, Bonferroni-corrected. Returns the evidence and the training rows to list (flagged ones, restricted to the
    deciding tail when a quantile look decided)."""
    from scipy.stats import fisher_exact

    n, m = len(p_train), len(p_val)
    pooled = np.concatenate([p_train, p_val])
    looks = [("flag", None, f_train, f_val)]
    looks += [(f"below the {q:.1%} quantile", float(np.quantile(pooled, q)), None, None) for q in TAILS]
    results = []
    for name, tau, a, b in looks:
        a = p_train <= tau if a is None else a
        b = p_val <= tau if b is None else b
        k, kv = int(a.sum()), int(b.sum())
        p = float(fisher_exact([[k, n - k], [kv, m - kv]], alternative="greater")[1])
        results.append({"look": name, "tau": tau, "k": k, "kv": kv, "p": min(1.0, p * len(looks)),
                        "excess": k - kv * n / m, "rows": a})
    first = results[0]
    decisive = lambda r: r["p"] < alpha and r["excess"] >= max(5.0, min_excess * n)  # noqa: E731
    chosen = first if decisive(first) else min(results, key=lambda r: r["p"])
    rows = np.flatnonzero(f_train if chosen is first else (chosen["rows"] & f_train))
    if chosen is not first and not len(rows):
        rows = np.flatnonzero(chosen["rows"])
    what = ("the rule flags" if chosen is first else
            f"p(given) is at most {chosen['tau']:.3g} (the pooled {chosen['look'].split('the ')[1]}) for")
    evidence = {"look": chosen["look"], "what": what, "tau": _r(chosen["tau"]) if chosen["tau"] is not None else None,
                "train_rate": _r(chosen["k"] / n), "val_rate": _r(chosen["kv"] / m), "val_samples": m,
                "excess": _r(chosen["excess"]), "p_value": _r(chosen["p"]), "significant": bool(decisive(chosen)),
                "looks": [{k: (_r(v) if isinstance(v, float) else v) for k, v in r.items() if k != "rows"}
                          for r in results]}
    return evidence, rows


def _validation(ctx: Any, train_x: np.ndarray, train_labels: np.ndarray, classes: int) -> dict | None:
    """The validation split as SC701 scores it: features on the shared embedding, labels, and the label frequencies
    of each sample's 10 nearest training inputs (smoothed like :func:`_neighbor_proba`); ``None`` without one."""
    from sanitycheck.probing.embedding import embedding
    from sanitycheck.probing.neighbors import knn, knn_device, vote_counts

    if ctx.val is None:
        return None
    labels = ctx.class_labels(ctx.val)
    if labels is None:
        return None
    try:
        feats = embedding(ctx, ctx.val)
    except Exception:
        return None
    keep = ctx.usable_indices(ctx.val)
    keep = keep[(labels[keep] >= 0) & (labels[keep] < classes)]
    if len(keep) < 10:
        return None
    x = np.ascontiguousarray(feats[keep], dtype=np.float32)
    k = min(10, len(train_x))
    _, near = knn(x, train_x, k, seed=ctx.derived_seed("influence:val"), device=knn_device(ctx),
                  label="influence: val against train")
    counts = vote_counts(np.where(near >= 0, train_labels[np.maximum(near, 0)], -1), classes)
    return {"x": x, "labels": labels[keep].astype(np.int64),
            "neighbor_proba": (counts + 0.1) / (counts.sum(1, keepdims=True) + 0.1 * classes)}


#: The out-of-fold classifiers' share of the run's budget (sanitycheck.probing.budget), and the fewest epochs
#: they train. Measured on MNIST (60k samples, 5% of the labels flipped; docs/benchmarks-speed.md): 4 epochs
#: flag with precision 0.87 and recall 0.98, 20 epochs with 0.89 and 0.98, in a fifth of the time.
SHARE = 0.25
MIN_EPOCHS = 3
#: Rows per step of the out-of-fold classifiers (fit_mlp's default).
MLP_BATCH = 256


def _epochs(ctx: Any, settings: Settings, n: int, dim: int, classes: int) -> tuple[int, dict]:
    """Epochs of each fold's classifier: the profile's default, fewer when they would take more than their share
    of the run's budget (the classifier's step timed on this machine); and what the evidence says about it."""
    import math

    from sanitycheck.probing.budget import budget_seconds, fit_budget, mlp_step_seconds

    default = max(5, ctx.budget(settings.epochs))
    steps = settings.folds * math.ceil(n * (settings.folds - 1) / settings.folds / MLP_BATCH)
    per_epoch = steps * mlp_step_seconds(ctx, dim, settings.hidden, classes, MLP_BATCH)
    if default * per_epoch <= 3.0:  # cheap (small data): the default, without timing the user's step
        return default, {"epochs": default}
    share = SHARE * budget_seconds(ctx)
    epochs = fit_budget(share, per_epoch, default=default, minimum=min(default, MIN_EPOCHS))
    return epochs, {"epochs": epochs, "epochs_default": default, "budget_s": _r(share),
                    "epoch_estimate_s": _r(per_epoch)}


def _neighbor_proba(ctx: Any, targets: np.ndarray, usable: np.ndarray, classes: int) -> np.ndarray | None:
    """Leave-one-out k-NN class frequencies of the usable samples, from the run's shared neighbours
    (``sanitycheck.probing.neighbors.split_neighbors``: 10 nearest distinct inputs on the shared embedding), smoothed
    by 0.1 per class so a unanimous vote is not certainty."""
    from sanitycheck.probing.neighbors import split_neighbors

    try:
        nb = split_neighbors(ctx, ctx.train)
    except Exception:  # no embedding: the MLP's probabilities alone
        return None
    counts = nb.label_votes(np.asarray(targets).astype(np.int64), usable, classes)
    return (counts + 0.1) / (counts.sum(1, keepdims=True) + 0.1 * classes)


def _last_layer_grads(ctx: Any, model: Any, split: Any, indices: np.ndarray, classes: int):
    """Per-sample (p - onehot(y), h): the output gradient and the input of the model's last nn.Linear (tensors on
    the model's device)."""
    import torch
    from torch import nn

    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last or last[-1].out_features != classes:
        return None
    seen: dict[str, Any] = {}
    hook = last[-1].register_forward_hook(lambda m, args, out: seen.__setitem__("h", args[0].detach()))
    gs, hs = [], []
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(indices), 256):
                chunk = [int(i) for i in indices[start:start + 256]]
                batch = ctx.batch(split, chunk)
                _, y = split.unpack(batch)
                out = ctx.outputs(model, batch)
                if "h" not in seen or not isinstance(out, torch.Tensor) or out.shape != (len(chunk), classes):
                    return None
                p = torch.softmax(out.float(), 1)
                if _outputs_are_log_probs(ctx):
                    p = out.float().exp()
                g = p - nn.functional.one_hot(y.long().clamp(0, classes - 1), classes).float()
                gs.append(g)
                hs.append(seen["h"].float().reshape(len(chunk), -1))
    finally:
        hook.remove()
        model.train(was)
    return torch.cat(gs), torch.cat(hs)


def _outputs_are_log_probs(ctx: Any) -> bool:
    from sanitycheck.pipeline.losses import loss_kind

    return loss_kind(ctx.loss_fn) == "nll"


@hookimpl
def sanitycheck_checks():
    return [Influence()]
