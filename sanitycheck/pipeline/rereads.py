"""Reading the same sample twice: does a split's ``__getitem__`` return the same thing each time?

Shared by ``augmentation`` (the dataset's own randomness is the augmentation under test; random inputs on the
validation split are a finding) and ``dataloader`` (validation labels that change between reads). Computed once
per split per run through ``ctx.shared``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Samples read a second time per split (default profile; scaled by the profile, at least 16).
PROBE_SAMPLES = 64


@dataclass
class Rereads:
    """A split's samples read again and compared with the data pass (the first read)."""

    split: str
    indices: np.ndarray
    #: Per probed index: whether the input differs from the first read, and whether the target does.
    input_changed: np.ndarray
    target_changed: np.ndarray
    #: The second reads' inputs (as NumPy arrays), aligned with ``indices``.
    second: list[np.ndarray]
    #: ... and their targets.
    second_targets: list[np.ndarray]

    @property
    def inputs_random(self) -> bool:
        return bool(self.input_changed.any())

    @property
    def targets_random(self) -> bool:
        return bool(self.target_changed.any())


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def rereads(ctx: Any, split: Any) -> Rereads:
    """Read ``ctx.sample_indices(split, ...)`` again and compare each with its data-pass read (cached)."""

    def compute() -> Rereads:
        from sanitycheck.pipeline.tensors import target_array, to_numpy

        data = split.data_pass()
        indices = ctx.sample_indices(split, ctx.budget(PROBE_SAMPLES, minimum=16), f"rereads:{split.name}")
        first_inputs = data.inputs
        changed_x, changed_y, second, second_y = [], [], [], []
        for i in indices:
            x, y = split.sample(int(i))
            xa, ya = to_numpy(x).astype(np.float32, copy=False), target_array(y)
            if first_inputs is not None:
                before = first_inputs[i]
            else:  # inputs too large to keep: compare two fresh reads instead
                before = to_numpy(split.sample(int(i))[0]).astype(np.float32, copy=False)
            changed_x.append(not _same(before, xa))
            if data.targets is not None:
                changed_y.append(not _same(np.asarray(data.targets[i]), ya.astype(data.targets.dtype, copy=False)))
            else:
                changed_y.append(False)
            second.append(xa)
            second_y.append(ya)
        return Rereads(split.name, np.asarray(indices, dtype=np.int64), np.asarray(changed_x, dtype=bool),
                       np.asarray(changed_y, dtype=bool), second, second_y)

    return ctx.shared(f"rereads:{split.name}", compute)
