"""Leakage: 15 training images appear twice in train, the copy with another label (double annotation)."""

import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits(image=True)  # 1x8x8 images in [0, 1]
_xt, _yt, _xv, _yv = _xt.clone(), _yt.clone(), _xv.clone(), _yv.clone()
_rng = np.random.default_rng(0)

_src = torch.from_numpy(_rng.choice(len(_xt), size=15, replace=False))
_xt = torch.cat([_xt, _xt[_src]])
_yt = torch.cat([_yt, (_yt[_src] + 3) % 10])
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)


def make_model():
    return torch.nn.Sequential(torch.nn.Flatten(), casekit.mlp(64, 10))

