"""class-balance: plant imbalance, a class missing from a split and a label shift; clean splits stay quiet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import casekit
from conftest import codes, loud

CE = "torch.nn:CrossEntropyLoss"


def run_digits(run_pipeline, keep_train=None, keep_val=None, seed=0):
    (xt, yt), (xv, yv) = casekit.digits(seed=seed)
    if keep_train is not None:
        idx = torch.as_tensor(keep_train(yt.numpy()))
        xt, yt = xt[idx], yt[idx]
    if keep_val is not None:
        idx = torch.as_tensor(keep_val(yv.numpy()))
        xv, yv = xv[idx], yv[idx]
    return run_pipeline(only=["class-balance"], train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv),
                        model=lambda: casekit.mlp(64, 10), loss=CE, num_classes=10, seed=seed)


def drop_most_of(label, keep_fraction):
    def keep(y):
        idx = np.flatnonzero(y == label)
        dropped = idx[int(len(idx) * keep_fraction):]
        return np.setdiff1d(np.arange(len(y)), dropped)
    return keep


def test_imbalance_warning_and_shift(run_pipeline):
    report = run_digits(run_pipeline, keep_train=drop_most_of(3, 0.08))
    imbalance = next(f for f in report.findings if f.code == "SC503")
    assert imbalance.severity == "warning" and imbalance.evidence["imbalance_ratio"] >= 10
    assert "SC504" in codes(report, at_least="warning")  # val kept the natural mix


def test_mild_imbalance_is_info_only(run_pipeline):
    report = run_digits(run_pipeline, keep_train=drop_most_of(3, 0.25), keep_val=drop_most_of(3, 0.25))
    imbalance = next(f for f in report.findings if f.code == "SC503")
    assert imbalance.severity == "info"
    assert not loud(report, "class-balance")


def test_class_missing_from_train_lists_its_val_samples(run_pipeline):
    report = run_digits(run_pipeline, keep_train=drop_most_of(7, 0.0))
    finding = next(f for f in report.findings if f.code == "SC501")
    assert finding.severity == "error" and finding.evidence["missing"] == [7]
    (_, _), (_, yv) = casekit.digits()
    assert finding.samples["val"] == np.flatnonzero(yv.numpy() == 7).tolist()


def test_class_missing_from_val(run_pipeline):
    report = run_digits(run_pipeline, keep_val=drop_most_of(5, 0.0))
    assert "SC502" in codes(report, at_least="warning")


def test_regression_is_skipped(run_pipeline):
    (xt, yt), (xv, yv) = casekit.diabetes()
    report = run_pipeline(only=["class-balance"], task="regression", train=casekit.dataset(xt, yt),
                          val=casekit.dataset(xv, yv), model=lambda: casekit.mlp(10, 1), loss="torch.nn:MSELoss")
    assert report.checks[0].status == "skipped" and "regression" in report.checks[0].reason


@pytest.mark.parametrize("seed", range(5))
def test_random_splits_stay_quiet(run_pipeline, seed):
    # Unstratified random splits: sampling noise alone must not look like a shift.
    (xt, yt), (xv, yv) = casekit.digits(seed=seed)
    x, y = torch.cat([xt, xv]), torch.cat([yt, yv])
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    cut = int(0.8 * len(y))
    multi = run_pipeline(only=["class-balance"], train=casekit.dataset(x[perm[:cut]], y[perm[:cut]]),
                         val=casekit.dataset(x[perm[cut:]], y[perm[cut:]]), model=lambda: casekit.mlp(64, 10),
                         loss=CE, seed=seed)
    (bt, byt), (bv, byv) = casekit.breast_cancer(seed=seed)
    binary = run_pipeline(only=["class-balance"], train=casekit.dataset(bt, byt), val=casekit.dataset(bv, byv),
                          model=lambda: casekit.mlp(30, 2), loss=CE, seed=seed)
    for report in (multi, binary):
        assert report.checks[0].status == "passed", [f.message for f in report.findings]


def run_reweighted(run_pipeline, sampler_weights=None, loss_weights=False, keep_val=None):
    """Digits with class 3 cut to 8% of its training samples, trained through a DataLoader whose
    WeightedRandomSampler draws with ``sampler_weights(labels)``, or a loss weighted by inverse class frequency."""
    (xt, yt), (xv, yv) = casekit.digits()
    idx = torch.as_tensor(drop_most_of(3, 0.08)(yt.numpy()))
    xt, yt = xt[idx], yt[idx]
    if keep_val is not None:
        idx = torch.as_tensor(keep_val(yv.numpy()))
        xv, yv = xv[idx], yv[idx]
    counts = torch.bincount(yt, minlength=10).double()
    train = casekit.dataset(xt, yt)
    if sampler_weights is not None:
        sampler = torch.utils.data.WeightedRandomSampler(sampler_weights(yt, counts), len(yt))
        train = torch.utils.data.DataLoader(train, batch_size=32, sampler=sampler)
    loss = torch.nn.CrossEntropyLoss(weight=(counts.sum() / (10 * counts)).float()) if loss_weights else CE
    return run_pipeline(only=["class-balance"], train=train, val=casekit.dataset(xv, yv),
                        model=lambda: casekit.mlp(64, 10), loss=loss, num_classes=10)


def inverse_frequency(y, counts):
    return 1.0 / counts[y]


@pytest.mark.parametrize("how", ["sampler", "loss"])
def test_imbalance_the_pipeline_rebalances_is_information(run_pipeline, how):
    # A long-tailed Fashion-MNIST behind a WeightedRandomSampler of 1 / class count was an SC503 and an SC504
    # warning: the data is imbalanced, but what the model trains on is not, and it matches validation's mix.
    report = run_reweighted(run_pipeline, sampler_weights=inverse_frequency if how == "sampler" else None,
                            loss_weights=how == "loss")
    imbalance = next(f for f in report.findings if f.code == "SC503")
    assert imbalance.severity == "info" and imbalance.evidence["imbalance_ratio"] >= 10
    assert imbalance.evidence["trained_ratio"] < 1.1
    assert not loud(report, "class-balance") and "SC504" not in codes(report)


def test_a_sampler_that_does_not_rebalance_changes_nothing(run_pipeline):
    report = run_reweighted(run_pipeline, sampler_weights=lambda y, counts: torch.ones(len(y), dtype=torch.double))
    assert {"SC503", "SC504"} <= codes(report, at_least="warning")


def test_rebalancing_away_from_validations_own_mix_is_information(run_pipeline):
    # validation keeps the training split's skew; the sampler balances training: a deliberate difference
    report = run_reweighted(run_pipeline, sampler_weights=inverse_frequency, keep_val=drop_most_of(3, 0.08))
    shift = next(f for f in report.findings if f.code == "SC504")
    assert shift.severity == "info" and "WeightedRandomSampler" in shift.message
    assert not loud(report, "class-balance")
