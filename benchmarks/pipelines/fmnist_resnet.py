"""Fashion-MNIST (60k/10k) with a small ResNet as users write one after torchvision's: BasicBlocks with
BatchNorm and 1x1 projection shortcuts (16/32/64 channels), a torchvision-style per-sample Dataset with
RandomCrop(28, padding=2) + RandomHorizontalFlip for training, SGD lr 0.05 momentum 0.9 nesterov weight decay
5e-4, gradient clipping in the step, batch 128, two loader workers."""

from __future__ import annotations

import functools
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import fashion_mnist, run_epoch

BATCH, LR = 128, 0.05


class FashionMNIST(Dataset):
    def __init__(self, images, labels, train: bool):
        self.images, self.labels, self.train = images, labels, train

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = torch.from_numpy(self.images[i].astype(np.float32) / 255).unsqueeze(0)
        if self.train:
            img = F.pad(img, (2, 2, 2, 2))
            dy, dx = np.random.randint(0, 5, 2)
            img = img[:, dy:dy + 28, dx:dx + 28]
            if np.random.rand() < 0.5:
                img = img.flip(-1)
        return (img - 0.2860) / 0.3530, int(self.labels[i])


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def train_step(model, batch, loss_fn, optimizer):
    model.train()
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return loss


@functools.cache
def _splits():
    tx, ty, vx, vy = fashion_mnist()
    return FashionMNIST(tx, ty, train=True), FashionMNIST(vx, vy, train=False)


def train_loader() -> DataLoader:
    return DataLoader(_splits()[0], batch_size=BATCH, shuffle=True, num_workers=2)


def config() -> dict:
    return {"data": {"train": train_loader(), "val": _splits()[1]}, "model": ResNet, "loss": nn.CrossEntropyLoss(),
            "optimizer": {"target": torch.optim.SGD, "lr": LR, "momentum": 0.9, "nesterov": True,
                          "weight_decay": 5e-4},
            "train_step": train_step, "batch_size": BATCH}


def epoch() -> dict:
    return run_epoch(train_loader(), ResNet, lambda m: torch.optim.SGD(m.parameters(), lr=LR, momentum=0.9,
                                                                      nesterov=True, weight_decay=5e-4),
                     nn.CrossEntropyLoss(), train_step)
