"""Bug: outputs (N, 1) against targets (N,): MSELoss broadcasts to (N, N)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.diabetes()
train, val = casekit.dataset(_xt, _yt[:, 0]), casekit.dataset(_xv, _yv[:, 0])


def make_model():
    return casekit.mlp(10, 1)
