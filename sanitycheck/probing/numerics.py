"""Floating-point settings for the probes' training runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_flush_depth = 0


@contextmanager
def flush_denormal() -> Iterator[None]:
    """Treat denormal floats as zero while a probe trains (restored afterwards; nested uses are fine).

    Adam's second-moment estimates of near-zero gradients (e.g. the weights of always-zero pixels) become
    denormal numbers, and denormal arithmetic is 10-50x slower on x86 CPUs: measured 3.8 s instead of 0.25 s
    for 300 steps of a small MLP on digits. Values that small do not change what a probe concludes.
    """
    import torch

    global _flush_depth
    supported = torch.set_flush_denormal(True) if _flush_depth == 0 else True
    _flush_depth += 1
    try:
        yield
    finally:
        _flush_depth -= 1
        if _flush_depth == 0 and supported:
            torch.set_flush_denormal(False)


__all__ = ["flush_denormal"]
