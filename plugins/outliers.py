"""``outliers``: training inputs far from the rest of the data, ranked by their k-NN distance on the shared embedding.

Reuses the shared neighbour search of ``leakage`` (``sanitycheck.probing.neighbors.split_neighbors``), so when both
run the search is done once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl


class Settings(CheckSettings):
    k: int = Field(10, ge=1, le=10, description="Score: mean distance to the k nearest distinct training samples.")
    z: float = Field(4.0, gt=0, description="Flag samples whose log score is this many robust standard deviations above the median.")
    warn_fraction: float = Field(0.005, gt=0, le=1, description="Warn when at least this fraction of the split is flagged (else info).")
    warn_min: int = Field(5, ge=1, description="... and at least this many samples.")
    p_value: float = Field(0.001, gt=0, lt=1, description="... and the flagged samples outnumber what the split's own "
                           "tail predicts above the z cutoff at this significance (Poisson test).")
    thumbnails: int = Field(8, ge=0, le=24, description="Most anomalous samples drawn in the evidence.")


CODES = (
    CodeDoc(
        code="SC601", title="Training inputs far from the rest of the data", severity="warning",
        what="Scores every training sample by its mean Euclidean distance to its 10 nearest distinct training "
        "samples on the shared embedding (8x8 normalized thumbnails for images, standardized features otherwise, or "
        "the model's penultimate features with embedding: {source: model}), "
        "takes the log, and standardizes it robustly (median and 1.4826 x MAD over the split). Decision rule: a "
        "sample is an outlier when its robust z-score is at least 4. Severity: warning when the outliers outnumber "
        "what the split's own tail predicts (a group of corrupted inputs), info otherwise (every real dataset has a "
        "tail): the z-scores between their 80% and 95% quantiles are fitted with an exponential tail, P(z > t) = "
        "0.05 exp(-(t - z_95) / s), s = (z_95 - z_80) / ln 4, extended to z = 4 for the expected count E; warning "
        "when the count exceeds E significantly (Poisson test, p < 0.001) by at least 0.5% of the split and 5 "
        "samples. A k-NN distance grows where the density thins, so the edge of any smooth distribution scores high: "
        "features x, x^2, x^3, x^4 of a normal x (PyTorch's regression example) put 3.6% of their samples at z >= 4, "
        "about as many as E (info); 1% of real MNIST replaced by noise: 594 flagged against E = 21 (warning). A "
        "corrupted group above 5% of the split enters the fit and raises E. Samples are listed most anomalous "
        "first; the evidence breaks them down per class and gives E, the excess and the p-value.",
        why="Corrupted inputs (noise, failed decodes, wrong sensor, another dataset mixed in) are memorized "
        "instead of learned from, distort normalization statistics and can dominate the gradient.",
        example="A few hundred images that decoded as random noise; scans of another document type mixed into a "
        "training folder; a feature recorded in the wrong unit for one batch of rows.",
        fix="Look at the listed samples (the thumbnails are the most anomalous): drop or repair the corrupted ones; "
        "if they are real but rare cases, keep them and consider collecting more like them.",
    ),
)


class Outliers(Check):
    name = "outliers"
    summary = "training inputs far from the rest of the data (k-NN distance on the shared embedding, robust z-score)"
    cost = "seconds: reuses the shared embedding and neighbour search (shared with leakage)"
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        from sanitycheck.probing.embedding import EmbeddingUnavailable
        from sanitycheck.probing.neighbors import split_neighbors

        if ctx.inputs_are_token_ids() and ctx.config.embedding.source == "pixels":
            self.skip("the inputs are token ids: categorical, so the distance between id vectors means nothing "
                      "(embedding: {source: model} compares the model's features instead)")
        try:
            nb = split_neighbors(ctx, ctx.train)
        except EmbeddingUnavailable as exc:
            self.skip(f"the training inputs cannot be embedded: {exc}")
        if len(nb.unique) <= settings.k + 1:
            self.skip(f"needs at least {settings.k + 2} distinct training inputs to tell an outlier (has {len(nb.unique)})")
        d = nb.dist[:, : settings.k]
        score = np.log(np.where(np.isfinite(d), d, np.nan).mean(1) + 1e-12)
        median = float(np.nanmedian(score))
        mad = float(np.nanmedian(np.abs(score - median))) * 1.4826
        if not mad > 0:
            self.skip("the training inputs' neighbour distances do not vary (mostly identical inputs?)")
        z_unique = (score - median) / mad
        z = z_unique[nb.inverse]  # copies of an input share its score
        flagged = np.flatnonzero(z >= settings.z)
        if not len(flagged):
            return
        flagged = flagged[np.argsort(-z[flagged], kind="stable")]
        n = len(ctx.train)
        fraction = len(flagged) / n
        expected, beta = tail_expectation(z_unique, settings.z, len(nb.unique))
        expected *= n / len(nb.unique)
        excess = len(flagged) - expected
        p = _poisson_tail(len(flagged), expected)
        group = excess >= max(settings.warn_fraction * n, settings.warn_min) and p < settings.p_value
        severity = "warning" if group else "info"
        evidence: dict[str, Any] = {
            "outliers": len(flagged), "train_samples": n, "fraction": round(fraction, 5),
            "z_threshold": settings.z, "k": settings.k,
            "rule": f"robust z of log(mean distance to the {settings.k} nearest distinct training samples) >= {settings.z}",
            "median_log_distance": round(median, 4), "mad_log_distance": round(mad, 4),
            "tail_expected": round(expected, 2), "tail_scale": round(beta, 4), "excess": round(excess, 2),
            "p_value": float(f"{p:.3g}"),
            "z_scores": [round(float(v), 2) for v in z[flagged[:1000]]],
        }
        per_class = _per_class(ctx, flagged)
        if per_class:
            evidence["per_class"] = per_class
        thumbs = _thumbnails(ctx, flagged[: settings.thumbnails], z)
        if thumbs:
            evidence["thumbnails"] = thumbs
        worst = ", ".join(f"{int(i)} (z {z[i]:.1f})" for i in flagged[:5])
        yield self.finding(
            "SC601", f"{len(flagged)} training samples ({fraction:.2%}) lie far from the rest of the data "
            f"(robust z >= {settings.z:g} on the k-NN distance); most anomalous: {worst}.",
            severity=severity, samples={"train": flagged.tolist()}, evidence=evidence,
        )


#: The clean tail is fitted between these quantiles of the robust z-scores (see tail_expectation).
TAIL_FIT = (0.80, 0.95)


def tail_expectation(z: np.ndarray, cutoff: float, n: int) -> tuple[float, float]:
    """How many of ``n`` samples a smoothly thinning tail puts at robust z >= ``cutoff``: ``(expected, scale)``.

    The z-scores between the TAIL_FIT quantiles are fitted with an exponential tail, P(z > t) = 0.05 exp(-(t -
    z_95) / scale), scale = (z_95 - z_80) / ln 4, and it is extended to the cutoff. A k-NN distance grows as the
    density thins, so the edge of any smooth distribution scores high: a heavy-tailed feature (x^4 of a normal x,
    PyTorch's regression example: 3.6% of its samples at z >= 4) or a curve the data lies on. Such a tail is
    continuous with the quantiles below it and is predicted by the fit; a group of corrupted inputs is an excess
    over it. A corrupted group above 5% of the split enters the fit and raises the expectation."""
    finite = z[np.isfinite(z)]
    if len(finite) < 20:
        return 0.0, 0.0
    lo, hi = np.quantile(finite, TAIL_FIT)
    if not hi > lo:
        return 0.0, 0.0
    scale = float((hi - lo) / np.log((1 - TAIL_FIT[0]) / (1 - TAIL_FIT[1])))
    return float(n * (1 - TAIL_FIT[1]) * np.exp(-max(cutoff - hi, 0.0) / scale)), scale


def _poisson_tail(count: int, expected: float) -> float:
    """P(X >= count) for X ~ Poisson(expected), count >= 1."""
    from scipy.special import pdtrc

    return float(pdtrc(count - 1, expected))


def _per_class(ctx: Any, flagged: np.ndarray) -> list[dict] | None:
    """Outliers per class: how many, and what fraction of the class they are."""
    labels = ctx.class_labels(ctx.train)
    if labels is None or not (labels >= 0).any():
        return None
    total = np.bincount(labels[labels >= 0])
    hit = np.bincount(labels[flagged][labels[flagged] >= 0], minlength=len(total))
    return [{"class": int(c), "outliers": int(hit[c]), "class_samples": int(total[c]),
             "fraction": round(float(hit[c] / total[c]), 5)} for c in np.flatnonzero(hit)]


def _thumbnails(ctx: Any, indices: np.ndarray, z: np.ndarray) -> list[dict]:
    from sanitycheck.probing.thumbnails import thumbnail

    out = []
    for i in indices:
        item = thumbnail(ctx, "train", int(i), caption=f"train {int(i)} (z {z[i]:.1f})")
        if item is None:
            return []
        out.append(item)
    return out


@hookimpl
def sanitycheck_checks():
    return [Outliers()]
