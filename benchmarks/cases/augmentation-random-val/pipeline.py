"""Bug: the validation dataset applies the training-time random noise augmentation on every read."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import casekit  # noqa: E402

import torch  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402


class Jittered(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i] + 0.05 * torch.randn_like(self.x[i]), self.y[i]


(_xt, _yt), (_xv, _yv) = casekit.digits(image=True)
train, val = casekit.dataset(_xt, _yt), Jittered(_xv, _yv)


def make_model():
    return torch.nn.Sequential(torch.nn.Flatten(), casekit.mlp(64, 10))
