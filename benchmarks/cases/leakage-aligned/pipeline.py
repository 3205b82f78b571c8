"""Leakage: 30 of 300 validation pictures are copies of training pictures that were shifted by 1-2 pixels,
cropped by 1-2 pixels per side and resized back, or colour-cast (benchmarks/neardup.py), half re-encoded too."""

import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent.parent))
from neardup import near_copies  # noqa: E402

_rng = np.random.default_rng(0)
# smooth 3x32x32 colour pictures: random 10x10 patterns upsampled (no photos ship with the packages here)
_x = F.interpolate(torch.from_numpy(_rng.random((1800, 3, 10, 10)).astype(np.float32)), size=(32, 32),
                   mode="bilinear", align_corners=False)
_y = torch.from_numpy(_rng.integers(0, 10, 1800))
_xt, _yt, _xv, _yv = _x[:1500], _y[:1500], _x[1500:].clone(), _y[1500:].clone()
_src = _rng.choice(1500, size=30, replace=False)
_xv[:30], _ = near_copies(_xt[_src], _rng, ["shift", "crop", "colour"])
_yv[:30] = _yt[_src]
train = torch.utils.data.TensorDataset(_xt, _yt)
val = torch.utils.data.TensorDataset(_xv, _yv)


def make_model():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10))
