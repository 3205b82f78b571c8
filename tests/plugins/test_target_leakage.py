"""target-leakage: plant the label in an input column (as is, one-hot, a regression target's copy) and find it, naming
the feature; clean scikit-learn datasets (breast cancer, digits, iris, wine, diabetes) and image inputs stay quiet."""

from __future__ import annotations

import pytest
import torch

import casekit
from conftest import loud

CHECK = ["target-leakage"]
CE = "torch.nn:CrossEntropyLoss"


def run(run_pipeline, train, val, task="classification", loss=CE, **kw):
    x = train[0]
    return run_pipeline(only=CHECK, task=task, train=casekit.dataset(*train),
                        val=casekit.dataset(*val) if val is not None else None,
                        model=lambda: casekit.mlp(x[0].numel(), 1 if task == "regression" else 10), loss=loss, **kw)


def with_label(split, one_hot=False, scale=1.0):
    x, y = split
    extra = torch.nn.functional.one_hot(y, int(y.max()) + 1).float() if one_hot else y.float()[:, None] * scale
    return torch.cat([x.reshape(len(x), -1), extra], 1), y


@pytest.mark.parametrize("dataset", ["breast_cancer", "digits", "iris", "wine"])
def test_clean_datasets_are_quiet_and_a_copied_label_is_named(run_pipeline, dataset):
    (xt, yt), (xv, yv) = getattr(casekit, dataset)()
    clean = run(run_pipeline, (xt, yt), (xv, yv))
    assert not clean.crashed and not loud(clean, "target-leakage")
    copied = run(run_pipeline, with_label((xt, yt), scale=0.37), with_label((xv, yv), scale=0.37))
    finding = next(f for f in copied.findings if f.code == "SC1801")
    width = xt.reshape(len(xt), -1).shape[1]
    assert finding.severity == "warning" and finding.evidence["features"] == [width]
    assert f"Input feature {width} alone" in finding.message


@pytest.mark.parametrize("dataset", ["digits", "wine"])
def test_a_one_hot_of_the_label_among_the_inputs(run_pipeline, dataset):
    (xt, yt), (xv, yv) = getattr(casekit, dataset)()
    report = run(run_pipeline, with_label((xt, yt), one_hot=True), with_label((xv, yv), one_hot=True))
    finding = next(f for f in report.findings if f.code == "SC1801")
    width, classes = xt.shape[1], int(yt.max()) + 1
    assert finding.evidence["features"] == list(range(width, width + classes))


def test_regression_target_copied(run_pipeline):
    (xt, yt), (xv, yv) = casekit.diabetes()
    clean = run(run_pipeline, (xt, yt), (xv, yv), task="regression", loss="torch.nn:MSELoss")
    assert not loud(clean, "target-leakage")
    leak = lambda x, y: torch.cat([x, 3 * y + 1], 1)  # noqa: E731  a rescaled copy of the target
    report = run(run_pipeline, (leak(xt, yt), yt), (leak(xv, yv), yv), task="regression", loss="torch.nn:MSELoss")
    finding = next(f for f in report.findings if f.code == "SC1801")
    assert finding.evidence["features"] == [10] and finding.evidence["metric"] == "R²"


def test_without_a_validation_split_a_quarter_of_train_is_held_out(run_pipeline):
    (xt, yt), _ = casekit.breast_cancer()
    report = run(run_pipeline, with_label((xt, yt)), None)
    finding = next(f for f in report.findings if f.code == "SC1801")
    assert finding.evidence["eval_split"] == "train" and finding.evidence["features"] == [30]


def test_image_inputs_are_quiet(run_pipeline):
    (xt, yt), (xv, yv) = casekit.digits(image=True)
    report = run_pipeline(only=CHECK, train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv), model=casekit.cnn,
                          loss=CE)
    assert not report.crashed and not loud(report, "target-leakage")


def test_tabular_pipeline_with_dict_batches_and_workers(run_pipeline):
    """benchmarks/cases/tabular-mlp-*: a table of named columns, dict samples, DataLoaders with 2 workers; the
    planted bug keeps the 'target' column among the features (input feature 30)."""
    import importlib.util

    from conftest import CASES

    spec = importlib.util.spec_from_file_location("tabular_leak", CASES / "tabular-mlp-label-in-features" / "pipeline.py")
    leak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(leak)
    report = run_pipeline(only=CHECK, train=leak.train_loader, val=leak.val_loader, model=leak.MLP, loss=CE,
                          train_step=leak.train_step, data={"input_key": "features", "target_key": "label"})
    finding = next(f for f in report.findings if f.code == "SC1801")
    assert finding.evidence["features"] == [leak.FEATURES.index("target")] == [30]
