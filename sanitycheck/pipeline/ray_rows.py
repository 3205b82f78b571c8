"""A ``ray.data.Dataset`` named as ``data.train``/``data.val``, as a map-style Dataset (:class:`RayRows`), and the
import of Ray itself (an optional extra: ``pip install 'sanitycheck[ray]'``).

Apart from :mod:`sanitycheck.pipeline.ray_engine` (the pass on the cluster) so that :mod:`sanitycheck.pipeline.data`
can wrap such a split without importing the engine that imports it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from sanitycheck.engine.errors import UsageError

INSTALL_HINT = "install sanitycheck[ray] (pip install 'sanitycheck[ray]')"


def require_ray() -> Any:
    """``import ray`` (and Ray Data), or a :class:`UsageError` saying how to install it (exit 2)."""
    try:
        import ray
        import ray.data  # noqa: F401  (the pass is Ray Data's map_batches)
    except ImportError as exc:
        raise UsageError(f"engine: ray needs Ray, which is not installed here: {INSTALL_HINT}") from exc
    return ray


def quiet_ray_data() -> None:
    """No Ray Data progress bars or execution banners: progress goes to sanitycheck's own display."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    for name in ("ray.data._internal.progress", "ray._private.authentication.authentication_token_setup"):
        logging.getLogger(name).setLevel(logging.ERROR)  # "progress bars disabled"; a private local Ray's token
    for handler in logging.getLogger("ray.data").handlers:  # Ray Data's console (its log file keeps everything)
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(max(handler.level, logging.WARNING))


class RayRows(Dataset):
    """A ``ray.data.Dataset`` as a map-style Dataset: row ``i`` by index, a dict of its columns (name the input and
    target with ``data.input_key`` / ``data.target_key``).

    The dataset is materialized once on the cluster (its blocks stay in the object store); a row is read by
    fetching the block that holds it (the last two blocks are kept). The data pass does not read rows here: it
    maps the dataset's own blocks on the workers (:class:`~sanitycheck.pipeline.ray_engine.RayRowsPass`); the
    training probes read the few samples they use.
    """

    def __init__(self, ds: Any, key: str, max_samples: int | None = None):
        require_ray()
        quiet_ray_data()
        if max_samples is not None:
            ds = ds.limit(max_samples)
        try:
            self.ds = ds.materialize()
            self.refs = self.ds.to_numpy_refs()
            counts = _row_counts(self.refs)
        except Exception as exc:
            raise UsageError(f"{key}: reading the ray.data.Dataset failed: {type(exc).__name__}: {exc}") from exc
        self.refs = [r for r, c in zip(self.refs, counts) if c]
        self.offsets = np.cumsum([0] + [c for c in counts if c])
        self._blocks: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        import ray

        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        b = int(np.searchsorted(self.offsets, index, side="right")) - 1
        if b not in self._blocks:
            if len(self._blocks) >= 2:
                self._blocks.pop(next(iter(self._blocks)))
            block = ray.get(self.refs[b])
            self._blocks[b] = block if isinstance(block, dict) else {"item": block}
        row = index - int(self.offsets[b])
        return {c: v[row] for c, v in self._blocks[b].items()}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_blocks": {}}


def _row_counts(refs: list[Any]) -> list[int]:
    """The number of rows of each block (counted where the blocks are: nothing is fetched)."""
    import ray

    def count(block: Any) -> int:
        if isinstance(block, dict):
            return len(next(iter(block.values()))) if block else 0
        return len(block)

    counter = ray.remote(num_cpus=0)(count)
    return ray.get([counter.remote(r) for r in refs]) if refs else []
