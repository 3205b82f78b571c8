"""BUG planted: the test loader's transform leaves out Normalize((0.1307,), (0.3081,)) (ToTensor only), so the model,
trained on normalized digits, is scored on inputs with a third of their spread. Otherwise PyTorch's MNIST example
(benchmarks/cases/mnistkit.py) on 10,000 + 2,000 real digits."""

import pathlib
import sys

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from mnistkit import MNISTDataset, Net, load_mnist, loaders, train_step  # noqa: E402,F401


class ToTensorOnly(MNISTDataset):
    def __getitem__(self, index):
        return torch.from_numpy(self.images[index]).float().div(255).unsqueeze(0), int(self.labels[index])  # BUG


_train, _test = load_mnist()
train_loader, _ = loaders(_train, _test)
test_loader = DataLoader(ToTensorOnly(*_test), batch_size=1000)
