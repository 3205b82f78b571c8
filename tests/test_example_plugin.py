"""The example third-party plugin (examples/plugin-tiny-dataset) installs, is discovered and runs.

It is installed with pip (no network, no build isolation) into a scratch folder put on PYTHONPATH, so its entry
point is found exactly as an installed plugin's is, without touching the test environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

EXAMPLE = ROOT / "examples" / "plugin-tiny-dataset"

PIPELINE = textwrap.dedent("""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    _x = torch.randn(70, 4, generator=torch.Generator().manual_seed(0))
    _y = torch.tensor([0] * 55 + [1] * 5 + [0] * 5 + [1] * 5)  # class 1: 5 training samples
    train = TensorDataset(_x[:60], _y[:60])
    val = TensorDataset(_x[60:], _y[60:])


    def make_model():
        return nn.Linear(4, 2)
""")

CONFIG = "data: {train: pipeline:train, val: pipeline:val}\nmodel: pipeline:make_model\nloss: torch.nn:CrossEntropyLoss\n"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """PYTHONPATH with the example plugin installed on it (built from a copy: the source folder stays clean)."""
    scratch = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, scratch / "source")
    target = scratch / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             "--no-index", "--target", str(target), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (target / "sanitycheck_tiny_dataset.py").is_file()
    return target


def sanitycheck(site, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "sanitycheck.faces.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_the_installed_plugin_is_listed_and_explained(installed):
    listed = sanitycheck(installed, "list")
    assert listed.returncode == 0, listed.stderr
    assert "tiny-dataset" in listed.stdout and "TINY001" in listed.stdout and "TINY002" in listed.stdout
    assert "failed to load" not in listed.stderr
    explained = sanitycheck(installed, "explain", "TINY002")
    assert explained.returncode == 0 and "What it does" in explained.stdout and "min_per_class" in explained.stdout


def test_the_installed_plugin_runs_and_reports_its_findings(installed, tmp_path):
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    (tmp_path / "sanitycheck.yaml").write_text(CONFIG)
    result = sanitycheck(installed, "run", "sanitycheck.yaml", "--only", "tiny-dataset", "--format", "json",
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # warnings only: below the default fail_on (error)
    report = json.loads(result.stdout)
    assert report["checks"] == [{"name": "tiny-dataset", "status": "failed", "duration_s": report["checks"][0]["duration_s"],
                                 "reason": None}]
    found = {f["code"]: f for f in report["findings"]}
    assert set(found) == {"TINY001", "TINY002"}
    assert found["TINY001"]["evidence"] == {"samples": 60, "min_samples": 1000}
    assert found["TINY002"]["samples"] == {"train": [55, 56, 57, 58, 59]}
    # its settings are validated and applied like a built-in check's
    (tmp_path / "sanitycheck.yaml").write_text(CONFIG + "checks:\n  tiny-dataset: {min_samples: 50, min_per_class: 5}\n")
    quiet = sanitycheck(installed, "run", "sanitycheck.yaml", "--only", "tiny-dataset", "--fail-on", "warning",
                        cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    (tmp_path / "sanitycheck.yaml").write_text(CONFIG + "checks:\n  tiny-dataset: {min_sample: 50}\n")
    typo = sanitycheck(installed, "run", "sanitycheck.yaml", "--only", "tiny-dataset", cwd=tmp_path)
    assert typo.returncode == 2 and "min_sample" in typo.stderr
