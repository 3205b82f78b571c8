"""Bug: 4% of the training labels were moved to another class (a labeling error)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
_rng = np.random.default_rng(0)
flipped = _rng.choice(len(_yt), int(0.04 * len(_yt)), replace=False)
_y = _yt.clone()
_y[flipped] = torch.from_numpy((_yt.numpy()[flipped] + _rng.integers(1, 10, len(flipped))) % 10)
train, val = casekit.dataset(_xt, _y), casekit.dataset(_xv, _yv)


def make_model():
    return casekit.mlp(64, 10)
