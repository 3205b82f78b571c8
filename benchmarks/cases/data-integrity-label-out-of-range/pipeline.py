"""Bug: a few samples carry label 10 ("unknown") but the model has 10 outputs."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
_yt = _yt.clone()
_yt[[400, 800]] = 10
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)


def make_model():
    return casekit.mlp(64, 10)
