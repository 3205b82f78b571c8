"""``class-balance``: label counts per split, imbalance, classes missing from a split, label shift."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl

FIX_IMBALANCE = ("Weight the loss by inverse class frequency (CrossEntropyLoss(weight=...)), resample with a "
                 "WeightedRandomSampler, or collect more of the rare classes; judge with per-class metrics "
                 "(balanced accuracy, macro F1), not plain accuracy.")
FIX_SPLIT = "Re-split with stratification (sklearn.model_selection.train_test_split(..., stratify=labels))."


class Settings(CheckSettings):
    warn_ratio: float = Field(10.0, gt=1, description="Warn when the largest class outnumbers the smallest this many times.")
    info_ratio: float = Field(3.0, gt=1, description="Report (info) imbalance from this ratio up.")
    alpha: float = Field(0.001, gt=0, lt=1, description="Significance level of the chi-square test for label shift.")
    min_shift: float = Field(0.05, gt=0, lt=1, description="Smallest total variation distance reported as a shift.")
    min_expected_val: float = Field(5.0, gt=0, description="Warn of a class missing from val only if >= this many were expected.")


CODES = (
    CodeDoc(
        code="SC501", title="Classes missing from the training split", severity="error",
        what="Counts labels per split; reported when a class that appears in validation (or below num_classes) "
        "has no training sample. The validation samples of those classes are listed.",
        why="The model can never predict a class it never saw; validation scores on it are 0 by construction.",
        example="A split by file order where the last class landed entirely in the validation folder.",
        fix=FIX_SPLIT + " Check that num_classes matches the data.",
    ),
    CodeDoc(
        code="SC502", title="Classes missing from the validation split", severity="warning",
        what="Reported when a training class has no validation sample although the class frequency predicts at "
        "least 5 of them (fewer expected is reported as info).",
        why="Validation says nothing about those classes: a model that never predicts them scores the same.",
        example="A small validation set cut from the start of a class-sorted file.",
        fix=FIX_SPLIT,
    ),
    CodeDoc(
        code="SC503", title="Class imbalance", severity="warning",
        what="The imbalance ratio is the largest training class count divided by the smallest. When the pipeline "
        "reweighs classes (the training DataLoader's WeightedRandomSampler drawing with replacement, or the loss's "
        "class weights: CrossEntropyLoss/NLLLoss `weight`, BCEWithLogitsLoss `pos_weight`), the rule reads the ratio "
        "as trained: each class's count times its weight. Decision rule: warning at 10x or more, info from 3x.",
        why="With skewed classes a model can score high accuracy by predicting the majority class, and the rare "
        "classes get few gradient updates.",
        example="Fraud detection with 1% positives; a digits set with 30 samples of '3' and 180 of every other digit.",
        fix=FIX_IMBALANCE,
    ),
    CodeDoc(
        code="SC504", title="Label distribution shift between train and validation", severity="warning",
        what="Chi-square test of homogeneity on the 2 x C table of label counts (train vs val). Decision rule: "
        "warning when p < 0.001 and the total variation distance between the two label distributions is at "
        "least 0.05 (so tiny shifts in huge datasets are not reported). A reweighted training split (see SC503) is "
        "compared as trained: no finding when its weighted mix matches validation's, info when only the "
        "reweighting makes them differ (its own labels match validation's).",
        why="Validation then measures a different problem than the one trained on: its accuracy misleads, and "
        "class priors learned in training are wrong at evaluation.",
        example="Train resampled to balance classes while validation keeps the natural skew; a split by date "
        "where the label mix changed.",
        fix=FIX_SPLIT + " If the shift is deliberate, evaluate with per-class metrics.",
    ),
)


class ClassBalance(Check):
    name = "class-balance"
    summary = "class imbalance, classes missing from a split, label distribution shift between splits (chi-square)"
    cost = "instant: counts the labels from the cached data pass"
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        if ctx.task == "sequence":
            self.skip("task: sequence: per-position targets follow their text (token frequencies are skewed by "
                      "nature, Zipf's law), so class imbalance and shift rules for labels do not apply")
        if ctx.task != "classification":
            self.skip("regression task: no classes to count")
        train = ctx.class_labels(ctx.train)
        val_ids = ctx.class_labels(ctx.val) if ctx.val is not None else None  # indexed like the dataset
        if train is None or (ctx.val is not None and val_ids is None):
            self.skip("the targets are not class labels (dense or multi-label targets)")
        # Missing or fractional labels (-1) are data-integrity's finding; count the readable ones.
        train_ids, train = train, train[train >= 0]
        val = val_ids[val_ids >= 0] if val_ids is not None else None
        if len(train) == 0:
            self.skip("no readable class label in the training split (data-integrity reports why)")
        classes = max(ctx.num_classes or 0, int(train.max()) + 1, int(val.max()) + 1 if val is not None and len(val) else 0)
        counts_train = np.bincount(train, minlength=classes)
        evidence: dict[str, Any] = {"num_classes": classes, "train_counts": counts_train.tolist()}
        if val is not None:
            counts_val = np.bincount(val, minlength=classes)
            evidence["val_counts"] = counts_val.tolist()

        missing_train = [c for c in range(classes) if counts_train[c] == 0]
        if missing_train:
            in_val = np.flatnonzero(np.isin(val_ids, missing_train)).tolist() if val_ids is not None else []
            yield self.finding(
                "SC501", f"Class(es) {missing_train} have no training sample"
                + (f"; {len(in_val)} validation sample(s) carry them." if in_val else "."),
                samples={"val": in_val}, evidence={**evidence, "missing": missing_train, "val_samples": len(in_val)},
            )

        drawn = _as_trained(ctx, train_ids, counts_train)
        if drawn is not None:
            evidence.update(trained_shares=[round(float(v), 4) for v in drawn[0]], reweighted_by=drawn[1])
        present = counts_train[counts_train > 0]
        ratio = float(present.max() / present.min()) if len(present) else 1.0
        trained = _ratio(drawn[0][counts_train > 0]) if drawn is not None else ratio
        if max(ratio, trained) >= settings.info_ratio:
            smallest = int(np.argmin(np.where(counts_train > 0, counts_train, np.iinfo(np.int64).max)))
            largest = int(np.argmax(counts_train))
            as_trained = "" if drawn is None else f"; {drawn[1]} weighs them {trained:.1f} to 1 in training"
            yield self.finding(
                "SC503", f"The largest training class ({largest}: {counts_train[largest]} samples) outnumbers the "
                f"smallest ({smallest}: {counts_train[smallest]}) {ratio:.1f} to 1{as_trained}.",
                severity="warning" if trained >= settings.warn_ratio else "info",
                evidence={**evidence, "imbalance_ratio": round(ratio, 3), "trained_ratio": round(trained, 3),
                          "warn_ratio": settings.warn_ratio},
            )

        if val is None:
            return
        expected_val = counts_train / counts_train.sum() * len(val)
        missing_val = [c for c in range(classes) if counts_val[c] == 0 and counts_train[c] > 0]
        if missing_val:
            worth = [c for c in missing_val if expected_val[c] >= settings.min_expected_val]
            yield self.finding(
                "SC502", f"Class(es) {missing_val} appear in training but not in validation "
                f"(about {', '.join(f'{expected_val[c]:.1f}' for c in missing_val)} expected).",
                severity="warning" if worth else "info", evidence={**evidence, "missing": missing_val},
            )
        if drawn is None:
            yield from self._shift(counts_train, counts_val, evidence, settings)
            return
        # reweighted training: what it learns is the weighted mix; the split's own mix only decides whether the
        # difference is the reweighting alone (deliberate: info) or also the data's
        as_trained = drawn[0] * counts_train.sum()
        data_shift = _shift_test(counts_train, counts_val, settings)[0]
        yield from self._shift(as_trained, counts_val, evidence, settings, reweighted=drawn[1],
                               severity="warning" if data_shift else "info")

    def _shift(self, counts_train: np.ndarray, counts_val: np.ndarray, evidence: dict, settings: Settings,
               reweighted: str | None = None, severity: str = "warning"):
        shifted, chi2, p, dof, tvd = _shift_test(counts_train, counts_val, settings)
        if shifted:
            p_train, p_val = counts_train / counts_train.sum(), counts_val / counts_val.sum()
            moved = np.argsort(-np.abs(p_train - p_val))[:3]
            detail = ", ".join(f"class {c}: {p_train[c]:.1%} of train vs {p_val[c]:.1%} of val" for c in moved)
            what = "train" if reweighted is None else f"train as {reweighted} weighs it"
            yield self.finding(
                "SC504", f"The label distributions of {what} and validation differ (chi-square {chi2:.1f}, dof "
                f"{dof}, p = {p:.2g}; total variation {tvd:.3f}). Largest differences: {detail}."
                + ("" if severity == "warning" or reweighted is None else " The split's own labels match validation's "
                   "mix: the difference is the reweighting's, so judge with per-class metrics."),
                severity=severity,
                evidence={**evidence, "chi2": round(float(chi2), 3), "dof": int(dof), "p_value": float(f"{p:.4g}"),
                          "total_variation": round(tvd, 4), "alpha": settings.alpha, "min_shift": settings.min_shift},
            )


def _shift_test(counts_train: np.ndarray, counts_val: np.ndarray, settings: Settings) -> tuple:
    """SC504's rule on two label count vectors: ``(shifted, chi2, p, dof, total variation)``; shifted is False
    (and the rest None) when there are fewer than two classes or no validation labels to compare."""
    from scipy.stats import chi2_contingency

    keep = (counts_train + counts_val) > 0
    table = np.stack([counts_train[keep], counts_val[keep]])
    if table.shape[1] < 2 or counts_val.sum() == 0:
        return False, None, None, None, None
    chi2, p, dof, _ = chi2_contingency(table)
    tvd = float(0.5 * np.abs(counts_train / counts_train.sum() - counts_val / counts_val.sum()).sum())
    return p < settings.alpha and tvd >= settings.min_shift, chi2, p, dof, tvd


def _ratio(shares: np.ndarray) -> float:
    return float(shares.max() / shares.min()) if len(shares) and shares.min() > 0 else 1.0


def _as_trained(ctx: Any, labels: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, str] | None:
    """Each class's share of training as the user's pipeline weighs it, when it reweighs classes: the training
    DataLoader's WeightedRandomSampler (drawn with replacement: a class's share is its samples' total weight) and
    the loss's class weights (CrossEntropyLoss / NLLLoss ``weight``, BCEWithLogitsLoss ``pos_weight``: a class's
    share of the gradient is its count times its weight). ``(shares, what reweighs)``, or None when nothing does.

    A pipeline that already rebalances with either is judged on the mix it trains on, not on the raw counts: a
    long-tailed Fashion-MNIST behind a WeightedRandomSampler of 1 / class count was an SC503 and an SC504 warning."""
    import torch

    mass, how = counts.astype(np.float64), []
    sampler = getattr(ctx.train.loader, "sampler", None)
    if isinstance(sampler, torch.utils.data.WeightedRandomSampler) and sampler.replacement \
            and len(sampler.weights) == len(labels):
        weights = sampler.weights.detach().cpu().numpy().astype(np.float64)
        ok = labels >= 0
        mass = np.bincount(labels[ok], weights=weights[ok], minlength=len(counts))
        how.append("the training loader's WeightedRandomSampler")
    class_weight = getattr(ctx.loss_fn, "weight", None)
    pos_weight = getattr(ctx.loss_fn, "pos_weight", None)
    if isinstance(class_weight, torch.Tensor) and class_weight.numel() == len(counts):
        mass = mass * class_weight.detach().cpu().double().numpy()
        how.append("the loss's class weights")
    elif isinstance(pos_weight, torch.Tensor) and pos_weight.numel() == 1 and len(counts) == 2:
        mass = mass * np.array([1.0, float(pos_weight)])
        how.append("the loss's pos_weight")
    if not how or mass.sum() <= 0:
        return None
    return mass / mass.sum(), " and ".join(how)


@hookimpl
def sanitycheck_checks():
    return [ClassBalance()]
