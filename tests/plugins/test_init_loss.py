"""init-loss: plant each wrong start and find it; clean multi-class, binary and regression pipelines stay quiet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import casekit
from conftest import codes, loud

CE = "torch.nn:CrossEntropyLoss"


def digits_run(run_pipeline, make_model, loss=CE, seed=0, **kw):
    (xt, yt), (xv, yv) = casekit.digits(seed=seed)
    return run_pipeline(only=["init-loss"], train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv),
                        model=make_model, loss=loss, seed=seed, **kw)


def test_softmax_fed_to_cross_entropy(run_pipeline):
    report = digits_run(run_pipeline, lambda: casekit.mlp(64, 10, last=nn.Softmax(dim=1)))
    assert "SC902" in codes(report, at_least="warning")


def test_overconfident_last_layer(run_pipeline):
    def make_model():
        model = casekit.mlp(64, 10)
        with torch.no_grad():
            model[-1].weight.mul_(40)  # large random logits: confidently wrong from step 0
        return model

    report = digits_run(run_pipeline, make_model)
    finding = next(f for f in report.findings if f.code == "SC901")
    assert finding.evidence["measured"] > 1.5 * finding.evidence["expected"]
    assert abs(finding.evidence["expected"] - 2.302585) < 1e-3  # ln 10


def test_reduction_sum_is_named(run_pipeline):
    report = digits_run(run_pipeline, lambda: casekit.mlp(64, 10), loss=nn.CrossEntropyLoss(reduction="sum"))
    finding = next(f for f in report.findings if f.code == "SC901")
    assert "reduction='sum'" in finding.message


def test_nll_loss_on_raw_scores(run_pipeline):
    report = digits_run(run_pipeline, lambda: casekit.mlp(64, 10), loss="torch.nn:NLLLoss")
    assert "SC902" in codes(report)


def test_sigmoid_before_bce_with_logits(run_pipeline):
    (xt, yt), (xv, yv) = casekit.breast_cancer()
    report = run_pipeline(only=["init-loss"], train=casekit.dataset(xt, yt.float()[:, None]),
                          val=casekit.dataset(xv, yv.float()[:, None]),
                          model=lambda: casekit.mlp(30, 1, last=nn.Sigmoid()), loss="torch.nn:BCEWithLogitsLoss")
    assert "SC902" in codes(report)


def test_squashed_or_unbounded_outputs_are_errors(run_pipeline):
    nll = digits_run(run_pipeline, lambda: casekit.mlp(64, 10), loss="torch.nn:NLLLoss")
    assert "SC902" in codes(nll, at_least="error")  # raw scores: the loss is unbounded below
    (xt, yt), (xv, yv) = casekit.breast_cancer()
    binary = dict(only=["init-loss"], train=casekit.dataset(xt, yt.float()[:, None]),
                  val=casekit.dataset(xv, yv.float()[:, None]), loss="torch.nn:BCEWithLogitsLoss")
    squashed = run_pipeline(model=lambda: casekit.mlp(30, 1, last=nn.Sigmoid()), **binary)
    finding = next(f for f in squashed.findings if f.code == "SC902")
    assert finding.severity == "error" and finding.evidence["squashing_confirmed"] is True

    def small_logits():  # raw logits that happen to start inside [0, 1]: not squashed, so not an error
        model = casekit.mlp(30, 1)
        with torch.no_grad():
            model[-1].weight.mul_(0.001)
            model[-1].bias.fill_(0.5)
        return model

    unconfirmed = run_pipeline(model=small_logits, **binary)
    assert "SC902" not in codes(unconfirmed, at_least="error")


def test_regression_outputs_broadcast_against_targets(run_pipeline):
    (xt, yt), (xv, yv) = casekit.diabetes()
    report = run_pipeline(only=["init-loss"], task="regression", train=casekit.dataset(xt, yt[:, 0]),
                          val=casekit.dataset(xv, yv[:, 0]), model=lambda: casekit.mlp(10, 1), loss="torch.nn:MSELoss")
    assert "SC903" in codes(report, at_least="error")


def test_unstandardized_regression_targets(run_pipeline):
    (xt, yt), (xv, yv) = casekit.diabetes(standardize_targets=False)  # targets 25..346, outputs start near 0
    report = run_pipeline(only=["init-loss"], task="regression", train=casekit.dataset(xt, yt),
                          val=casekit.dataset(xv, yv), model=lambda: casekit.mlp(10, 1), loss="torch.nn:MSELoss")
    finding = next(f for f in report.findings if f.code == "SC901")
    assert finding.evidence["measured"] > 2 * finding.evidence["expected"]


@pytest.mark.parametrize("seed", range(5))
def test_clean_pipelines_are_quiet(run_pipeline, seed):
    mlp = digits_run(run_pipeline, lambda: casekit.mlp(64, 10), seed=seed)
    (xt, yt), (xv, yv) = casekit.digits(seed=seed, image=True)
    cnn = run_pipeline(only=["init-loss"], train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv),
                       model=casekit.cnn, loss=CE, seed=seed)
    (xt, yt), (xv, yv) = casekit.breast_cancer(seed=seed)
    binary = run_pipeline(only=["init-loss"], train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv),
                          model=lambda: casekit.mlp(30, 2), loss=CE, seed=seed)
    logits = run_pipeline(only=["init-loss"], train=casekit.dataset(xt, yt.float()[:, None]),
                          val=casekit.dataset(xv, yv.float()[:, None]), model=lambda: casekit.mlp(30, 1),
                          loss="torch.nn:BCEWithLogitsLoss", seed=seed)
    (xt, yt), (xv, yv) = casekit.diabetes(seed=seed)
    regression = run_pipeline(only=["init-loss"], task="regression", train=casekit.dataset(xt, yt),
                              val=casekit.dataset(xv, yv), model=lambda: casekit.mlp(10, 1),
                              loss="torch.nn:MSELoss", seed=seed)
    for report in (mlp, cnn, binary, logits, regression):
        assert report.checks[0].status == "passed"
        assert not loud(report, "init-loss"), [f.message for f in report.findings]


def zeros_or_not(run_pipeline, make_model, seed=0):
    """Digits as "is it a 0?" (10% positives), float targets (n, 1), BCEWithLogitsLoss with pos_weight = 9 against
    the imbalance, as users write it."""
    (xt, yt), (xv, yv) = casekit.digits(seed=seed)
    positives = (yt == 0).float().mean()
    loss = nn.BCEWithLogitsLoss(pos_weight=((1 - positives) / positives).reshape(1))
    return run_pipeline(only=["init-loss"], train=casekit.dataset(xt, (yt == 0).float()[:, None]),
                        val=casekit.dataset(xv, (yv == 0).float()[:, None]), model=make_model, loss=loss, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pos_weight_raises_the_expected_initial_loss(run_pipeline, seed):
    # "is it a 7?" on MNIST with pos_weight 8.6 started at 1.38 and was an SC901 warning against ln 2: weighted,
    # a fresh model's loss is ln 2 (1 + (pos_weight - 1) p) = 1.24 there
    report = zeros_or_not(run_pipeline, lambda: casekit.mlp(64, 1), seed)
    assert not loud(report, "init-loss"), [(f.code, f.message) for f in report.findings]


def test_pos_weight_with_an_overconfident_last_layer_is_still_found(run_pipeline):
    def make_model():
        model = casekit.mlp(64, 1)
        with torch.no_grad():
            model[-1].weight.mul_(40)
        return model

    finding = next(f for f in zeros_or_not(run_pipeline, make_model).findings if f.code == "SC901")
    assert finding.evidence["measured"] > finding.evidence["expected"] > 0.6931 * 1.5


def autoencoder(last: nn.Module):
    """A small autoencoder over 12x12 images (the targets are the inputs), ending in ``last``."""
    return lambda: nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, 144), last,
                                 nn.Unflatten(1, (1, 12, 12)))


def dark_digits(seed=0):
    """Digit images in [0, 1] with a black margin, like MNIST's (12x12: mean 0.14, variance 0.086)."""
    (xt, _), (xv, _) = casekit.digits(seed=seed, image=True)
    return nn.functional.pad(xt, (2, 2, 2, 2)), nn.functional.pad(xv, (2, 2, 2, 2))


