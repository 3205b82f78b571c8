"""outliers: plant noise inputs among real digits and find them, most anomalous first; clean data stays quiet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import casekit
from conftest import loud

CE = "torch.nn:CrossEntropyLoss"


def run(run_pipeline, xt, yt, xv, yv, image):
    model = (lambda: torch.nn.Sequential(torch.nn.Flatten(), casekit.mlp(64, 10))) if image else (lambda: casekit.mlp(64, 10))
    return run_pipeline(only=["outliers"], train=TensorDataset(xt, yt), val=TensorDataset(xv, yv), model=model,
                        loss=CE, num_classes=10)


@pytest.mark.parametrize("image", [True, False], ids=["image", "vector"])
def test_clean_digits_stay_quiet(run_pipeline, image):
    (xt, yt), (xv, yv) = casekit.digits(image=image)
    report = run(run_pipeline, xt, yt, xv, yv, image)
    assert not report.crashed and not loud(report, "outliers")


@pytest.mark.parametrize("image", [True, False], ids=["image", "vector"])
@pytest.mark.parametrize("seed", [0, 1])
def test_noise_outliers_are_found_first(run_pipeline, image, seed):
    (xt, yt), (xv, yv) = casekit.digits(image=image, seed=seed)
    rng = np.random.default_rng(seed)
    planted = rng.choice(len(xt), size=30, replace=False)  # 2% of the split: a batch of corrupted reads
    xt = xt.clone()
    xt[planted] = torch.from_numpy(rng.random((30, *xt.shape[1:])).astype(np.float32))
    report = run(run_pipeline, xt, yt, xv, yv, image)
    f = next(f for f in report.findings if f.code == "SC601")
    assert f.severity == "warning"
    flagged = f.samples["train"]
    found = set(flagged) & set(planted.tolist())
    assert len(found) >= 27, f"found {len(found)} of 30 planted noise inputs"
    assert set(flagged[:25]) <= set(planted.tolist())  # ranked most anomalous first
    assert len(flagged) - len(found) <= 10
    per_class = f.evidence["per_class"]
    assert sum(c["outliers"] for c in per_class) == len(flagged)
    assert f.evidence["z_scores"] == sorted(f.evidence["z_scores"], reverse=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_heavy_tailed_feature_is_a_tail_not_a_group_of_outliers(run_pipeline, seed):
    # PyTorch's examples/regression: features x, x^2, x^3, x^4 of a normal x. The k-NN distance grows where the
    # density thins, so about 3.5% of these samples score z >= 4: as many as the split's own tail predicts
    x = torch.randn(2048, 1, generator=torch.Generator().manual_seed(seed))
    features = torch.cat([x ** k for k in range(1, 5)], 1)
    y = features @ torch.tensor([[1.0], [-2.0], [0.5], [0.3]])
    report = run_pipeline(only=["outliers"], train=TensorDataset(features, y), model=lambda: torch.nn.Linear(4, 1),
                          loss="torch.nn:MSELoss")
    assert not report.crashed and not loud(report, "outliers"), [(f.code, f.message) for f in report.findings]
    assert any(f.code == "SC601" for f in report.findings)  # listed as info: the tail is there
