"""architecture: dropout feeding BatchNorm (directly or through a conv), BatchNorm trained with batches of 2 (and of
1, which crashes), a bias before BatchNorm as information only; regularized and plain pipelines stay quiet."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

import advicekit
import casekit
import probekit
from conftest import codes, loud

CHECK = ["architecture"]


def run_kind(run_pipeline, kind="mlp", seed=0, **changes):
    return probekit.run_clean(run_pipeline, CHECK, kind, seed, **changes)


def test_dropout_directly_before_batchnorm(run_pipeline):
    report = run_kind(run_pipeline, model=advicekit.dropout_before_batchnorm_mlp)
    assert codes(report, at_least="warning") == {"SC1401"}
    finding = probekit.finding(report, "SC1401")
    assert finding.evidence["pairs"] == [{"dropout": "2", "p": 0.5, "batchnorm": "3", "layers_between": 0}]
    assert "directly" in finding.message


def test_dropout_reaching_batchnorm_through_a_convolution(run_pipeline):
    report = run_kind(run_pipeline, "cnn", model=advicekit.dropout_between_convs_cnn)
    pairs = probekit.finding(report, "SC1401").evidence["pairs"]
    assert pairs == [{"dropout": "3", "p": 0.2, "batchnorm": "5", "layers_between": 1}]


class DropoutOnTheSide(nn.Module):
    """BatchNorm gets the features; dropout only a functional copy of them (x * 1): no module chain links them."""

    def __init__(self):
        super().__init__()
        self.fc, self.bn, self.drop, self.head = nn.Linear(64, 32), nn.BatchNorm1d(32), nn.Dropout(0.5), nn.Linear(32, 10)

    def forward(self, x):
        h = self.fc(x)
        _ = self.drop(h * 1)
        return self.head(torch.relu(self.bn(h)))


def test_dropout_after_the_last_batchnorm_or_off_the_path_is_fine(run_pipeline):
    assert not loud(run_kind(run_pipeline, "cnn", model=advicekit.regularized_cnn), "architecture")
    assert "SC1401" not in codes(run_kind(run_pipeline, model=DropoutOnTheSide), "architecture")


def test_batchnorm_trained_with_batches_of_2(run_pipeline):
    (xt, yt), (xv, yv) = casekit.digits(image=True)
    loader = DataLoader(casekit.dataset(xt, yt), batch_size=2, shuffle=True, drop_last=True)
    report = run_kind(run_pipeline, "cnn", train=loader, model=advicekit.regularized_cnn)
    assert codes(report, at_least="warning") == {"SC1402"}
    ev = probekit.finding(report, "SC1402").evidence
    assert ev["batch_size"] == 2 and ev["source"] == "the training DataLoader" and ev["min_batch"] == 8
    assert probekit.finding(report, "SC1402").severity == "warning"
    # the config's batch_size when data.train is a Dataset
    report = run_kind(run_pipeline, "cnn", batch_size=4, model=advicekit.regularized_cnn)
    assert probekit.finding(report, "SC1402").evidence["batch_size"] == 4


def test_batchnorm1d_with_batches_of_1_is_an_error(run_pipeline):
    (xt, yt), _ = casekit.digits()
    loader = DataLoader(casekit.dataset(xt, yt), batch_size=1)
    model = lambda: nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))  # noqa: E731
    report = run_kind(run_pipeline, train=loader, model=model)
    finding = probekit.finding(report, "SC1402")
    assert finding.severity == "error" and "one value per channel" in finding.message


def test_conv_bias_before_batchnorm_is_information_only(run_pipeline):
    for seed in (0, 1):
        report = run_kind(run_pipeline, "cnn", seed)  # casekit.cnn: Conv2d(bias=True) -> BatchNorm2d
        assert not loud(report, "architecture")
        assert probekit.finding(report, "SC1403").evidence["pairs"] == [
            {"layer": "0", "kind": "Conv2d", "batchnorm": "1"}]


def test_models_without_batchnorm_pass_quietly(run_pipeline):
    for kind in probekit.KINDS:
        report = run_kind(run_pipeline, kind)
        assert report.checks[0].status == "passed"
        if kind != "cnn":
            assert not codes(report, "architecture")
