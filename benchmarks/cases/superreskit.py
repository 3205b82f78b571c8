"""PyTorch's super-resolution example (pytorch/examples, super_resolution), as a user wires it to sanitycheck: its
Net (conv 5x5-3x3-3x3 + PixelShuffle, orthogonal init), MSELoss, Adam; the Y channel of an image, downscaled by 2,
as input and the Y channel itself as target. The example reads BSDS300 crops; here the 10,000 real CIFAR-10 test
images of ../shared/data/cifar10_test.npz stand in (8000 to train, 2000 to validate), whole 32x32 images, downscaled
with bicubic antialiasing (torch's interpolate for PIL's resize).

One copy for the superres-* cases.
"""

import numpy as np
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.init as init
from torch.utils.data import DataLoader, Dataset

from casekit import cifar10

UPSCALE = 2


class Net(nn.Module):
    def __init__(self, upscale_factor=UPSCALE):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 64, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(64, 64, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(64, 32, (3, 3), (1, 1), (1, 1))
        self.conv4 = nn.Conv2d(32, upscale_factor ** 2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)
        init.orthogonal_(self.conv1.weight, init.calculate_gain("relu"))
        init.orthogonal_(self.conv2.weight, init.calculate_gain("relu"))
        init.orthogonal_(self.conv3.weight, init.calculate_gain("relu"))
        init.orthogonal_(self.conv4.weight)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        return self.pixel_shuffle(self.conv4(x))


class LuminanceFromImages(Dataset):
    """(downscaled Y, Y) of float RGB images in [0, 1]; ``target_of``: which image each target is read from (the
    identity; a bug case reads another image's)."""

    def __init__(self, images, target_of=None):
        self.images = images
        self.target_of = np.arange(len(images)) if target_of is None else target_of

    def __len__(self):
        return len(self.images)

    def _y(self, index):
        rgb = self.images[index]
        return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])[None]

    def __getitem__(self, index):
        y = self._y(index)
        small = F.interpolate(y[None], scale_factor=1 / UPSCALE, mode="bicubic", antialias=True, align_corners=False)
        return small[0], self._y(int(self.target_of[index]))


def loaders(target_of=None):
    (xt, _), (xv, _) = cifar10()
    train = DataLoader(LuminanceFromImages(xt, target_of), batch_size=64, shuffle=True)
    return train, DataLoader(LuminanceFromImages(xv), batch_size=10)
