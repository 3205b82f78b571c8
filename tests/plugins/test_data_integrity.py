"""data-integrity: plant each kind of broken data and find it (with the sample indices); clean data stays quiet."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

import casekit
from conftest import codes, loud

CE = "torch.nn:CrossEntropyLoss"


def digits_report(run_pipeline, xt=None, yt=None, xv=None, yv=None, model=None, loss=CE, **kw):
    (dxt, dyt), (dxv, dyv) = casekit.digits()
    return run_pipeline(
        only=kw.pop("only", ["data-integrity"]),
        train=casekit.dataset(dxt if xt is None else xt, dyt if yt is None else yt),
        val=casekit.dataset(dxv if xv is None else xv, dyv if yv is None else yv),
        model=model or (lambda: casekit.mlp(64, 10)), loss=loss, **kw)


def test_nan_and_inf_inputs_with_their_indices(run_pipeline):
    (xt, _), (xv, _) = casekit.digits()
    xt, xv = xt.clone(), xv.clone()
    xt[[40, 7]] = float("nan")
    xt[300, 5] = float("inf")
    xv[12, 0] = float("nan")
    report = digits_report(run_pipeline, xt=xt, xv=xv)
    finding = next(f for f in report.findings if f.code == "SC801")
    assert finding.severity == "error"
    assert finding.samples == {"train": [7, 40, 300], "val": [12]}


def test_nan_targets(run_pipeline):
    (xt, yt), (xv, yv) = casekit.diabetes()
    yt = yt.clone()
    yt[[3, 9]] = float("nan")
    report = run_pipeline(only=["data-integrity"], task="regression", train=casekit.dataset(xt, yt),
                          val=casekit.dataset(xv, yv), model=lambda: casekit.mlp(10, 1), loss="torch.nn:MSELoss")
    finding = next(f for f in report.findings if f.code == "SC802")
    assert finding.samples == {"train": [3, 9]}


def test_constant_inputs_warning_and_error(run_pipeline):
    (xt, _), _ = casekit.digits()
    some = xt.clone()
    some[[11, 22]] = 0.5
    report = digits_report(run_pipeline, xt=some)
    finding = next(f for f in report.findings if f.code == "SC804")
    assert finding.severity == "warning" and finding.samples["train"] == [11, 22]
    report = digits_report(run_pipeline, xt=torch.zeros_like(xt))
    assert next(f for f in report.findings if f.code == "SC804").severity == "error"


class Mixed(Dataset):
    """Digits where a few samples come out with another shape, empty or as float64 (a second code path)."""

    def __init__(self, x, y, odd_shape=(), empty=(), float64=()):
        self.x, self.y = x, y
        self.odd_shape, self.empty, self.float64 = set(odd_shape), set(empty), set(float64)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if i in self.odd_shape:
            x = x.reshape(8, 8)
        if i in self.empty:
            x = x[:0]
        if i in self.float64:
            x = x.double()
        return x, self.y[i]


def test_inconsistent_shapes_dtypes_and_empty_inputs(run_pipeline):
    (xt, yt), (xv, yv) = casekit.digits()
    train = Mixed(xt, yt, odd_shape=[50, 60], empty=[70], float64=[80])
    report = run_pipeline(only=["data-integrity", "overfit-batch", "init-loss"], train=train,
                          val=casekit.dataset(xv, yv), model=lambda: casekit.mlp(64, 10), loss=CE)
    by_code = {f.code: f for f in report.findings}
    assert by_code["SC805"].samples["train"] == [50, 60, 70]
    assert by_code["SC803"].samples["train"] == [70]
    assert by_code["SC806"].samples["train"] == [80]
    assert not report.crashed  # the odd samples are left out of the training probes


class Prefixes(Dataset):
    """Each digit as a prefix of its 64 pixels, 16 to 64 long: variable-length sequences, as text datasets are."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i, :16 + i % 49], self.y[i]


def pad_to_64(batch):
    seqs, labels = zip(*batch)
    return torch.stack([torch.nn.functional.pad(s, (0, 64 - len(s))) for s in seqs]), torch.stack(labels)


def test_many_sequence_lengths_are_summarized(run_pipeline):
    from torch.utils.data import DataLoader

    (xt, yt), (xv, yv) = casekit.digits()
    report = run_pipeline(only=["data-integrity"], train=DataLoader(Prefixes(xt, yt), batch_size=32, collate_fn=pad_to_64),
                          val=DataLoader(Prefixes(xv, yv), batch_size=32, collate_fn=pad_to_64),
                          model=lambda: casekit.mlp(64, 10), loss=CE)
    finding = next(f for f in report.findings if f.code == "SC805")
    # 49 lengths: the message names the four most common per split and the range, the evidence keeps them all
    assert finding.severity == "info" and "45 more (lengths 16 to 64)" in finding.message
    assert finding.message.count(" x") <= 8 and len(finding.evidence["shapes"]["train"]) == 49


def test_labels_outside_the_models_outputs(run_pipeline):
    (xt, yt), _ = casekit.digits()
    yt = yt.clone()
    yt[[500, 900]] = 10  # an 11th class the 10-output model cannot represent
    report = digits_report(run_pipeline, yt=yt, only=["data-integrity", "overfit-batch", "init-loss"])
    finding = next(f for f in report.findings if f.code == "SC807")
    assert finding.samples == {"train": [500, 900]} and finding.evidence["num_classes"] == 10
    assert not report.crashed


