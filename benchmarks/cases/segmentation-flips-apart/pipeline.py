"""BUG planted: the training images and their masks are flipped by separate coins (the mask moves apart from its
image in half the reads). Otherwise the segmentation of real MNIST digits of benchmarks/cases/segkit.py."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from segkit import FCN, loaders  # noqa: E402,F401

train_loader, test_loader = loaders(flip="coins")
