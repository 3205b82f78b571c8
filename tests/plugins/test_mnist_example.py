"""PyTorch's MNIST example (benchmarks/cases/mnist-net-*: the example's Net, Adadelta lr 1.0, F.nll_loss, its train
loop as train_step) on a subset of real MNIST (2000 training and 500 test digits): each planted bug is caught at its
severity, and the clean example is quiet. The benchmark cases run the same pipeline on 10k digits."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import CASES, codes, loud

SPEC = importlib.util.spec_from_file_location("mnist_example", CASES / "mnist-net-clean" / "pipeline.py")
example = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(example)
pytestmark = pytest.mark.skipif(not example.MNIST.is_file(), reason="../shared/data/mnist.npz is absent")

TRAIN, TEST = 2000, 500


def loaders(permute_images=False):
    (x, y), (xt, yt) = example.load_mnist()
    x, y, xt, yt = x[:TRAIN], y[:TRAIN], xt[:TEST], yt[:TEST]
    if permute_images:
        x = x[np.random.default_rng(0).permutation(len(x))]  # BUG: the labels stay where they were
    return (torch.utils.data.DataLoader(example.MNISTDataset(x, y), batch_size=64, shuffle=True),
            torch.utils.data.DataLoader(example.MNISTDataset(xt, yt), batch_size=1000))


def run(run_pipeline, only, permute_images=False, model=None, train_step=None, **config):
    train, val = loaders(permute_images)
    return run_pipeline(only=only, train=train, val=val, model=model or example.Net,
                        loss="torch.nn.functional:nll_loss", optimizer={"target": "torch.optim:Adadelta", "lr": 1.0},
                        train_step=train_step or example.train_step, batch_size=64, **config)


QUICK_MEMORIZATION = {"label-shuffle": {"memorize_seconds": 1.0}}  # SC203 (info) is not under test here


def test_images_permuted_away_from_their_labels(run_pipeline):
    report = run(run_pipeline, ["label-shuffle"], permute_images=True, checks=QUICK_MEMORIZATION)
    assert "SC201" in codes(report, at_least="error"), [(f.code, f.message) for f in report.findings]
    assert report.exit_code() == 1


def test_clean_example_is_quiet(run_pipeline):
    report = run(run_pipeline, ["label-shuffle", "gradients", "overfit-batch", "init-loss"], checks=QUICK_MEMORIZATION)
    assert not report.crashed and report.exit_code() == 0
    for check in ("label-shuffle", "gradients", "overfit-batch", "init-loss"):
        assert not loud(report, check), [(f.code, f.message) for f in loud(report, check)]
    assert "SC205" not in codes(report)  # a verdict, not "inconclusive"


def step_without_zero_grad(model, batch, loss_fn, optimizer):
    data, target = batch
    model.train()
    output = model(data)  # BUG: optimizer.zero_grad() is missing
    loss = F.nll_loss(output, target)
    loss.backward()
    optimizer.step()
    return loss


def test_train_loop_without_zero_grad(run_pipeline):
    report = run(run_pipeline, ["gradients"], train_step=step_without_zero_grad)
    finding = next(f for f in report.findings if f.code == "SC1008")
    assert finding.severity == "error" and report.exit_code() == 1


class RawScoresNet(example.Net):
    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = self.dropout1(x)
        x = self.dropout2(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)  # BUG: no F.log_softmax, yet the loss is F.nll_loss


def test_nll_loss_fed_raw_scores(run_pipeline):
    report = run(run_pipeline, ["overfit-batch", "init-loss"], model=RawScoresNet)
    assert {"SC305", "SC902"} <= codes(report, at_least="error")
    assert report.findings[0].severity == "error" and "SC301" not in codes(report)
