"""generalization: a large unregularized MLP on 150 digits overfits (warning with the remedies that apply, the
early-stopping point first measured); remedies already in use are never listed; the memorization probe is shared
with label-shuffle; a learning rate far too low underfits (information); clean and well-regularized pipelines
stay quiet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import advicekit
import casekit
import probekit
from conftest import codes, loud

CHECK = ["generalization"]


def run_kind(run_pipeline, kind="mlp", seed=0, **changes):
    return probekit.run_clean(run_pipeline, CHECK, kind, seed, **changes)


def digits_150(seed):
    (xt, yt), (xv, yv) = advicekit.digits_subset(150, seed)
    return {"train": casekit.dataset(xt, yt), "val": casekit.dataset(xv, yv)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_mlp_on_150_digits_overfits(run_pipeline, seed):
    report = run_kind(run_pipeline, seed=seed, model=advicekit.large_mlp, **digits_150(seed))
    assert codes(report, at_least="warning") == {"SC1601"}
    finding = probekit.finding(report, "SC1601")
    ev = finding.evidence
    assert ev["remedies"] == ["augmentation", "dropout", "weight_decay", "early_stopping", "smaller_model", "more_data"]
    assert ev["best_step"] < ev["steps"] and ev["final_train_loss"] * 2 <= ev["train_loss_at_best"]
    assert ev["parameters_per_sample"] > 1000 and ev["train_samples"] == 150
    assert f"early stopping at step {ev['best_step']}" in finding.message
    assert f"stopped improving at step {ev['best_step']}" in finding.fix and "AdamW" in finding.fix
    assert len(ev["curves"]["validation"]) == len(ev["curve_x"]) == 21


def test_remedies_already_in_use_are_never_listed(run_pipeline):
    from sanitycheck_plugins.generalization import Settings, _remedies

    class Ctx:
        train = [0] * 150

    class AdamW:
        pass

    everything = {"augmentation": True, "dropout": ["1"], "weight_decay": 0.05}
    names = [n for n, _ in _remedies(Ctx(), Settings(), everything, AdamW(), 10_000, 66.0, (90, 19.0, 150))]
    assert names == ["early_stopping", "more_data"]
    nothing = {"augmentation": False, "dropout": [], "weight_decay": 0.0}
    names = [n for n, _ in _remedies(Ctx(), Settings(), nothing, AdamW(), 300_000, 2000.0, None)]
    assert names == ["augmentation", "dropout", "weight_decay", "early_stopping", "smaller_model", "more_data"]
    # end to end: the same model with dropout-free but decayed AdamW and an augmentation lists neither
    report = run_kind(run_pipeline, model=advicekit.large_mlp, augment=lambda x: x,
                      optimizer={"target": "torch.optim:AdamW", "lr": 1e-3, "weight_decay": 0.01}, **digits_150(0))
    for finding in report.findings:
        if "remedies" in finding.evidence:
            assert not {"augmentation", "weight_decay"} & set(finding.evidence["remedies"])


def test_memorization_is_shared_with_label_shuffle(run_pipeline, monkeypatch):
    from sanitycheck.probing import memorization

    calls = []
    measure = memorization._measure
    monkeypatch.setattr(memorization, "_measure", lambda ctx, plan: calls.append(plan) or measure(ctx, plan))
    report = probekit.run_clean(run_pipeline, ["generalization", "label-shuffle"], "mlp")
    assert len(calls) == 1  # generalization ran first and trained it; label-shuffle reused it
    ratio = probekit.finding(report, "SC203").evidence["ratio"]
    assert ratio is not None and ratio > 1.25


def test_a_learning_rate_far_too_low_underfits(run_pipeline):
    report = run_kind(run_pipeline, optimizer={"target": "torch.optim:Adam", "lr": 1e-6})
    assert codes(report) == {"SC1603"} and not loud(report, "generalization")


def test_well_regularized_cnn_stays_quiet(run_pipeline):
    for seed in (1,):  # seed 0 is the benchmark case advice-clean-regularized-cnn
        report = run_pipeline(only=advicekit.ADVICE, **advicekit.regularized(seed))
        assert not report.crashed
        noisy = [(f.code, f.message) for f in report.findings if f.severity != "info"]
        assert not noisy, (seed, noisy)
        assert report.checks[[c.name for c in report.checks].index("generalization")].status == "passed"


@pytest.mark.parametrize("kind", probekit.KINDS)
def test_clean_pipelines_stay_quiet_over_seeds(run_pipeline, kind):
    for seed in (0, 1):
        report = run_kind(run_pipeline, kind, seed)
        assert not report.crashed
        assert not loud(report, "generalization"), (kind, seed, [(f.code, f.message) for f in loud(report, "generalization")])


def noisy_labels(labels, share, seed):
    """``labels`` with ``share`` of them (drawn at random) replaced by random classes."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels).copy()
    noisy = rng.random(len(y)) < share
    y[noisy] = rng.integers(0, y.max() + 1, noisy.sum())
    return torch.as_tensor(y)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_labels_memorized_as_fast_as_real_ones(run_pipeline, seed):
    # Half the training labels replaced by random classes: the model still learns the digits (held-out accuracy
    # about 0.9), and fitting 128 samples means memorizing their noisy half, as fast as fully random labels
    (xt, yt), (xv, yv) = casekit.digits(seed=seed)
    report = run_kind(run_pipeline, seed=seed, model=advicekit.large_mlp,
                      train=casekit.dataset(xt, noisy_labels(yt, 0.5, seed)), val=casekit.dataset(xv, yv))
    assert codes(report, at_least="warning") == {"SC1602"}
    finding = probekit.finding(report, "SC1602")
    memo = finding.evidence["memorization"]
    assert memo["ratio"] < 1.25 and memo["held_out_accuracy"] > memo["constant_accuracy"] + 0.5
    assert finding.evidence["remedies"][-1] == "more_data"


