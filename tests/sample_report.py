"""A synthetic report with every kind of picture the HTML report draws (for the report-format tests).

Findings of checks other engineers build (label-shuffle curves, influence thumbnails ...) are written here
by hand, following the evidence conventions, so the renderers are tested before and apart from those checks.
"""

from __future__ import annotations

import math

import numpy as np

from sanitycheck.engine.models import CheckResult, Finding, Report, SplitSummary
from sanitycheck.probing.thumbnails import png_data_uri


def digit_like(seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size))


def thumbnails() -> list[dict]:
    """Three mislabeled-sample pairs (given vs suggested label) and an RGB original-vs-augmented pair."""
    items = []
    for g in range(3):
        image = digit_like(g)
        items.append({"split": "train", "index": 10 + g, "caption": "given 3", "png": png_data_uri(image), "group": g})
        items.append({"split": "train", "index": 10 + g, "caption": "suggested 8", "png": png_data_uri(image.T), "group": g})
    rgb = np.random.default_rng(9).random((3, 16, 16))
    items.append({"split": "train", "index": 7, "caption": "original", "png": png_data_uri(rgb), "group": "aug"})
    items.append({"split": "train", "index": 7, "caption": "augmented", "png": png_data_uri(rgb[:, ::-1]), "group": "aug"})
    return items


def sample_report() -> Report:
    curve = [2.3 * math.exp(-i / 40) + 1.2 for i in range(101)]
    lrs = [1e-7 * 10 ** (i / 10) for i in range(75)]  # an LR range test: a log x axis with markers
    lr_curve = [2.3 if lr < 1e-3 else 2.3 - math.log10(lr / 1e-3) if lr < 0.05 else 0.6 + 40 * (lr - 0.05) for lr in lrs]
    findings = [
        Finding(check="overfit-batch", code="SC301", severity="error", title="Loss does not approach its minimum",
                message="The loss only fell from 2.3 to 1.46 <b>|</b> & more.", samples={"train": [4, 8, 15]},
                evidence={"curve": curve, "target_loss": 0.23, "steps": 200, "initial_loss": float("nan")},
                fix="Feed raw logits to CrossEntropyLoss."),
        Finding(check="label-shuffle", code="SC201", severity="warning", title="Real labels barely beat shuffled ones",
                message="m", evidence={"curves": {"real labels": [2.3, 1.5, 0.9, 0.4], "shuffled labels": [2.3, 2.2, 2.2, 2.1]}}),
        Finding(check="influence", code="SC701", severity="warning", title="Likely mislabeled samples",
                message="3 training samples look mislabeled.", samples={"train": list(range(1500))},
                evidence={"thumbnails": thumbnails(), "flagged": 1500}),
        Finding(check="class-balance", code="SC503", severity="info", title="Class imbalance", message="10.4 to 1",
                evidence={"train_counts": [146, 140, 14], "val_counts": [36, 35, 37]}),
        Finding(check="sanitycheck", code="SC001", severity="warning", title="A plugin failed to load",
                message="plugin 'acme' failed to load: ImportError: no module named acme"),
        Finding(check="learning-rate", code="SC1303", severity="info", title="LR range test",
                message="the loss falls fastest around 0.01 and climbs past 0.05",
                evidence={"curves": {"loss": lr_curve, "smoothed": lr_curve}, "curve_x": lrs,
                          "curve_x_label": "learning rate", "markers": {"configured": 0.001, "onset": 0.05}}),
    ]
    checks = [CheckResult(name="overfit-batch", status="failed", duration_s=1.3),
              CheckResult(name="label-shuffle", status="failed", duration_s=12.0),
              CheckResult(name="influence", status="failed", duration_s=3.1),
              CheckResult(name="class-balance", status="passed", duration_s=0.0),
              CheckResult(name="leakage", status="skipped", duration_s=0.0, reason="no validation split"),
              CheckResult(name="gradients", status="error", duration_s=0.2, reason="ValueError: boom\x07 (at x.py:3)")]
    report = Report.assemble("examples/digits/sanitycheck.yaml", findings, checks, 16.6)
    report.splits = {"train": SplitSummary(samples=300, class_counts=[146, 140, 14]),
                     "val": SplitSummary(samples=108, class_counts=[36, 35, 37])}
    return report
