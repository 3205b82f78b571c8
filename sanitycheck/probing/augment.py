"""Applying ``data.augment`` (a callable on ONE input) to a batch, for the shared trainer's ``inputs_transform``.

Used by ``augmentation`` (trained with vs without the augmentation) and ``generalization`` (the overfitting
outlook of a run that trains the way the pipeline does, augmentation included).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class BatchAugment:
    """Applies a one-input augmentation to every input of a batch (the trainer's ``inputs_transform``).

    Seeded (torch, NumPy and ``random`` global streams are set from its own stream before each batch) so a run
    is reproducible; tensors are augmented on the CPU and moved back. Returns NumPy or PIL results as tensors.
    """

    def __init__(self, ctx: Any, fn: Any, seed: int):
        self.ctx, self.fn = ctx, fn
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def _seed(self) -> None:
        import random

        import torch

        s = int(self.rng.integers(2**31))
        torch.manual_seed(s)
        np.random.seed(s)
        random.seed(s)

    def one(self, x: Any) -> Any:
        self._seed()
        return _apply(self.fn, x)

    def __call__(self, inputs: Any) -> Any:
        import torch

        if not isinstance(inputs, torch.Tensor):
            return inputs
        self._seed()
        device, dtype = inputs.device, inputs.dtype
        out = [_as_tensor(_apply(self.fn, x), x) for x in inputs.detach().cpu()]
        return torch.stack(out).to(device=device, dtype=dtype)


def _apply(fn: Any, x: Any) -> Any:
    """``fn(x)``; a transform that only takes PIL images (old torchvision) gets one and its result converted back."""
    try:
        return fn(x)
    except (TypeError, AttributeError) as exc:
        try:
            from PIL import Image
        except ImportError:
            raise exc from None
        from sanitycheck.pipeline.tensors import to_numpy

        a = to_numpy(x)
        if a.ndim == 3 and a.shape[0] in (1, 3):
            a = np.moveaxis(a, 0, -1)
        scale = 255.0 if a.max() <= 1.0 else 1.0
        image = Image.fromarray((np.squeeze(a) * scale).clip(0, 255).astype(np.uint8))
        back = np.asarray(fn(image), dtype=np.float32) / scale
        if back.ndim == 2 and to_numpy(x).ndim == 3:
            back = back[None]
        elif back.ndim == 3 and to_numpy(x).ndim == 3 and to_numpy(x).shape[0] in (1, 3):
            back = np.moveaxis(back, -1, 0)
        return back


def _as_tensor(value: Any, like: Any) -> Any:
    import torch

    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    return t.reshape(like.shape) if t.numel() == like.numel() else t
