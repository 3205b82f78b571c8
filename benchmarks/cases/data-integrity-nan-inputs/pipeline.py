"""Bug: a few images were read as NaN."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
_xt = _xt.clone()
_xt[[3, 333, 1000]] = float("nan")
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)


def make_model():
    return casekit.mlp(64, 10)
