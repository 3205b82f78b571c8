"""Writes small planted-bug pipelines into a folder (pipeline.py + sanitycheck.yaml), as a user would have them.

Shared by the tests of the faces (CLI, pytest plugin, pre-commit): digits with NaN planted in the training
images listed in `nan.json` next to the pipeline, so a test can add a new bug between two runs.
"""

from __future__ import annotations

import json
from pathlib import Path

CASES = Path(__file__).resolve().parent.parent / "benchmarks" / "cases"

PIPELINE = f'''
import json, pathlib, sys
sys.path.insert(0, {str(CASES)!r})
import casekit

(_xt, _yt), (_xv, _yv) = casekit.digits()
_nan = json.loads((pathlib.Path(__file__).parent / "nan.json").read_text())
_xt = _xt.clone()
if _nan:
    _xt[_nan, 0] = float("nan")
train = casekit.dataset(_xt, _yt)
val = casekit.dataset(_xv, _yv)


def make_model():
    return casekit.mlp(64, 10)
'''

CONFIG = """task: classification
data: {train: pipeline:train, val: pipeline:val}
model: pipeline:make_model
loss: torch.nn:CrossEntropyLoss
"""


def write_pipeline(folder: Path, nan: list[int], config_extra: str = "") -> Path:
    """pipeline.py, nan.json and sanitycheck.yaml in ``folder``; returns the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.py").write_text(PIPELINE)
    (folder / "nan.json").write_text(json.dumps(nan))
    config = folder / "sanitycheck.yaml"
    config.write_text(CONFIG + config_extra)
    return config
