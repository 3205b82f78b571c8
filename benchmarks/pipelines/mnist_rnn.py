"""PyTorch's examples/mnist_rnn on real MNIST (60k/10k), as the example writes it: its Net (an LSTM over the 28
rows, batch_first, the last step's output through BatchNorm1d, Dropout2d, two Linear layers and log_softmax),
F.nll_loss, Adadelta lr 0.1, batch 64, ToTensor + Normalize((0.1307,), (0.3081,)) written out in a per-sample
Dataset (torchvision does not import here), the example's train loop as the step."""

from __future__ import annotations

import functools
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from . import CASES, DATA, run_epoch

sys.path.insert(0, str(CASES))
# the dataset and train loop body mnist_rnn's main.py shares with examples/mnist
from mnistkit import MNISTDataset as MNIST, train_step  # noqa: E402

BATCH = 64


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(input_size=28, hidden_size=64, batch_first=True)
        self.batchnorm = nn.BatchNorm1d(64)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, input):
        input = input.reshape(-1, 28, 28)  # (batch, 1, 28, 28) -> (batch, 28, 28): rows as time steps
        output, hidden = self.rnn(input)
        output = output[:, -1, :]  # the last step's output
        output = self.batchnorm(output)
        output = self.dropout1(output)
        output = self.fc1(output)
        output = F.relu(output)
        output = self.dropout2(output)
        output = self.fc2(output)
        return F.log_softmax(output, dim=1)


@functools.cache
def _splits():
    m = np.load(DATA / "mnist.npz")
    return MNIST(m["x_train"], m["y_train"]), MNIST(m["x_test"], m["y_test"])


def train_loader() -> DataLoader:
    return DataLoader(_splits()[0], batch_size=BATCH, shuffle=True)


def config() -> dict:
    return {"data": {"train": train_loader(), "val": DataLoader(_splits()[1], batch_size=1000)}, "model": Net,
            "loss": "torch.nn.functional:nll_loss", "optimizer": {"target": torch.optim.Adadelta, "lr": 0.1},
            "train_step": train_step, "batch_size": BATCH}


def epoch() -> dict:
    return run_epoch(train_loader(), Net, lambda m: torch.optim.Adadelta(m.parameters(), lr=0.1), F.nll_loss,
                     train_step)
