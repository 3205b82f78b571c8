"""MNIST as in PyTorch's examples/mnist/main.py: the same Net (conv1 32, conv2 64, dropout, fc1 9216->128, fc2,
log_softmax), nll_loss, Adadelta lr 1.0, batch 64, a torchvision-style per-sample Dataset (uint8 image ->
ToTensor -> Normalize((0.1307,), (0.3081,)) in ``__getitem__``). Real MNIST from ../shared/data/mnist.npz."""

from __future__ import annotations

import functools
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from . import CASES, DATA, run_epoch

sys.path.insert(0, str(CASES))
from mnistkit import MNISTDataset as MNIST, Net, train_step  # noqa: E402  (the example itself: benchmarks/cases)

BATCH = 64


@functools.cache
def _splits():
    m = np.load(DATA / "mnist.npz")
    return MNIST(m["x_train"], m["y_train"]), MNIST(m["x_test"], m["y_test"])


def train_loader() -> DataLoader:
    return DataLoader(_splits()[0], batch_size=BATCH, shuffle=True, num_workers=1)


def config() -> dict:
    return {"data": {"train": train_loader(), "val": _splits()[1]}, "model": Net, "loss": F.nll_loss,
            "optimizer": {"target": torch.optim.Adadelta, "lr": 1.0}, "train_step": train_step,
            "batch_size": BATCH, "num_classes": 10}


def epoch() -> dict:
    return run_epoch(train_loader(), Net, lambda m: torch.optim.Adadelta(m.parameters(), lr=1.0), F.nll_loss,
                     train_step)
