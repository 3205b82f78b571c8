"""A CIFAR-10-sized pipeline written as users write it: a torchvision-style per-sample Dataset that converts
uint8 HWC images to normalized float CHW in ``__getitem__`` (random crop with 4-pixel padding and horizontal
flip for training), five conv+BatchNorm layers, SGD with momentum, batch 128, a DataLoader with one worker.

Data: the 10,000 real CIFAR-10 test images of ../shared/data/cifar10_test.npz, brought to CIFAR-10's scale
(50,000 train + 10,000 val, uint8 like CIFAR) by *variants*: the images are split 8,333 / 1,667 (train sources /
val sources, so no image is in both splits), and each source gives 6 variants: a fixed shift of up to 3 pixels
(edges replicated), a horizontal flip for half of them, brightness x0.85-1.15 (seeded). Each split thus holds
groups of 6 near copies of one photo, which ``leakage`` reports as in-split near duplicates; no variant of a
training image is in validation.
"""

from __future__ import annotations

import functools
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import DATA, run_epoch

BATCH = 128
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)[:, None, None]
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)[:, None, None]


class CIFAR(Dataset):
    """uint8 (N, 32, 32, 3) images; ``__getitem__`` -> normalized float (3, 32, 32), int label."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, train: bool):
        self.images, self.labels, self.train = images, labels, train

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = self.images[i]
        if self.train:  # RandomCrop(32, padding=4) + RandomHorizontalFlip
            padded = np.pad(img, ((4, 4), (4, 4), (0, 0)))
            dy, dx = np.random.randint(0, 9, 2)
            img = padded[dy:dy + 32, dx:dx + 32]
            if np.random.rand() < 0.5:
                img = img[:, ::-1]
        x = (img.transpose(2, 0, 1).astype(np.float32) / 255 - MEAN) / STD  # ToTensor + Normalize
        return torch.from_numpy(x), int(self.labels[i])


def make_model() -> nn.Module:
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    )


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


def train_step(model, batch, loss_fn, optimizer):
    inputs, targets = batch
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def variants(images: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """``copies`` variants of each image (uint8 HWC): shift <= 3 px (edges replicated), flip, brightness."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(images) * copies, *images.shape[1:]), dtype=np.uint8)
    padded = np.pad(images, ((0, 0), (3, 3), (3, 3), (0, 0)), mode="edge")
    for v in range(copies):
        dy, dx = rng.integers(0, 7, 2)
        x = padded[:, dy:dy + 32, dx:dx + 32]
        if v % 2:
            x = x[:, :, ::-1]
        gain = rng.uniform(0.85, 1.15, (len(images), 1, 1, 1))
        out[v::copies] = np.clip(x * gain, 0, 255).round().astype(np.uint8)
    return out


@functools.cache
def arrays():
    """(train_x, train_y, val_x, val_y): 49,998 + 10,002 uint8 HWC images (see the module docstring)."""
    c = np.load(DATA / "cifar10_test.npz")
    x, y = c["x_test"], c["y_test"].astype(np.int64)
    cut = 8333
    return (variants(x[:cut], 6, 0), np.repeat(y[:cut], 6), variants(x[cut:], 6, 1), np.repeat(y[cut:], 6))


def train_loader() -> DataLoader:
    tx, ty, _, _ = arrays()
    return DataLoader(CIFAR(tx, ty, train=True), batch_size=BATCH, shuffle=True, num_workers=1)


def val_dataset() -> CIFAR:
    _, _, vx, vy = arrays()
    return CIFAR(vx, vy, train=False)


def config() -> dict:
    return {"data": {"train": train_loader(), "val": val_dataset()}, "model": make_model,
            "loss": nn.CrossEntropyLoss(), "optimizer": {"target": torch.optim.SGD, "lr": 0.05, "momentum": 0.9,
                                                        "weight_decay": 5e-4},
            "train_step": train_step, "batch_size": BATCH, "num_classes": 10}


def epoch() -> dict:
    return run_epoch(train_loader(), make_model, make_optimizer, nn.CrossEntropyLoss(), train_step)
