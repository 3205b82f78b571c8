"""Leakage: 20 validation images are near copies of training images: contrast/brightness changed, re-quantized."""

import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits(image=True)  # 1x8x8 images in [0, 1]
_xt, _yt, _xv, _yv = _xt.clone(), _yt.clone(), _xv.clone(), _yv.clone()
_rng = np.random.default_rng(0)

_src = _rng.choice(len(_xt), size=20, replace=False)
_gain = torch.from_numpy(_rng.uniform(0.7, 1.3, (20, 1, 1, 1)).astype(np.float32))
_xv[:20] = torch.round((_xt[_src] * _gain + 0.05) * 32) / 32  # another contrast, brightness and 5-bit quantization
_yv[:20] = _yt[_src]
train, val = casekit.dataset(_xt, _yt), casekit.dataset(_xv, _yv)


def make_model():
    return torch.nn.Sequential(torch.nn.Flatten(), casekit.mlp(64, 10))

