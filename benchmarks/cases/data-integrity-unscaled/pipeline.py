"""Bug: pixel values fed raw (0..16), never scaled."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits(scale=False)
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)


def make_model():
    return casekit.mlp(64, 10)
