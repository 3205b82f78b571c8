"""Semantic segmentation of real MNIST digits, as a user writes it: a per-sample Dataset returning the normalized
image and its mask (each pixel's class: the digit plus one where the stroke is, else background 0), a small
fully convolutional net (conv encoder, bilinear upsampling), CrossEntropyLoss over (B, 11, 28, 28) outputs, Adam.

One copy for the segmentation-* cases. Data: mnistkit.load_mnist (../shared/data/mnist.npz), 6000 + 2000 digits.
"""

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from mnistkit import load_mnist


class DigitMasks(Dataset):
    def __init__(self, images, labels, mask_of=None, flip=None):
        self.images, self.labels = images, labels
        #: which image each sample's mask is read from (the identity; a bug case pairs images with other masks)
        self.mask_of = np.arange(len(labels)) if mask_of is None else mask_of
        #: random horizontal flips: None, "joint" (one coin for the image and its mask) or "coins" (a coin each)
        self.flip = flip

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = (torch.from_numpy(self.images[index]).float().div(255).unsqueeze(0) - 0.1307) / 0.3081
        j = self.mask_of[index]
        mask = torch.from_numpy((self.images[j] > 127).astype(np.int64) * (int(self.labels[j]) + 1))
        if self.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
            mask = mask.flip(-1) if self.flip == "joint" else mask
        if self.flip == "coins" and torch.rand(()) < 0.5:
            mask = mask.flip(-1)
        return image, mask


class FCN(nn.Module):
    def __init__(self, classes=11):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Conv2d(32, 64, 3, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=4, mode="bilinear"), nn.Conv2d(64, classes, 3, padding=1))

    def forward(self, x):
        return self.decoder(self.encoder(x))


def loaders(mask_of=None, flip=None):
    (x_train, y_train), (x_test, y_test) = load_mnist(6000, 2000)
    return (DataLoader(DigitMasks(x_train, y_train, mask_of, flip), batch_size=32, shuffle=True),
            DataLoader(DigitMasks(x_test, y_test), batch_size=256))
