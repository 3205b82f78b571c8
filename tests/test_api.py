"""The Python API: sanitycheck.run from a YAML path, a dict, or plain objects; suppressions; Report.ok."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import casekit
import sanitycheck
from conftest import ROOT
from sanitycheck.engine.errors import ConfigError
from sanitycheck.engine.models import FindingsError

FAST = ["class-balance", "data-integrity"]  # instant checks: the API is under test here, not the probes


@pytest.fixture(scope="module")
def digits():
    (xt, yt), (xv, yv) = casekit.digits()
    return casekit.dataset(xt, yt), casekit.dataset(xv, yv)


@pytest.fixture(scope="module")
def nan_digits():
    """Digits with NaN planted in three training images (data-integrity SC801, an error)."""
    (xt, yt), (xv, yv) = casekit.digits()
    xt = xt.clone()
    xt[[5, 50, 500], 3] = float("nan")
    return casekit.dataset(xt, yt), casekit.dataset(xv, yv)


def make_model():
    return casekit.mlp(64, 10)


def test_import_is_free_of_torch():
    code = "import sys, sanitycheck; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_objects_without_yaml_clean(digits):
    train, val = digits
    report = sanitycheck.run(model=make_model, train=train, val=val, loss=torch.nn.CrossEntropyLoss(), only=FAST)
    assert report.ok
    assert [c.name for c in report.checks] == FAST
    assert report.splits["train"].samples == len(train)
    assert sum(report.splits["val"].class_counts) == len(val)
    report.raise_for_findings()  # does not raise


def test_objects_without_yaml_planted_bug(nan_digits):
    train, val = nan_digits
    report = sanitycheck.run(model=make_model(), train=train, val=val, loss=torch.nn.CrossEntropyLoss, only=FAST)
    assert not report.ok
    nan = [f for f in report.findings if f.code == "SC801"]
    assert nan and nan[0].samples["train"][:3] == [5, 50, 500]
    with pytest.raises(FindingsError) as info:
        report.raise_for_findings()
    assert "SC801" in str(info.value) and "fix:" in str(info.value)


def test_yaml_path_with_object_override(nan_digits):
    """A config file's data entries can be replaced by objects; the rest of the file still applies."""
    train, _ = nan_digits
    path = ROOT / "examples" / "digits" / "clean" / "sanitycheck.yaml"
    report = sanitycheck.run(path, train=train, only=FAST)
    assert {f.code for f in report.failing()} == {"SC801"}
    assert report.config == str(path)


def test_data_keys_beside_data_objects_are_kept(digits):
    """``sanitycheck.run(train=..., data={"input_key": ...})``: the data section was replaced by the objects alone,
    so the keys were dropped without a word (a model of two named inputs then failed on one)."""
    from sanitycheck.faces.api import build_config

    class Named(torch.utils.data.Dataset):
        def __init__(self, ds):
            self.ds = ds

        def __len__(self):
            return len(self.ds)

        def __getitem__(self, i):
            x, y = self.ds[i]
            return {"pixels": x, "digit": y, "row": i}

    train, val = Named(digits[0]), Named(digits[1])
    keys = {"input_key": "pixels", "target_key": "digit"}
    cfg = build_config(model=make_model, train=train, val=val, loss=torch.nn.CrossEntropyLoss(), data=keys)
    assert (cfg.data.input_key, cfg.data.target_key, cfg.data.train) == ("pixels", "digit", train)
    report = sanitycheck.run(model=make_model, train=train, val=val, loss=torch.nn.CrossEntropyLoss(), data=keys,
                             only=FAST)
    assert report.ok and report.splits["train"].samples == len(train)
    path = ROOT / "examples" / "digits" / "clean" / "sanitycheck.yaml"
    from_file = build_config(path, train=train, data=keys)
    assert (from_file.data.input_key, from_file.data.train) == ("pixels", train) and from_file.data.val is not None


def test_missing_objects_is_a_config_error(digits):
    with pytest.raises(ConfigError, match="loss="):
        sanitycheck.run(model=make_model, train=digits[0])


def test_ignore_suppresses_a_code(nan_digits):
    train, val = nan_digits
    kwargs = dict(model=make_model, train=train, val=val, loss=torch.nn.CrossEntropyLoss(), only=["data-integrity"])
    assert not sanitycheck.run(**kwargs).ok
    quiet = sanitycheck.run(**kwargs, checks={"data-integrity": {"ignore": ["SC801"]}})
    assert quiet.ok and not [f for f in quiet.findings if f.code == "SC801"]
    assert quiet.checks[0].status == "passed"


def test_ignore_rejects_another_checks_code(digits):
    with pytest.raises(ConfigError, match="checks.data-integrity.ignore.*SC301"):
        sanitycheck.run(model=make_model, train=digits[0], loss=torch.nn.CrossEntropyLoss(), only=FAST,
                        checks={"data-integrity": {"ignore": ["SC301"]}})


def test_a_regression_loss_without_a_task_is_regression(run_pipeline):
    """nn.MSELoss on float targets with no `task` in the config was read as classification: diabetes gave SC808
    (targets that are not class ids) and SC201 errors, and target-leakage crashed. A regression loss now means
    task: regression unless the config names a task."""
    from conftest import codes

    (xt, yt), (xv, yv) = casekit.diabetes()
    pipeline = dict(train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv), model=lambda: casekit.mlp(10, 1),
                    loss=torch.nn.MSELoss(), only=["data-integrity", "label-shuffle", "target-leakage"])
    inferred = run_pipeline(**pipeline)
    assert not codes(inferred, at_least="warning") and all(c.status == "passed" for c in inferred.checks), \
        [(f.code, f.message) for f in inferred.findings]
    named = run_pipeline(task="classification", **pipeline)  # a task the config names is kept
    assert "SC808" in codes(named, at_least="error")
    assert {c.name: c.status for c in named.checks}["target-leakage"] == "skipped"