@pytest.mark.parametrize("seed", [0, 1])
def test_permuted_labels_are_noise_to_the_model_not_a_capacity_to_regularize(run_pipeline, seed):
    # Every label permuted: random labels are fit as fast as the "real" ones, but these say nothing about capacity
    # (the reference model is at chance held out): no SC1602 with remedies; label-shuffle's SC201 names the cause
    (xt, yt), _ = casekit.digits(seed=seed)
    report = probekit.run_clean(run_pipeline, CHECK + ["label-shuffle"], "mlp", seed, model=advicekit.large_mlp,
                                train=casekit.dataset(xt, probekit.permuted(yt, seed)))
    assert "SC1602" not in codes(report) and "SC201" in codes(report, at_least="error")
    memo = probekit.finding(report, "SC203")
    assert memo.severity == "info" and "mostly noise to this model" in memo.message
    assert memo.evidence["ratio"] < 1.25 and memo.evidence["held_out_accuracy"] < 0.25


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_targets_that_are_mostly_noise_are_not_memorization(run_pipeline, seed):
    # A 2-hidden-layer MLP on diabetes: its held-out R^2 is about 0.3-0.45, so fitting 128 samples to R^2 0.9 is
    # memorization with the real targets too; random targets took 1.1-1.2x the steps, which was SC1602 + SC203.
    (xt, yt), (xv, yv) = casekit.diabetes(seed=seed)
    report = run_pipeline(only=["generalization", "label-shuffle"], task="regression", seed=seed,
                          train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv), loss="torch.nn:MSELoss",
                          model=lambda: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                                      nn.Linear(64, 1)))
    assert not {"SC1602", "SC203"} & codes(report, at_least="warning")
    evidence = probekit.finding(report, "SC203").evidence
    assert evidence["held_out_r2"] < 0.45


def test_too_few_held_out_samples_skip_before_the_step_is_timed(run_pipeline):
    """PyTorch's time-sequence example validates on 3 waves, and its LBFGS step takes 15 s: generalization and
    label-shuffle say they cannot judge 3 samples without timing (or running) a single step of their own."""
    (xt, yt), (xv, yv) = casekit.digits()
    calls = []

    def counted(model, batch, loss_fn, optimizer):
        calls.append(1)
        return casekit.default_step(model, batch, loss_fn, optimizer)

    report = run_pipeline(only=["generalization", "label-shuffle"], train=casekit.dataset(xt, yt),
                          val=casekit.dataset(xv[:3], yv[:3]), model=lambda: casekit.mlp(64, 10), loss=probekit.CE,
                          train_step=counted)
    assert [c.status for c in report.checks] == ["skipped", "skipped"]
    assert "3 held-out samples" in report.checks[0].reason and "(has 3)" in report.checks[1].reason
    assert len(calls) == 1  # the preflight's one call of the user's step
