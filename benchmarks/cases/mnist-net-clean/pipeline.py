"""Clean: PyTorch's MNIST example (benchmarks/cases/mnistkit.py) on the first 10,000 training digits and the first
2,000 test digits of ../shared/data/mnist.npz."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from mnistkit import Net, load_mnist, loaders, train_step  # noqa: E402,F401  (Net, train_step: named by sanitycheck.yaml)

train_loader, test_loader = loaders(*load_mnist())
