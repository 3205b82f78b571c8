"""Building blocks for planted-bug pipelines, shared by benchmark cases and tests.

Real data that ships with scikit-learn (no download): digits (10 classes, 8x8), breast cancer (binary),
diabetes (regression). Each case's `pipeline.py` imports this module (see `use_casekit` below) and plants
exactly one bug on top of a clean pipeline.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import TensorDataset


def digits(seed: int = 0, val_fraction: float = 0.2, scale: bool = True, image: bool = False):
    """Stratified digits splits as float32 tensors: ((x_train, y_train), (x_val, y_val)); x in [0, 1] when scaled."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float32) / (16.0 if scale else 1.0)
    if image:
        x = x.reshape(-1, 1, 8, 8)
    return _split(x, data.target.astype(np.int64), seed, val_fraction, stratify=True)


def digit_masks(x, y):
    """Segmentation targets for digits images ``(n, 1, 8, 8)`` in [0, 1]: each pixel's class is the digit plus one
    where the stroke is (above half the range), else 0 (11 classes)."""
    return (x[:, 0] > 0.5).long() * (y[:, None, None] + 1)


def breast_cancer(seed: int = 0, val_fraction: float = 0.2):
    """Binary classification, standardized with the training split's statistics; labels are int64 0/1."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    (xt, yt), (xv, yv) = _split(data.data.astype(np.float32), data.target.astype(np.int64), seed, val_fraction, True)
    mean, std = xt.mean(0), xt.std(0)
    return ((xt - mean) / std, yt), ((xv - mean) / std, yv)


def iris(seed: int = 0, val_fraction: float = 0.2):
    """Three classes of iris flowers, four features standardized with the training split's statistics."""
    from sklearn.datasets import load_iris

    return _standardized(load_iris(), seed, val_fraction)


def wine(seed: int = 0, val_fraction: float = 0.2):
    """Three wine cultivars, 13 chemical features standardized with the training split's statistics."""
    from sklearn.datasets import load_wine

    return _standardized(load_wine(), seed, val_fraction)


def _standardized(data, seed, val_fraction):
    (xt, yt), (xv, yv) = _split(data.data.astype(np.float32), data.target.astype(np.int64), seed, val_fraction, True)
    mean, std = xt.mean(0), xt.std(0)
    return ((xt - mean) / std, yt), ((xv - mean) / std, yv)


def cifar10(path=None, train: int = 8000, val: int = 2000):
    """Real CIFAR-10 images (the 10,000 test images of ``../shared/data/cifar10_test.npz``): the first ``train`` for
    training and the last ``val`` for validation, as float32 (N, 3, 32, 32) in [0, 1]; ``None`` without the file."""
    from pathlib import Path

    path = Path(path) if path else Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10_test.npz"
    if not path.is_file():
        return None
    d = np.load(path)
    x = torch.from_numpy(d["x_test"]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(d["y_test"]).long()
    return (x[:train], y[:train]), (x[len(y) - val:], y[len(y) - val:])


@functools.cache
def stdlib_lines(packages=("json", "email")):
    """Real text nobody here wrote: the words of the lines of two standard-library packages' sources, each line
    labeled by its package, every distinct line once (so that a clean split holds no copies). Read once per process:
    callers must not change the lists."""
    import re
    import sysconfig
    from pathlib import Path

    root, seen, lines, labels = Path(sysconfig.get_paths()["stdlib"]), set(), [], []
    for label, package in enumerate(packages):
        for path in sorted((root / package).rglob("*.py")):
            for line in path.read_text(errors="ignore").splitlines():
                words = tuple(re.findall(r"[A-Za-z_]+", line))
                if len(words) >= 3 and words not in seen:
                    seen.add(words)
                    lines.append(words)
                    labels.append(label)
    vocab = {w: i + 1 for i, w in enumerate(sorted({w for line in lines for w in line}))}  # 0: unknown
    return [[vocab[w] for w in line] for line in lines], labels, len(vocab) + 1


def flip_labels(y, fraction: float, seed: int = 0):
    """``y`` (a tensor of class ids) with ``fraction`` of them moved to another class at random; also the indices."""
    rng = np.random.default_rng(seed)
    labels = y.numpy().copy()
    classes = int(labels.max()) + 1
    flipped = rng.choice(len(labels), int(fraction * len(labels)), replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, classes, len(flipped))) % classes
    return torch.from_numpy(labels), set(flipped.tolist())


def diabetes(seed: int = 0, val_fraction: float = 0.2, standardize_targets: bool = True):
    """Regression with inputs standardized; targets (float32, shape (N, 1)) standardized unless asked not to."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    x = data.data.astype(np.float32)
    y = data.target.astype(np.float32).reshape(-1, 1)
    (xt, yt), (xv, yv) = _split(x, y, seed, val_fraction, False)
    mean, std = xt.mean(0), xt.std(0)
    xt, xv = (xt - mean) / std, (xv - mean) / std
    if standardize_targets:
        ym, ys = yt.mean(), yt.std()
        yt, yv = (yt - ym) / ys, (yv - ym) / ys
    return (xt, yt), (xv, yv)


def _split(x, y, seed, val_fraction, stratify):
    idx = np.arange(len(y))
    it, iv = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=y if stratify else None)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return (t(x[it]), t(y[it])), (t(x[iv]), t(y[iv]))


def dataset(x, y) -> TensorDataset:
    return TensorDataset(x, y)


def mlp(inputs: int, outputs: int, hidden: int = 64, last: nn.Module | None = None) -> nn.Module:
    layers = [nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs)]
    return nn.Sequential(*layers, *([last] if last is not None else []))


def cnn(outputs: int = 10, channels: int = 16) -> nn.Module:
    """A small CNN for 1x8x8 digits (with BatchNorm, as real CNNs have)."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(channels * 16, outputs),
    )


def default_step(model, batch, loss_fn, optimizer):
    """A correct training step (what a user's own step looks like)."""
    inputs, targets = batch
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss
