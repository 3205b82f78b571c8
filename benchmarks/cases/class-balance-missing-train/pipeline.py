"""Bug: a split by file order put every 9 in validation."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
_keep = (_yt != 9).nonzero()[:, 0]
train, val = casekit.dataset(_xt[_keep], _yt[_keep]), casekit.dataset(_xv, _yv)


def make_model():
    return casekit.mlp(64, 10)
