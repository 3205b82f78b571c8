"""Bug: PyTorch's super-resolution example (benchmarks/cases/superreskit.py) whose training targets are the next
image's (an image list and a target list out of step by one); the validation split is right."""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from superreskit import Net, loaders  # noqa: E402,F401  (Net: named by sanitycheck.yaml)

train_loader, test_loader = loaders(target_of=(np.arange(8000) + 1) % 8000)
