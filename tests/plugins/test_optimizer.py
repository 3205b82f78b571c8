"""optimizer: Adam-family weight_decay (coupled L2) is a warning with a measured AdamW equivalent; AdamW, decoupled
NAdam and SGD are not; decay on norm/bias parameters is information, gone with a param-group builder."""

from __future__ import annotations

import pytest

import advicekit
import probekit
from conftest import codes, loud

CHECK = ["optimizer"]


def run_kind(run_pipeline, kind="mlp", seed=0, **changes):
    return probekit.run_clean(run_pipeline, CHECK, kind, seed, **changes)


def test_adam_with_weight_decay(run_pipeline):
    report = run_kind(run_pipeline, optimizer={"target": "torch.optim:Adam", "lr": 1e-3, "weight_decay": 1e-4})
    assert codes(report, at_least="warning") == {"SC1501"}
    finding = probekit.finding(report, "SC1501")
    eq = finding.evidence["equivalent_adamw_weight_decay"]
    assert 0 < eq["p10"] < eq["median"] < eq["p90"]
    assert eq["median"] == pytest.approx(1e-4 / finding.evidence["sqrt_v_median"], rel=1e-3)
    assert "AdamW" in finding.fix and "tune" in finding.fix
    assert "SC1502" in codes(report)  # and the biases are decayed too


@pytest.mark.parametrize("target", ["NAdam", "RAdam", "Adamax"])
def test_the_adam_family(run_pipeline, target):
    report = run_kind(run_pipeline, optimizer={"target": f"torch.optim:{target}", "lr": 1e-3, "weight_decay": 1e-3})
    assert codes(report, at_least="warning") == {"SC1501"}
    assert probekit.finding(report, "SC1501").evidence["equivalent_adamw_weight_decay"]["median"] > 0


@pytest.mark.parametrize("optimizer", [
    {"target": "torch.optim:AdamW", "lr": 1e-3, "weight_decay": 0.01},
    {"target": "torch.optim:NAdam", "lr": 1e-3, "weight_decay": 0.01, "decoupled_weight_decay": True},
    {"target": "torch.optim:SGD", "lr": 0.1, "weight_decay": 5e-4},
    {"target": "torch.optim:Adam", "lr": 1e-3},
])
def test_decoupled_or_non_adaptive_decay_is_fine(run_pipeline, optimizer):
    assert not loud(run_kind(run_pipeline, optimizer=optimizer), "optimizer")


def test_decay_on_norm_and_bias_parameters_is_information(run_pipeline):
    report = run_kind(run_pipeline, "cnn", model=advicekit.regularized_cnn,
                      optimizer={"target": "torch.optim:AdamW", "lr": 1e-3, "weight_decay": 0.05})
    assert not loud(report, "optimizer")
    ev = probekit.finding(report, "SC1502").evidence
    assert ev["parameters"] == ["1.weight", "1.bias", "4.weight", "4.bias", "9.bias"]
    # a target that builds two groups (no decay for p.ndim < 2) is quiet
    report = run_kind(run_pipeline, "cnn", model=advicekit.regularized_cnn,
                      optimizer={"target": advicekit.no_decay_on_norms_and_biases, "lr": 1e-3, "weight_decay": 0.05})
    assert not codes(report, "optimizer")