def reconstruct(run_pipeline, make_model, low=0.0, seed=0):
    xt, xv = dark_digits(seed)
    return run_pipeline(only=["init-loss"], task="regression", **_pair((low + (1 - low) * xt, low + (1 - low) * xv)),
                        model=make_model, loss="torch.nn:MSELoss", seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_squashed_autoencoder_outputs_start_at_their_middle(run_pipeline, seed):
    # a convolutional autoencoder ending in a sigmoid on real MNIST started at 0.26, 2.7x the pixels' variance
    # (0.098): SC901, though a sigmoid starts at 0.5 whatever the targets' mean; the same with tanh over [-1, 1]
    for last, low in ((nn.Sigmoid(), 0.0), (nn.Tanh(), -1.0)):
        report = reconstruct(run_pipeline, autoencoder(last), low, seed)
        assert report.checks[0].status == "passed"
        assert not loud(report, "init-loss"), [f.message for f in report.findings]


def test_autoencoder_losses_far_from_their_start_are_still_found(run_pipeline):
    summed = run_pipeline(only=["init-loss"], task="regression", **_pair(dark_digits()),
                          model=autoencoder(nn.Sigmoid()), loss=nn.MSELoss(reduction="sum"))
    assert "reduction='sum'" in next(f for f in summed.findings if f.code == "SC901").message
    xt, xv = dark_digits()  # raw outputs (no squashing) against targets far from zero
    far = run_pipeline(only=["init-loss"], task="regression", **_pair((5 + xt, 5 + xv)),
                       model=autoencoder(nn.Identity()), loss="torch.nn:MSELoss")
    assert "SC901" in codes(far, at_least="warning")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_raw_outputs_on_targets_of_the_unit_scale_start_at_the_loss_of_predicting_zero(run_pipeline, seed):
    """PyTorch's super-resolution example (raw conv outputs, pixels in [0, 1] around 0.45) starts at 0.30 against a
    variance of 0.055: the loss of predicting 0 (0.26), where such a model starts; no fault. A last layer scaled up
    30x is still far above that."""
    xt, xv = dark_digits(seed)
    images = (0.3 + 0.7 * xt, 0.3 + 0.7 * xv)  # mean about 0.4, as photographs' pixels
    clean = run_pipeline(only=["init-loss"], task="regression", **_pair(images), model=autoencoder(nn.Identity()),
                         loss="torch.nn:MSELoss", seed=seed)
    assert clean.checks[0].status == "passed" and not loud(clean, "init-loss"), [f.message for f in clean.findings]

    def scaled_up():
        model = autoencoder(nn.Identity())()
        with torch.no_grad():
            model[3].weight.mul_(30)
        return model

    loud_start = run_pipeline(only=["init-loss"], task="regression", **_pair(images), model=scaled_up,
                              loss="torch.nn:MSELoss", seed=seed)
    assert "SC901" in codes(loud_start, at_least="warning")


def _pair(images):
    """Train and val datasets whose targets are their inputs."""
    xt, xv = images
    return {"train": casekit.dataset(xt, xt), "val": casekit.dataset(xv, xv)}
