"""Small conversions of the user's samples and batches: to NumPy, to a device, dtype names, descriptions."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def to_numpy(value: Any) -> np.ndarray:
    """A sample's input or target as a NumPy array (tensors, arrays, PIL images, numbers, lists)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict) and value:
        # named inputs ({"image": ..., "meta": ...}) read like a tuple, in key order; Python lists of numbers too
        # (a Hugging Face dataset tokenized without padding: {"input_ids": [...], "attention_mask": [...]})
        parts = [v if isinstance(v, (torch.Tensor, np.ndarray)) else _numeric(v) for v in value.values()]
        if all(p is not None for p in parts):
            value = parts
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in value):
        parts = [to_numpy(v) for v in value]
        if len({p.shape for p in parts}) > 1:
            # an input of several tensors of different shapes (categorical ids and numeric features; an image and
            # its metadata): one flat vector of all their values, for statistics, hashes and features
            return np.concatenate([p.ravel() for p in parts])
    return np.asarray(value)


def _numeric(value: Any) -> np.ndarray | None:
    """``value`` as an array of numbers, or None (strings, nested lists of different lengths, other objects)."""
    try:
        array = np.asarray(value)
    except ValueError:
        return None
    return array if array.dtype.kind in "biufc" else None


def target_array(value: Any) -> np.ndarray:
    """A sample's target as a NumPy array, like :func:`to_numpy`, except that a dict of targets (multi-task heads
    read by the user's loss) stays one object: its values are not one number per sample to read."""
    return np.asarray(value, dtype=object) if isinstance(value, dict) else to_numpy(value)


def dtype_name(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return str(value.dtype).replace("torch.", "")
    if isinstance(value, np.ndarray):
        return str(value.dtype)
    return type(value).__name__


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [to_device(v, device) for v in batch]
        return type(batch)(moved) if isinstance(batch, list) else tuple(moved)
    return batch


def slice_batch(batch: Any, lo: int, hi: int) -> Any:
    """Samples ``lo:hi`` of a batch in the user's format (every tensor sliced along its first dimension)."""
    if isinstance(batch, torch.Tensor):
        return batch[lo:hi]
    if isinstance(batch, dict):
        return {k: slice_batch(v, lo, hi) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        items = [slice_batch(v, lo, hi) for v in batch]
        return items if isinstance(batch, list) else tuple(items)
    return batch


def describe(value: Any) -> str:
    """Shape and dtype of a tensor (or of each tensor in a tuple/dict), for error messages."""
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    return type(value).__name__
