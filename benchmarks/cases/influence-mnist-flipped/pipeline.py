"""Bug at real scale: the first 20k MNIST training digits with 5% of the labels moved to another class.

Reads ../shared/data/mnist.npz (next to the repository) or the path in $MNIST_NPZ; falls back to scikit-learn's
digits with the same noise when the file is absent. `benchmarks/label_issues.py` compares the result with cleanlab.
"""

import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

_path = pathlib.Path(os.environ.get("MNIST_NPZ", pathlib.Path(__file__).resolve().parents[4] / "shared/data/mnist.npz"))
if _path.is_file():
    _d = np.load(_path)
    _x, _y = _d["x_train"][:20000].astype(np.float32) / 255.0, _d["y_train"][:20000].astype(np.int64)
    _xv, _yv = _d["x_test"][:2000].astype(np.float32) / 255.0, _d["y_test"][:2000].astype(np.int64)
    val = casekit.dataset(torch.from_numpy(_xv[:, None]), torch.from_numpy(_yv))
else:
    (_xt, _yt), (_xvt, _yvt) = casekit.digits(image=True)
    _x, _y = _xt.numpy()[:, 0], _yt.numpy()
    val = casekit.dataset(_xvt, _yvt)
_rng = np.random.default_rng(0)
flipped = _rng.choice(len(_y), int(0.05 * len(_y)), replace=False)
_y = _y.copy()
_y[flipped] = (_y[flipped] + _rng.integers(1, 10, len(flipped))) % 10
train = casekit.dataset(torch.from_numpy(_x[:, None]), torch.from_numpy(_y))
_side = _x.shape[1]


def make_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(_side * _side, 128), nn.ReLU(), nn.Linear(128, 10))
