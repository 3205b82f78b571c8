"""Transfer learning as users write it: a conv backbone with its parameters frozen (requires_grad=False and
eval mode, as after loading pretrained weights; a fixed seeded initialization stands in for them, since nothing
may be downloaded) and a new head (Linear 1024 -> 128, ReLU, Dropout, Linear 10) trained on Fashion-MNIST
60k/10k; Adam 1e-3, batch 64. Its epoch is cheap (no backward through the backbone), so the pre-flight's
data-sized work weighs most here."""

from __future__ import annotations

import functools
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import default_step, fashion_mnist, run_epoch

BATCH = 64


class FashionMNIST(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return ((torch.from_numpy(self.images[i]).float() / 255 - 0.2860) / 0.3530).unsqueeze(0), int(self.labels[i])


def make_model() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(1234)  # the "pretrained" weights: the same in every copy
        backbone = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.AdaptiveAvgPool2d(4), nn.Flatten())
    for p in backbone.parameters():
        p.requires_grad = False
    backbone.eval()
    head = nn.Sequential(nn.Linear(64 * 16, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    return nn.Sequential(backbone, head)


@functools.cache
def _splits():
    tx, ty, vx, vy = fashion_mnist()
    return FashionMNIST(tx, ty), FashionMNIST(vx, vy)


def train_loader() -> DataLoader:
    return DataLoader(_splits()[0], batch_size=BATCH, shuffle=True)


def config() -> dict:
    return {"data": {"train": train_loader(), "val": _splits()[1]}, "model": make_model,
            "loss": nn.CrossEntropyLoss(), "train_step": default_step, "batch_size": BATCH}


def epoch() -> dict:
    return run_epoch(train_loader(), make_model,
                     lambda m: torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3),
                     nn.CrossEntropyLoss(), default_step)
