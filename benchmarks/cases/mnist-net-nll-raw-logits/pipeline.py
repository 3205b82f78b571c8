"""BUG planted: the model returns raw scores (its F.log_softmax was dropped) but the loss is still F.nll_loss, which is
then unbounded below. Otherwise PyTorch's MNIST example (benchmarks/cases/mnistkit.py) on 10,000 + 2,000 real
digits."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import mnistkit  # noqa: E402
from mnistkit import load_mnist, loaders, train_step  # noqa: E402,F401


class Net(mnistkit.Net):
    def forward(self, x):
        return self.scores(x)  # BUG: no F.log_softmax, yet the loss is F.nll_loss


train_loader, test_loader = loaders(*load_mnist())
