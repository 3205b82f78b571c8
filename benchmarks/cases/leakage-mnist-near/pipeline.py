"""Leakage at real scale: MNIST (60k train / 10k test as val) where 200 validation images are near copies of
training images (JPEG-like re-encoding, 1-2 px shifts and crops, brightness/contrast, resizes; see
benchmarks/neardup.py). Needs ../shared/data/mnist.npz (or SANITYCHECK_DATA); without it, sklearn digits
upsampled to 28x28 stand in."""

import os
import pathlib
import sys

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))
import casekit  # noqa: E402
from neardup import near_copies  # noqa: E402

_data = pathlib.Path(os.environ.get("SANITYCHECK_DATA", HERE.parents[3] / "shared" / "data")) / "mnist.npz"
if _data.exists():
    _m = np.load(_data)
    _xt, _yt, _xv, _yv = _m["x_train"], _m["y_train"], _m["x_test"].copy(), _m["y_test"].copy()
else:  # stand-in: digits, upsampled
    (_a, _b), (_c, _d) = casekit.digits(image=True)
    _up = lambda x: (torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear")[:, 0] * 255).byte().numpy()  # noqa: E731
    _xt, _yt, _xv, _yv = _up(_a), _b.numpy(), _up(_c), _d.numpy().copy()
_rng = np.random.default_rng(0)
_planted = min(200, len(_xv) // 20)
_src = _rng.choice(len(_xt), size=_planted, replace=False)
_copies, _ = near_copies(torch.from_numpy(_xt[_src][:, None].astype(np.float32) / 255), _rng)
_xv[:_planted] = (_copies[:, 0].clamp(0, 1) * 255).round().byte().numpy()
_yv[:_planted] = _yt[_src]
train = casekit.dataset(torch.from_numpy(_xt), torch.from_numpy(_yt.astype(np.int64)))
val = casekit.dataset(torch.from_numpy(_xv), torch.from_numpy(_yv.astype(np.int64)))


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), casekit.mlp(784, 10))

    def forward(self, x):
        return self.net(x.float() / 255)


def make_model():
    return _Model()
