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
    thumbnails: int = Field(8, ge=0, le=24, description="Most anomalous samples drawn in the evidence.")


CODES = (
    CodeDoc(
        code="SC601", title="Training inputs far from the rest of the data", severity="warning",
        what="Scores every training sample by its mean Euclidean distance to its 10 nearest distinct training "
        "samples on the shared embedding (8x8 normalized thumbnails for images, standardized features otherwise, or "
        "the model's penultimate features with embedding: {source: model}), "
        "takes the log, and standardizes it robustly (median and 1.4826 x MAD over the split). Decision rule: a "
        "sample is an outlier when its robust z-score is at least 4. Severity: warning when the outliers are at "
        "least 0.5% of the split and at least 5 samples (a group of corrupted inputs), info otherwise (every real "
        "dataset has a tail). Samples are listed most anomalous first; the evidence breaks them down per class.",
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
        severity = "warning" if fraction >= settings.warn_fraction and len(flagged) >= settings.warn_min else "info"
        evidence: dict[str, Any] = {
            "outliers": len(flagged), "train_samples": n, "fraction": round(fraction, 5),
            "z_threshold": settings.z, "k": settings.k,
            "rule": f"robust z of log(mean distance to the {settings.k} nearest distinct training samples) >= {settings.z}",
            "median_log_distance": round(median, 4), "mad_log_distance": round(mad, 4),
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
