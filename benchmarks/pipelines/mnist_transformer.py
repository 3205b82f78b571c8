"""MNIST (60k/10k) read row by row as a 28-step sequence: Linear(28 -> 64) + learned positions +
nn.TransformerEncoder (2 layers, 4 heads, batch_first, dropout 0.1) -> mean over rows -> Linear(10);
AdamW 1e-3, CrossEntropyLoss(label_smoothing=0.1), batch 64, a per-sample Dataset."""

from __future__ import annotations

import functools
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import DATA, default_step, run_epoch

BATCH = 64


class Rows(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return (torch.from_numpy(self.images[i]).float() / 255 - 0.1307) / 0.3081, int(self.labels[i])


class RowTransformer(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        self.embed = nn.Linear(28, width)
        self.pos = nn.Parameter(torch.zeros(1, 28, width))
        layer = nn.TransformerEncoderLayer(width, 4, dim_feedforward=128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x) + self.pos).mean(1))


@functools.cache
def _splits():
    m = np.load(DATA / "mnist.npz")
    return Rows(m["x_train"], m["y_train"]), Rows(m["x_test"], m["y_test"])


def train_loader() -> DataLoader:
    return DataLoader(_splits()[0], batch_size=BATCH, shuffle=True)


def config() -> dict:
    return {"data": {"train": train_loader(), "val": _splits()[1]}, "model": RowTransformer,
            "loss": nn.CrossEntropyLoss(label_smoothing=0.1), "optimizer": {"target": torch.optim.AdamW, "lr": 1e-3},
            "train_step": default_step, "batch_size": BATCH}


def epoch() -> dict:
    return run_epoch(train_loader(), RowTransformer, lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3),
                     nn.CrossEntropyLoss(label_smoothing=0.1), default_step)
