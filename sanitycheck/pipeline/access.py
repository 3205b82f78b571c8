"""Data access: batches in the user's own format, class labels, the samples a probe may use, seeded subsets.

Everything reads the one cached data pass of each split (:mod:`sanitycheck.pipeline.data`); nothing re-reads the
dataset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sanitycheck.engine.errors import ConfigError
from sanitycheck.pipeline.tensors import to_device

if TYPE_CHECKING:

    from sanitycheck.pipeline.data import Split


class DataAccess:
    """The part of :class:`~sanitycheck.pipeline.context.PipelineContext` that serves the user's data to checks.

    Needs ``self.config``, ``self.device``, ``self.train``, ``self.val``, ``self.loss_fn``, ``self.num_classes``,
    ``self.token_embedding``,
    ``self.output_shape``, ``self.shared`` and ``self.rng``.
    """

    @property
    def task(self) -> str:
        return self.config.task

    def splits(self) -> list[Split]:
        return [s for s in (self.train, self.val) if s is not None]


    def batch(self, split: Split, indices: Sequence[int]) -> Any:
        """The samples at ``indices`` of ``split`` as one batch, in the user's format, on the device."""
        return to_device(split.collate(list(indices)), self.device)

    @property
    def class_limit(self) -> int | None:
        """Labels must lie in ``[0, class_limit)``: the model's output width for cross-entropy/NLL, else num_classes
        (``task: sequence``: the output width at every position, the vocabulary)."""
        from sanitycheck.pipeline.losses import loss_kind

        if self.task == "sequence":
            return self.num_classes
        if self.task != "classification":
            return None
        if loss_kind(self.loss_fn) in ("cross_entropy", "nll") and self.output_shape:
            return self.output_shape[0]
        return self.num_classes

    def class_labels(self, split: Split) -> np.ndarray | None:
        """One integer class id per sample of ``split`` (``-1`` where a label is missing, fractional or negative).

        Reads scalar labels, ``(n, 1)`` columns and one-hot rows from the cached data pass. ``None`` when the task
        is not classification (regression; sequences: a class per position) or the targets are not class labels
        (dense or multi-label targets). Computed once per run.
        """
        if self.task != "classification":
            return None

        def compute() -> np.ndarray | None:
            targets = split.data_pass().targets
            if targets is None or len(targets) == 0 or not np.issubdtype(targets.dtype, np.number):
                return None
            t = targets.astype(np.float64)
            if t.ndim == 2 and t.shape[1] > 1 and ((t == 0) | (t == 1)).all() and (t.sum(1) == 1).all():
                return t.argmax(1).astype(np.int64)  # one-hot rows
            if t.ndim == 2 and t.shape[1] == 1:
                t = t[:, 0]
            if t.ndim != 1:
                return None
            valid = np.isfinite(t) & (t == np.round(t)) & (t >= 0)
            return np.where(valid, np.nan_to_num(t), -1).astype(np.int64)

        return self.shared(f"class_labels:{split.name}", compute)

    def usable_indices(self, split: Split) -> np.ndarray:
        """Indices of samples a training probe can use: no NaN/Inf, the usual input shape, labels in range, token ids
        within the model's embedding.

        data-integrity reports the others; leaving them out keeps one bad sample from crashing every probe.
        """
        data = split.data_pass()
        bad = np.zeros(len(split), dtype=bool)
        bad[data.nonfinite] = True
        usual_shape = Counter(data.input_shapes).most_common(1)[0][0]
        odd = np.array([shape != usual_shape for shape in data.input_shapes], dtype=bool)
        if odd.any() and not self._collates_mixed_shapes(split, int(np.argmin(odd)), int(np.argmax(odd))):
            bad |= odd  # would not collate with the rest
        vocabulary = self.token_embedding() if any(d.startswith(("int", "uint")) for d in data.input_dtypes[:1]) else None
        if vocabulary is not None:  # token ids the embedding has no row for would crash every forward pass
            bad |= (data.minimum < 0) | (data.maximum >= vocabulary.num_embeddings)
        limit = self.class_limit
        if limit is not None and data.targets is not None and data.targets.ndim == 1 \
                and np.issubdtype(data.targets.dtype, np.number):
            bad |= (data.targets < 0) | (data.targets >= limit)
        elif limit is not None and self.task == "sequence" and data.targets is not None and data.targets.ndim >= 2 \
                and np.issubdtype(data.targets.dtype, np.number):  # negative targets are ignored positions
            bad |= (data.targets.reshape(len(data.targets), -1) >= limit).any(1)
        return np.flatnonzero(~bad)

    def _collates_mixed_shapes(self, split: Split, usual: int, odd: int) -> bool:
        """Whether the split's collate_fn batches a sample of the usual input shape with one of another (texts of
        different lengths that it pads: Hugging Face's DataCollatorWithPadding, ``pad_sequence``); PyTorch's
        default collate does not. Tried once per split."""

        def compute() -> bool:
            try:
                split.collate([usual, odd])
            except Exception:
                return False
            return True

        return self.shared(f"collates-mixed-shapes:{split.name}", compute)

    def sample_indices(self, split: Split, n: int, tag: str, usable_only: bool = True) -> np.ndarray:
        """A seeded random subset of ``n`` indices (all of them when the split is smaller)."""
        pool = self.usable_indices(split) if usable_only else np.arange(len(split))
        if len(pool) == 0:
            pool = np.arange(len(split))
        if len(pool) <= n:
            return pool
        return np.sort(self.rng(tag).choice(pool, size=n, replace=False))

    def _infer_num_classes(self) -> int | None:
        """``num_classes`` from the config, checked against the labels; else inferred from them."""
        labels = [s for s in (self.train, self.val) if s is not None]
        found_max, where = -1, None
        for split in labels:
            targets = split.data_pass().targets
            if targets is None or targets.ndim != 1 or not np.issubdtype(targets.dtype, np.number):
                return self.config.num_classes  # not integer class labels: data-integrity reports it
            finite = np.isfinite(targets)
            if not finite.any() or not np.all(targets[finite] == np.round(targets[finite])):
                return self.config.num_classes
            top = int(np.argmax(np.where(finite, targets, -np.inf)))
            if targets[top] > found_max:
                found_max, where = int(targets[top]), (split.name, top)
        declared = self.config.num_classes
        if declared is not None and where is not None and found_max >= declared:
            raise ConfigError(
                f"num_classes: {declared} disagrees with the labels: {where[0]} sample {where[1]} has label {found_max} "
                f"(labels must be in [0, {declared}))"
            )
        return declared if declared is not None else (found_max + 1 if found_max >= 1 else None)
