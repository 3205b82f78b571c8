"""Bug: the last layer starts with weights 40x too large (confident random predictions)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

import torch  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)


def make_model():
    model = casekit.mlp(64, 10)
    with torch.no_grad():
        model[-1].weight.mul_(40)
    return model
