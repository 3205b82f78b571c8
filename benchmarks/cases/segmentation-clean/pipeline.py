"""Clean: segmentation of real MNIST digits (benchmarks/cases/segkit.py)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from segkit import FCN, loaders  # noqa: E402,F401  (FCN: named by sanitycheck.yaml)

train_loader, test_loader = loaders()
