"""MNIST as in PyTorch's examples/mnist/main.py: the same Net (conv1 32, conv2 64, dropout, fc1 9216->128, fc2,
log_softmax), nll_loss, Adadelta lr 1.0, batch 64, a torchvision-style per-sample Dataset (uint8 image ->
ToTensor -> Normalize((0.1307,), (0.3081,)) in ``__getitem__``). Real MNIST from ../shared/data/mnist.npz."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import DATA, run_epoch

BATCH = 64


class MNIST(Dataset):
    """Per-sample reads, like torchvision.datasets.MNIST with ToTensor + Normalize."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.images[i]).float().div_(255).unsqueeze(0)  # ToTensor
        return (x - 0.1307) / 0.3081, int(self.labels[i])  # Normalize


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def train_step(model, batch, loss_fn, optimizer):
    data, target = batch
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(data), target)
    loss.backward()
    optimizer.step()
    return loss


_data = None


def _splits():
    global _data
    if _data is None:
        m = np.load(DATA / "mnist.npz")
        _data = MNIST(m["x_train"], m["y_train"]), MNIST(m["x_test"], m["y_test"])
    return _data


def train_loader() -> DataLoader:
    return DataLoader(_splits()[0], batch_size=BATCH, shuffle=True, num_workers=1)


def config() -> dict:
    return {"data": {"train": train_loader(), "val": _splits()[1]}, "model": Net, "loss": F.nll_loss,
            "optimizer": {"target": torch.optim.Adadelta, "lr": 1.0}, "train_step": train_step,
            "batch_size": BATCH, "num_classes": 10}


def epoch() -> dict:
    return run_epoch(train_loader(), Net, lambda m: torch.optim.Adadelta(m.parameters(), lr=1.0), F.nll_loss,
                     train_step)
