"""The user's train_step computes gradients but never calls optimizer.step()."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402
import probekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
train = casekit.dataset(_xt, _yt)
val = casekit.dataset(_xv, _yv)
train_step = probekit.step_without_optimizer_step  # BUG


def make_model():
    return casekit.mlp(64, 10)
