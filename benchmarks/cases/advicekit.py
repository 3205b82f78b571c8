"""Pipelines for the advice checks (learning-rate, architecture, optimizer, generalization): the planted problems
and the well-regularized pipeline that must stay quiet.

Shared by the benchmark cases (`learning-rate-*`, `architecture-*`, `optimizer-*`, `generalization-*`,
`advice-clean-*`) and the tests (`tests/plugins/test_<check>.py`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import casekit

ADVICE = ["learning-rate", "architecture", "optimizer", "generalization"]


def dropout_before_batchnorm_mlp() -> nn.Module:
    """Dropout directly before BatchNorm: BatchNorm's running variance is measured with dropout on."""
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.5), nn.BatchNorm1d(128), nn.Linear(128, 10))


def dropout_between_convs_cnn() -> nn.Module:
    """Conv-BN-ReLU-Dropout2d-Conv-BN: dropout reaches the second BatchNorm through a convolution."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.Dropout2d(0.2),
        nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 16, 10),
    )


def regularized_cnn() -> nn.Module:
    """A well-regularized CNN for 1x8x8 digits: BatchNorm without redundant biases, dropout after the last BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 16, 10),
    )


def large_mlp() -> nn.Module:
    """About 300k parameters for 64 inputs: 2000 per sample on 150 training images."""
    return nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def digits_subset(n: int = 150, seed: int = 0, image: bool = False):
    """``n`` training digits (a seeded random draw from the training split) and the full validation split."""
    (xt, yt), (xv, yv) = casekit.digits(seed=seed, image=image)
    keep = torch.from_numpy(np.sort(np.random.default_rng(seed).permutation(len(yt))[:n]))
    return (xt[keep], yt[keep]), (xv, yv)


def shift(x: torch.Tensor) -> torch.Tensor:
    """A label-preserving augmentation: shift by up to one pixel in each direction, zero fill."""
    dy, dx = torch.randint(-1, 2, (2,)).tolist()
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def regularized(seed: int = 0) -> dict:
    """Keyword arguments of the well-regularized pipeline: the CNN above, AdamW, a small shift augmentation."""
    (xt, yt), (xv, yv) = casekit.digits(seed=seed, image=True)
    return {"train": casekit.dataset(xt, yt), "val": casekit.dataset(xv, yv), "augment": shift,
            "model": regularized_cnn, "loss": "torch.nn:CrossEntropyLoss", "task": "classification",
            "optimizer": {"target": "torch.optim:AdamW", "lr": 1e-3, "weight_decay": 0.05}, "seed": seed}


def no_decay_on_norms_and_biases(params, lr: float = 1e-3, weight_decay: float = 0.01, **kwargs):
    """An optimizer target that exempts 1-d parameters (norm gains and shifts, biases) from weight decay."""
    params = list(params)
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, **kwargs)
