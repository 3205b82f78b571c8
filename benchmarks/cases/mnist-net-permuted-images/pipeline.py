"""BUG planted: the training images shuffled without their labels (a "shuffle once before splitting" that forgot the
labels). Otherwise PyTorch's MNIST example (benchmarks/cases/mnistkit.py) on 10,000 + 2,000 real digits."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from mnistkit import Net, load_mnist, loaders, train_step  # noqa: E402,F401

(_x_train, _y_train), _test = load_mnist()
_x_train = _x_train[np.random.default_rng(0).permutation(len(_x_train))]  # BUG: the labels are not permuted with them
train_loader, test_loader = loaders((_x_train, _y_train), _test)
