"""Pipelines written the way users write them, for benchmarks/preflight_vs_epoch.py.

Each module exposes ``config() -> dict`` (the sanitycheck config, Python API form) and
``epoch(seconds_cap=None) -> dict`` (one epoch of the pipeline's own training: its loader, its step, a fresh
model). Data comes from ``../shared/data`` (see its README); a module raises ``FileNotFoundError`` without it.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CASES = ROOT / "benchmarks" / "cases"
DATA = Path(os.environ.get("SANITYCHECK_DATA", ROOT.parent / "shared" / "data"))
if not DATA.exists():
    DATA = Path("/work/shared/data")


def fashion_mnist():
    """Fashion-MNIST from ../shared/data/fashion_mnist (idx files): ``(x_train, y_train, x_test, y_test)``, uint8
    images (N, 28, 28) and int64 labels."""
    import gzip

    import numpy as np

    def read(name: str, offset: int):
        return np.frombuffer(gzip.open(DATA / "fashion_mnist" / name).read(), np.uint8, offset=offset)

    return (read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
            read("train-labels-idx1-ubyte.gz", 8).astype(np.int64),
            read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
            read("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))


def default_step(model, batch, loss_fn, optimizer):
    """The step of PyTorch's examples: zero_grad, forward, loss, backward, step."""
    model.train()
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def run_epoch(loader, make_model, make_optimizer, loss_fn, train_step) -> dict:
    """One pass over ``loader`` with the pipeline's own step on a fresh model: seconds, steps, mean loss."""
    import time

    import torch

    torch.manual_seed(0)
    model = make_model()
    optimizer = make_optimizer(model)
    start, steps, total = time.perf_counter(), 0, 0.0
    for batch in loader:
        loss = train_step(model, batch, loss_fn, optimizer)
        total += float(loss.detach())
        steps += 1
    return {"seconds": time.perf_counter() - start, "steps": steps, "mean_loss": total / max(steps, 1)}
