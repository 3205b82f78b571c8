"""gradients: plant each way gradients fail (cut, frozen, NaN, vanishing, exploding, dead units, no update)
and find it, naming the parameter or module; clean pipelines stay quiet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import casekit
import probekit
from conftest import codes, loud

CHECK = ["gradients"]


def run_kind(run_pipeline, kind="mlp", seed=0, **changes):
    return probekit.run_clean(run_pipeline, CHECK, kind, seed, **changes)




def test_train_step_without_optimizer_step(run_pipeline):
    report = run_kind(run_pipeline, train_step=probekit.step_without_optimizer_step)
    finding = probekit.finding(report, "SC1007")
    assert finding.severity == "error" and len(finding.evidence["unchanged"]) == 4


def test_every_parameter_frozen(run_pipeline):
    report = run_kind(run_pipeline, model=probekit.frozen_mlp)
    assert codes(report, at_least="error") == {"SC1002"}


def test_partly_frozen_is_only_info(run_pipeline):
    def backbone_frozen():
        model = casekit.mlp(64, 10)
        model[0].requires_grad_(False)
        return model

    report = run_kind(run_pipeline, model=backbone_frozen)
    assert probekit.finding(report, "SC1002").severity == "info" and not loud(report, "gradients")


def test_detached_layer_gets_no_gradient(run_pipeline):
    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Linear(64, 32), nn.Linear(32, 10)

        def forward(self, x):
            return self.head(torch.relu(self.body(x)).detach())  # BUG: cuts the graph

    finding = probekit.finding(run_kind(run_pipeline, model=Detached), "SC1001")
    assert finding.severity == "warning" and set(finding.evidence["no_gradient"]) == {"body.weight", "body.bias"}
    assert "body.weight (Linear)" in finding.message


def test_nan_gradient_is_named(run_pipeline):
    class SqrtAtZero(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.gain = casekit.mlp(64, 10), nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return self.net(x) * (1 + torch.sqrt(self.gain))  # d sqrt(g)/dg is infinite at 0

    finding = probekit.finding(run_kind(run_pipeline, model=SqrtAtZero), "SC1003")
    assert "gain" in finding.evidence["nonfinite"]


def test_vanishing_gradients_in_a_deep_sigmoid_stack(run_pipeline):
    def deep():
        layers = [nn.Linear(64, 32), nn.Sigmoid()]
        for _ in range(12):
            layers += [nn.Linear(32, 32), nn.Sigmoid()]
        return nn.Sequential(*layers, nn.Linear(32, 10))

    finding = probekit.finding(run_kind(run_pipeline, model=deep), "SC1004")
    assert "0.weight" in finding.evidence["vanishing"]  # the first layer is furthest from the loss


def test_exploding_gradients_at_a_diverging_learning_rate(run_pipeline):
    # A linear regression model with SGD far above 2/L: every step overshoots and the gradient grows.
    report = run_kind(run_pipeline, "regression", model=lambda: nn.Linear(10, 1),
                      optimizer={"target": "torch.optim:SGD", "lr": 3.0})
    finding = probekit.finding(report, "SC1005")
    assert finding.evidence["norm_after"] > 100 * finding.evidence["norm_initial"]


def test_dead_relus_after_a_diverging_learning_rate(run_pipeline):
    report = run_kind(run_pipeline, optimizer={"target": "torch.optim:SGD", "lr": 10.0})
    finding = probekit.finding(report, "SC1006")
    assert "1" in finding.evidence["dead_units"]  # the module name of the ReLU in the Sequential


@pytest.mark.parametrize("kind", probekit.KINDS)
def test_clean_pipelines_stay_quiet_over_seeds(run_pipeline, kind):
    for seed in range(5):
        report = run_kind(run_pipeline, kind, seed=seed)
        assert not report.crashed
        assert not loud(report, "gradients"), (kind, seed, [(f.code, f.message) for f in loud(report, "gradients")])
