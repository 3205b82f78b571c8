"""A CIFAR-10 classifier as a user writes one: real images, a five-layer conv net, Adam, the torchvision-style
normalization. Clean.

Data: the 10,000 real CIFAR-10 test images of ../shared/data/cifar10_test.npz (or $CIFAR10_NPZ), the first 8,000 for
training and the last 2,000 for validation; without the file, a synthetic stand-in (class-coloured noise).
"""

import os
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

CIFAR = pathlib.Path(os.environ.get("CIFAR10_NPZ", pathlib.Path(__file__).resolve().parents[4] / "shared/data/cifar10_test.npz"))
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def load_cifar():
    if CIFAR.is_file():
        d = np.load(CIFAR)
        return d["x_test"], d["y_test"]
    rng = np.random.default_rng(0)  # offline stand-in: each class a colour plus noise
    y = rng.integers(0, 10, 10_000)
    x = (rng.normal(0, 40, (10_000, 32, 32, 3)) + 128 + 8 * (y[:, None, None, None] - 5)).clip(0, 255)
    return x.astype(np.uint8), y


class CIFAR10(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float() / 255
        return (x - self.mean) / self.std, int(self.labels[i])


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 128, 3, padding=1)
        self.conv3 = nn.Conv2d(128, 256, 3, padding=1)
        self.conv4 = nn.Conv2d(256, 256, 3, padding=1)
        self.fc = nn.Linear(256 * 4 * 4, num_classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        x = F.max_pool2d(F.relu(self.conv4(x)), 2)
        return self.fc(torch.flatten(x, 1))


_x, _y = load_cifar()
train_set = CIFAR10(_x[:8000], _y[:8000])
val_set = CIFAR10(_x[8000:], _y[8000:])
train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
val_loader = DataLoader(val_set, batch_size=256)
