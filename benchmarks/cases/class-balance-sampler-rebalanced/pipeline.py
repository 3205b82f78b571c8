"""Clean: real MNIST made long-tailed (digit k keeps 0.6^k of its training images: 1000 zeros, 10 nines), with
the imbalance handled as the PyTorch forums recommend: the training DataLoader draws through a
WeightedRandomSampler of 1 / class count, so every batch is balanced, like the (untouched) test split. The data
is imbalanced; what the model trains on is not."""

import pathlib
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from mnistkit import MNISTDataset, Net, load_mnist  # noqa: E402, F401  (Net: the config's model)

(x_train, y_train), (x_test, y_test) = load_mnist()
rng = np.random.default_rng(0)
keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y_train == k))[: int(1000 * 0.6 ** k)]
                               for k in range(10)]))
train_set = MNISTDataset(x_train[keep], y_train[keep])
counts = np.bincount(y_train[keep], minlength=10)
weights = torch.as_tensor(1.0 / counts[y_train[keep]], dtype=torch.double)
sampler = WeightedRandomSampler(weights, len(train_set), generator=torch.Generator().manual_seed(0))
train_loader = DataLoader(train_set, batch_size=64, sampler=sampler)
val = MNISTDataset(x_test, y_test)
