"""Clean: PyTorch's MNIST example (benchmarks/cases/mnistkit.py) trained as torchvision's and timm's classification
recipes do, with CrossEntropyLoss(label_smoothing=0.1) on the net's raw scores (and the default step: the example's
own step hard-codes F.nll_loss). The loss cannot go below the smoothed targets' entropy (0.50 for 10 classes),
which overfit-batch must take as its floor."""

import pathlib
import sys

import torch.nn as nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import mnistkit  # noqa: E402
from mnistkit import load_mnist, loaders  # noqa: E402


class Net(mnistkit.Net):
    def forward(self, x):
        return self.scores(x)  # raw scores for CrossEntropyLoss


loss = nn.CrossEntropyLoss(label_smoothing=0.1)
train_loader, test_loader = loaders(*load_mnist())