def test_fractional_labels_for_classification(run_pipeline):
    (xt, yt), (xv, yv) = casekit.digits()
    report = run_pipeline(only=["data-integrity"], task="classification", train=casekit.dataset(xt, yt.float() / 2),
                          val=casekit.dataset(xv, yv.float() / 2), model=lambda: casekit.mlp(64, 1),
                          loss="torch.nn.functional:l1_loss")
    assert "SC808" in codes(report, at_least="error")


@pytest.mark.parametrize("factor", [16.0, 255.0, 1e-4])
def test_inputs_far_from_normalized_scale(run_pipeline, factor):
    (xt, _), (xv, _) = casekit.digits()
    report = digits_report(run_pipeline, xt=xt * factor, xv=xv * factor)
    finding = next(f for f in report.findings if f.code == "SC809")
    assert finding.severity == "warning"


class Scaled(torch.nn.Module):
    """Raw 0-255 pixels (uint8) scaled inside the model, as many vision models do: x.float() / 255 before its first
    layer; or (``scale=False``) only converted, the bug SC809 is for."""

    def __init__(self, scale: bool):
        super().__init__()
        self.scale, self.mlp = scale, casekit.mlp(64, 10)

    def forward(self, x):
        x = x.float()
        return self.mlp(x / 255 if self.scale else x)


@pytest.mark.parametrize("scale", [True, False])
def test_a_model_that_scales_its_raw_inputs_itself(run_pipeline, scale):
    (xt, _), (xv, _) = casekit.digits()
    raw = lambda x: (x * 255).round().to(torch.uint8)  # noqa: E731
    report = digits_report(run_pipeline, xt=raw(xt), xv=raw(xv), model=lambda: Scaled(scale))
    assert not report.crashed
    if scale:
        assert "SC809" not in codes(report), [(f.code, f.message) for f in report.findings]
    else:
        finding = next(f for f in report.findings if f.code == "SC809")
        assert finding.severity == "warning" and finding.evidence["first_layer"]["median_abs_max"] > 100


def test_a_batchnorm_before_the_first_layer_scales_raw_features(run_pipeline):
    (xt, _), (xv, _) = casekit.digits()
    model = lambda: torch.nn.Sequential(torch.nn.BatchNorm1d(64), casekit.mlp(64, 10))  # noqa: E731
    assert "SC809" not in codes(digits_report(run_pipeline, xt=xt * 255, xv=xv * 255, model=model))


@pytest.mark.parametrize("planted", ["normalize-in-train-only", "val-not-divided"])
def test_validation_inputs_preprocessed_unlike_the_training_inputs(run_pipeline, planted):
    """Normalize in the training transform only, or a val split that skips the division by the pixel range: the
    splits' scales disagree (SC811); each split alone looks reasonable to SC809."""
    (xt, _), (xv, _) = casekit.digits()  # pixels divided by 16: 0 to 1
    mean, std = xt.mean(), xt.std()
    if planted == "normalize-in-train-only":
        report = digits_report(run_pipeline, xt=(xt - mean) / std, xv=xv)
    else:
        report = digits_report(run_pipeline, xv=xv * 4)  # 0 to 4: still within SC809's range
    finding = next(f for f in report.findings if f.code == "SC811")
    assert finding.severity == "warning" and "SC809" not in codes(report)
    ratio = finding.evidence["std_ratio"]
    assert ratio < 0.5 if planted == "normalize-in-train-only" else ratio > 2


def test_clean_multiclass_binary_and_regression_are_quiet(run_pipeline):
    multi = digits_report(run_pipeline)
    (xt, yt), (xv, yv) = casekit.breast_cancer()
    binary = run_pipeline(only=["data-integrity"], train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv),
                          model=lambda: casekit.mlp(30, 2), loss=CE)
    (xt, yt), (xv, yv) = casekit.diabetes()
    regression = run_pipeline(only=["data-integrity"], task="regression", train=casekit.dataset(xt, yt),
                              val=casekit.dataset(xv, yv), model=lambda: casekit.mlp(10, 1), loss="torch.nn:MSELoss")
    for report in (multi, binary, regression):
        assert report.checks[0].status == "passed" and not loud(report, "data-integrity"), report.findings


def test_unlabeled_samples_the_loss_ignores_are_not_outside_the_classes(run_pipeline):
    # semi-supervised: -1 marks an unlabeled sample and CrossEntropyLoss(ignore_index=-1) skips it
    (xt, yt), _ = casekit.digits()
    labels = yt.clone()
    labels[::3] = -1
    report = digits_report(run_pipeline, yt=labels, loss=torch.nn.CrossEntropyLoss(ignore_index=-1))
    assert "SC807" not in codes(report), [(f.code, f.message) for f in report.findings]
    labels[[100, 200]] = 10  # past the 10 outputs (later than the preflight's batch, which would exit 2)
    report = digits_report(run_pipeline, yt=labels, loss=torch.nn.CrossEntropyLoss(ignore_index=-1))
    finding = next(f for f in report.findings if f.code == "SC807")
    assert finding.severity == "error" and finding.samples["train"] == [100, 200]
