"""PyTorch's MNIST example (benchmarks/cases/mnist-net-*: the example's Net, Adadelta lr 1.0, F.nll_loss, its train
loop as train_step) on a subset of real MNIST (2000 training and 500 test digits): each planted bug is caught at its
severity, and the clean example is quiet. The benchmark cases run the same pipeline on 10k digits."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import CASES, codes, loud

import mnistkit as example  # benchmarks/cases/mnistkit.py (conftest puts benchmarks/cases on sys.path)

pytestmark = pytest.mark.skipif(not example.MNIST.is_file(), reason="../shared/data/mnist.npz is absent")


def bug_case(name: str):
    """The pipeline module of benchmarks/cases/mnist-net-<name>: the bug as planted there."""
    spec = importlib.util.spec_from_file_location(f"mnist_net_{name.replace('-', '_')}", CASES / f"mnist-net-{name}" /
                                                  "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN, TEST = 2000, 500


def loaders(permute_images=False):
    (x, y), test = example.load_mnist(TRAIN, TEST)
    if permute_images:
        x = x[np.random.default_rng(0).permutation(len(x))]  # BUG: the labels stay where they were
    return example.loaders((x, y), test)


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


def test_train_loop_without_zero_grad(run_pipeline):
    report = run(run_pipeline, ["gradients"], train_step=bug_case("no-zero-grad").train_step)
    finding = next(f for f in report.findings if f.code == "SC1008")
    assert finding.severity == "error" and report.exit_code() == 1


def test_nll_loss_fed_raw_scores(run_pipeline):
    report = run(run_pipeline, ["overfit-batch", "init-loss"], model=bug_case("nll-raw-logits").Net)
    assert {"SC305", "SC902"} <= codes(report, at_least="error")
    assert report.findings[0].severity == "error" and "SC301" not in codes(report)
