"""Clean: the tabular MLP of benchmarks/cases/tabularkit.py on every measurement column."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from tabularkit import MLP as _MLP, TABLE, loaders, train_step  # noqa: E402,F401  (train_step: named by sanitycheck.yaml)

FEATURES = [c for c in TABLE if c not in ("id", "target")]
train_loader, val_loader = loaders(FEATURES)


def MLP():  # noqa: N802  (the model factory sanitycheck.yaml names)
    return _MLP(len(FEATURES))
