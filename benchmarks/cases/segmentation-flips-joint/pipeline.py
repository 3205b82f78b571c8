"""Clean: the segmentation of real MNIST digits of benchmarks/cases/segkit.py with random horizontal flips drawn once
for the image and its mask."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from segkit import FCN, loaders  # noqa: E402,F401

train_loader, test_loader = loaders(flip="joint")
