"""Bug: the augmentation adds Gaussian noise with 3x the pixel range: nothing of the digit is left."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

import torch  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits(image=True)
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)


def make_model():
    return torch.nn.Sequential(torch.nn.Flatten(), casekit.mlp(64, 10))


def augment(x):
    return x + 3 * torch.randn_like(x)
