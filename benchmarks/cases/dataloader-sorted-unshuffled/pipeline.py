"""Bug: the training digits are sorted by label and the DataLoader does not shuffle (batches of one class)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

(_xt, _yt), (_xv, _yv) = casekit.digits()
_order = torch.argsort(_yt, stable=True)
train = DataLoader(casekit.dataset(_xt[_order], _yt[_order]), batch_size=32)  # shuffle defaults to False
val = casekit.dataset(_xv, _yv)


def make_model():
    return casekit.mlp(64, 10)
