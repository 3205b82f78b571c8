"""Bug at real scale: real CIFAR-10 images (8,000 to train, 2,000 to validate, from ../shared/data/cifar10_test.npz or
$CIFAR10_NPZ) with 5% of the training labels moved to another class. The out-of-fold classifier on CIFAR pixels is
weak (~45%), so most of what it flags are its own mistakes; the excess over its error rate on the validation split is
what SC701 reports. Falls back to digits with the same noise when the file is absent.
"""

import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

from torch import nn  # noqa: E402

_data = casekit.cifar10(os.environ.get("CIFAR10_NPZ"))
if _data is None:
    _data = casekit.digits(image=True)
(_xt, _yt), (_xv, _yv) = _data
_noisy, flipped = casekit.flip_labels(_yt, 0.05)
train = casekit.dataset(_xt, _noisy)
val = casekit.dataset(_xv, _yv)
_inputs = int(_xt[0].numel())


def make_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(_inputs, 256), nn.ReLU(), nn.Linear(256, 10))
