"""Leakage: the validation split is the training split (the same dataset object)."""

import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits(image=True)  # 1x8x8 images in [0, 1]
_xt, _yt, _xv, _yv = _xt.clone(), _yt.clone(), _xv.clone(), _yv.clone()
_rng = np.random.default_rng(0)

train = casekit.dataset(_xt, _yt)
val = train


def make_model():
    return torch.nn.Sequential(torch.nn.Flatten(), casekit.mlp(64, 10))

