"""Bug: regression targets left in raw units (25..346) while outputs start near 0."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.diabetes(standardize_targets=False)
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)


def make_model():
    return casekit.mlp(10, 1)
