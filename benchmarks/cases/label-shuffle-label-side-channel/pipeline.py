"""A train_step that trains on labels from a third field instead of the batch's targets."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402
import probekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
train = probekit.WithTrueLabels(_xt, _yt)
val = casekit.dataset(_xv, _yv)
train_step = probekit.step_reading_side_labels  # BUG


def make_model():
    return casekit.mlp(64, 10)
