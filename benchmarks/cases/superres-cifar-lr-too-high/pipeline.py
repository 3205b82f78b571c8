"""Bug: PyTorch's super-resolution example (benchmarks/cases/superreskit.py) at its own default, Adam at lr 0.01."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from superreskit import Net, loaders  # noqa: E402,F401  (Net: named by sanitycheck.yaml)

train_loader, test_loader = loaders()
