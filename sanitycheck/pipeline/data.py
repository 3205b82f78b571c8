"""The user's data, materialized once: index-addressable splits and one cached pass over each.

A split wraps whatever the config names (a Dataset, a DataLoader, or a zero-arg callable returning one)
behind one interface: ``len(split)``, ``split.sample(i) -> (input, target)`` by dataset index,
``split.collate(indices)`` for a batch in the user's own format, and ``split.data_pass()``, the cached
pass that every data check reads instead of re-reading the dataset.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torch.utils.data import default_collate

from sanitycheck.engine.errors import UsageError
from sanitycheck.pipeline.tensors import dtype_name, to_numpy

#: An IterableDataset has no length: read at most this many samples unless ``data.max_samples`` says otherwise.
ITERABLE_CAP = 10_000
#: Samples are converted and summarized in chunks of this many (vectorized statistics per chunk).
CHUNK = 1024


class _ListDataset(Dataset):
    """The first samples of an IterableDataset, kept so they can be addressed by index."""

    def __init__(self, items: list[Any]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


@dataclass
class DataPass:
    """One pass over a split: per-sample statistics of every sample, the inputs themselves when they fit.

    Arrays are indexed like the dataset (row ``i`` is sample ``i``).
    """

    n: int
    #: Inputs as an array ``(n, *shape)``, read-only; ``None`` when shapes differ or they exceed the memory budget.
    #: In the inputs' own dtype when float32 holds all its values exactly (``uint8`` images stay 1 byte per value:
    #: 4x smaller), else float32; the values are those float32 would hold: convert rows with ``.astype(np.float32)``.
    inputs: np.ndarray | None
    inputs_note: str
    #: Targets as an array ``(n,)`` (scalar targets) or ``(n, *shape)``; ``None`` when their shapes differ.
    targets: np.ndarray | None
    input_shapes: list[tuple[int, ...]]
    input_dtypes: list[str]
    target_shapes: list[tuple[int, ...]]
    target_dtypes: list[str]
    numel: np.ndarray
    nan_count: np.ndarray
    inf_count: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    target_nonfinite: np.ndarray
    seconds: float = 0.0
    #: Exact content hash of every input (uint64; see :mod:`sanitycheck.probing.embedding`): equal inputs, equal hashes.
    hashes: np.ndarray | None = None
    #: Raw embedding features ``(n, d)`` float32, computed chunk by chunk; use ``sanitycheck.probing.embedding.embedding``.
    features: np.ndarray | None = None
    #: ``'image'`` or ``'vector'`` (how :mod:`sanitycheck.probing.embedding` made the features).
    features_kind: str | None = None
    features_note: str = "embedded"

    @property
    def nonfinite(self) -> np.ndarray:
        """Indices of samples whose input or target has a NaN or Inf."""
        return np.flatnonzero((self.nan_count > 0) | (self.inf_count > 0) | self.target_nonfinite)

    def input_scale(self) -> dict[str, float]:
        """Global mean/std of the inputs over finite values, from the per-sample statistics."""
        ok = (self.numel > 0) & np.isfinite(self.mean)
        if not ok.any():
            return {"mean": math.nan, "std": math.nan, "median_abs_max": math.nan}
        weights = self.numel[ok].astype(np.float64)
        mean = float(np.average(self.mean[ok], weights=weights))
        second = float(np.average(self.std[ok] ** 2 + self.mean[ok] ** 2, weights=weights))
        abs_max = np.maximum(np.abs(self.minimum[ok]), np.abs(self.maximum[ok]))
        return {
            "mean": mean,
            "std": math.sqrt(max(second - mean**2, 0.0)),
            "median_abs_max": float(np.median(abs_max)),
        }


@dataclass
class Split:
    """One split of the user's data (``train`` or ``val``), addressable by dataset index."""

    name: str
    source: Any  # what the config named, after calling a factory: a Dataset or a DataLoader
    dataset: Any
    loader: DataLoader | None
    n: int
    input_key: str | None
    target_key: str | None
    collate_fn: Callable[[list[Any]], Any] = default_collate
    memory_mb: int = 1024
    #: Where the data pass runs: ``None`` in this process; else ``reader(split) -> DataPass`` (the ray engine,
    #: :mod:`sanitycheck.pipeline.ray_engine`, sets it for ``engine: {name: ray}``).
    reader: Callable[[Split], DataPass] | None = field(default=None, repr=False)
    _pass: DataPass | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.n

    def raw(self, index: int) -> Any:
        """Sample ``index`` exactly as the dataset returns it."""
        return self.dataset[int(index)]

    def sample(self, index: int) -> tuple[Any, Any]:
        """Sample ``index`` as ``(input, target)``."""
        return self.unpack(self.raw(index), index)

    def unpack(self, item: Any, index: int | None = None) -> tuple[Any, Any]:
        """Split a sample (or a collated batch) into ``(input, target)``, or say clearly why it cannot."""
        where = f"{self.name} sample {index}" if index is not None else f"a {self.name} batch"
        if isinstance(item, dict):
            if self.input_key is None or self.target_key is None:
                raise UsageError(
                    f"data.{self.name}: {where} is a dict with keys {sorted(map(str, item))}; "
                    "name the input and target with data.input_key and data.target_key"
                )
            missing = [k for k in (self.input_key, self.target_key) if k not in item]
            if missing:
                raise UsageError(f"data.{self.name}: {where} has no key {missing[0]!r} (keys: {sorted(map(str, item))})")
            return item[self.input_key], item[self.target_key]
        if isinstance(item, (tuple, list)) and len(item) >= 2:
            return item[0], item[1]
        raise UsageError(
            f"data.{self.name}: {where} is a {type(item).__name__}"
            f"{' of length ' + str(len(item)) if isinstance(item, (tuple, list)) else ''}; "
            "expected an (input, target) pair, or a dict with data.input_key / data.target_key set"
        )

    def inputs(self, indices: Sequence[int]) -> np.ndarray:
        """The inputs of samples ``indices`` as one array: rows of the data pass's cache when it holds the inputs
        (in the cache's dtype), else read through the dataset as float32 (equally shaped inputs)."""
        cached = self.data_pass().inputs
        if cached is not None:
            return cached[np.asarray(indices, dtype=np.int64)]
        return np.stack([to_numpy(self.sample(int(i))[0]).astype(np.float32, copy=False) for i in indices])

    def collate(self, indices: Sequence[int]) -> Any:
        """The samples at ``indices`` collated into one batch in the user's own format (their collate_fn)."""
        return self.collate_fn([self.raw(i) for i in indices])

    def data_pass(self) -> DataPass:
        """The cached pass over every sample (computed on first use)."""
        if self._pass is None:
            self._pass = self.reader(self) if self.reader is not None else _read_pass(self)
        return self._pass


def replace_in_batch(split: Split, batch: Any, inputs: Any = None, targets: Any = None) -> Any:
    """``batch`` (the user's format: a tuple/list or a dict) with its inputs and/or targets replaced."""
    if isinstance(batch, dict):
        new = dict(batch)
        if inputs is not None:
            new[split.input_key] = inputs
        if targets is not None:
            new[split.target_key] = targets
        return new
    items = list(batch)
    if inputs is not None:
        items[0] = inputs
    if targets is not None:
        items[1] = targets
    return items if isinstance(batch, list) else tuple(items)


def materialize(obj: Any, name: str, *, max_samples: int | None, memory_mb: int,
                input_key: str | None, target_key: str | None) -> Split:
    """Turn what ``data.<name>`` resolved to into a :class:`Split`, or raise a :class:`UsageError` saying why not."""
    key = f"data.{name}"
    if not isinstance(obj, (Dataset, DataLoader)) and callable(obj) and not hasattr(obj, "__getitem__"):
        try:
            obj = obj()
        except Exception as exc:
            raise UsageError(f"{key}: calling {getattr(obj, '__name__', obj)!r} raised {type(exc).__name__}: {exc}") from exc
    if type(obj).__module__.startswith("ray.data"):  # a ray.data.Dataset: rows by index, blocks stay on the cluster
        from sanitycheck.pipeline.ray_rows import RayRows

        obj = RayRows(obj, key, max_samples)
    loader = obj if isinstance(obj, DataLoader) else None
    dataset = obj.dataset if loader is not None else obj
    if not isinstance(dataset, (Dataset, IterableDataset)) and not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise UsageError(
            f"{key}: got an object of type {type(obj).__name__}; expected a torch Dataset, a DataLoader, "
            "or a zero-arg callable returning one"
        )
    if isinstance(dataset, IterableDataset):
        cap = max_samples or ITERABLE_CAP
        items = []
        for item in dataset:
            items.append(item)
            if len(items) >= cap:
                break
        dataset = _ListDataset(items)
    try:
        n = len(dataset)
    except TypeError as exc:
        raise UsageError(f"{key}: the dataset has no length (implement __len__ or use an IterableDataset)") from exc
    if n == 0:
        raise UsageError(f"{key}: the dataset is empty")
    if max_samples is not None:
        n = min(n, max_samples)
    collate = loader.collate_fn if loader is not None and loader.collate_fn is not None else default_collate
    input_key, target_key = _conventional_keys(dataset, input_key, target_key)
    split = Split(name=name, source=obj, dataset=dataset, loader=loader, n=n,
                  input_key=input_key, target_key=target_key, collate_fn=collate, memory_mb=memory_mb)
    try:
        split.sample(0)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"{key}: reading sample 0 raised {type(exc).__name__}: {exc}") from exc
    return split


#: Keys of dict samples read without data.input_key / data.target_key: Hugging Face's names.
CONVENTIONAL_KEYS = ("input_ids", "labels")


def _conventional_keys(dataset: Any, input_key: str | None, target_key: str | None) -> tuple[str | None, str | None]:
    """Dict samples with Hugging Face's ``input_ids`` and ``labels`` keys need no data.input_key / target_key."""
    if input_key is not None and target_key is not None:
        return input_key, target_key
    try:
        first = dataset[0]
    except Exception:
        return input_key, target_key  # materialize reports it
    if isinstance(first, dict) and all(k in first for k in CONVENTIONAL_KEYS):
        return input_key or CONVENTIONAL_KEYS[0], target_key or CONVENTIONAL_KEYS[1]
    return input_key, target_key


# ---------------------------------------------------------------------------------------------- data pass


def _read_pass(split: Split) -> DataPass:
    """One streaming pass: statistics, hashes, embedding features and (within budget) the inputs, chunk by chunk.

    Memory is bounded whatever the dataset size: per sample only a few numbers, an 8-byte hash and at most
    ``embedding.MAX_DIM`` float32 features are kept; the inputs themselves only when they fit in
    ``data.memory_mb`` (in their own dtype when float32 adds nothing to it: see :func:`cache_dtype`), and a plain
    in-memory TensorDataset is not copied at all: the cache is a read-only view of its tensor.
    """
    from sanitycheck.pipeline.memory import trim
    from sanitycheck.engine.progress import scan_progress

    start = time.perf_counter()
    acc = _Accumulator(split)
    with scan_progress(f"data pass: {split.name}", split.n) as tick:
        scan(split, acc, tick)
    trim()
    return acc.finish(time.perf_counter() - start)


def scan(split: Split, acc: _Accumulator, tick: Callable[[int], None]) -> None:
    """Read the samples ``acc`` covers (``acc.start`` to ``acc.start + acc.n``) into it, chunk by chunk.

    Chunks start at multiples of :data:`CHUNK` (for a shard: when ``acc.start`` is one), so a pass read in shards
    sees the same chunks as one read whole.
    """
    if not _tensor_fast_path(split, acc, tick):
        _sample_loop(split, acc, tick)


def _tensor_source(split: Split) -> tuple[Any, Any, Any] | None:
    """``(inputs, targets, index)`` when the split is a plain TensorDataset (or a Subset of one), else None.

    ``index``: the Subset's indices into ``inputs`` (a long tensor), or None when the split is ``inputs[:n]``;
    targets are already selected. Only the exact class: a subclass may transform samples in ``__getitem__``, so
    it is read sample by sample.
    """
    from torch.utils.data import Subset, TensorDataset

    ds, index = split.dataset, None
    if type(ds) is Subset and type(ds.dataset) is TensorDataset:
        index = torch.as_tensor(list(ds.indices[: split.n]), dtype=torch.long)
        ds = ds.dataset
    if type(ds) is not TensorDataset or len(ds.tensors) < 2 or split.input_key is not None:
        return None
    x, y = ds.tensors[0], ds.tensors[1]
    if index is not None:
        return x, y[index], index  # inputs gathered chunk by chunk: no copy of the whole split
    return x[: split.n], y[: split.n], None


def cache_dtype(dtype: Any) -> np.dtype:
    """The dtype the input cache keeps: the inputs' own when float32 holds every value of it exactly (bool, 8- and
    16-bit integers, float16, float32), else float32 (the values the statistics, hashes and features see)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind in "biuf" and np.can_cast(dtype, np.float32, "safe") else np.dtype(np.float32)


def _view(x: Any) -> np.ndarray | None:
    """A CPU tensor as a NumPy array sharing its memory, or None (on a GPU, or a dtype NumPy lacks)."""
    if not isinstance(x, torch.Tensor) or x.device.type != "cpu":
        return None
    try:
        return x.detach().numpy()
    except (TypeError, RuntimeError):
        return None


def _tensor_fast_path(split: Split, acc: _Accumulator, tick: Callable[[int], None]) -> bool:
    """Read a TensorDataset by slices instead of sample by sample (the same values, much faster)."""
    source = _tensor_source(split)
    if source is None:
        return False
    x, y, index = source
    start, n = acc.start, acc.n
    ya = to_numpy(y[start:start + n])
    acc.input_shapes = [tuple(x.shape[1:])] * n
    acc.input_dtypes = [dtype_name(x[:1])] * n
    acc.target_shapes = [tuple(ya.shape[1:])] * n
    acc.target_dtypes = [dtype_name(y[:1])] * n
    acc.targets = ya
    if np.issubdtype(ya.dtype, np.number) or ya.dtype == bool:
        acc.target_nonfinite[:] = ~np.isfinite(ya.reshape(n, -1).astype(np.float64, copy=False)).all(1) \
            if ya.size else False
    whole = _view(x) if index is None else None
    if whole is not None and whole.dtype == cache_dtype(whole.dtype):
        acc.start_inputs(tuple(x.shape[1:]), whole.dtype, view=whole[start:])  # already in memory: no copy
    else:
        acc.start_inputs(tuple(x.shape[1:]), to_numpy(x[:1]).dtype)
    for lo in range(start, start + n, CHUNK):
        hi = min(start + n, lo + CHUNK)
        acc.add(np.arange(lo, hi), to_numpy(x[index[lo:hi]] if index is not None else x[lo:hi]))
        tick(hi - lo)
    return True


def _sample_loop(split: Split, acc: _Accumulator, tick: Callable[[int], None]) -> None:
    """The general path: read every sample through the dataset's ``__getitem__``, in chunks."""
    start, n = acc.start, acc.n
    targets: list[np.ndarray] = []
    chunk_idx: list[int] = []
    chunk_x: list[np.ndarray] = []

    def flush() -> None:
        shapes = {x.shape for x in chunk_x}
        if len(shapes) == 1:
            acc.add(np.asarray(chunk_idx), np.stack(chunk_x))
        else:  # mixed shapes: one sample at a time (rare, and reported by data-integrity)
            for i, x in zip(chunk_idx, chunk_x):
                acc.add(np.asarray([i]), x[None])
        chunk_idx.clear()
        chunk_x.clear()

    for i in range(start, start + n):
        try:
            x, y = split.sample(i)
        except UsageError:
            raise
        except Exception as exc:
            raise UsageError(f"data.{split.name}: reading sample {i} raised {type(exc).__name__}: {exc}") from exc
        xa, ya = to_numpy(x), to_numpy(y)
        acc.input_dtypes.append(dtype_name(x))
        acc.target_dtypes.append(dtype_name(y))
        acc.input_shapes.append(tuple(xa.shape))
        acc.target_shapes.append(tuple(ya.shape))
        if not np.issubdtype(xa.dtype, np.number) and xa.dtype != bool:
            raise UsageError(f"data.{split.name}: sample {i} has a non-numeric input of dtype {xa.dtype} ({type(x).__name__})")
        if i == start:
            acc.start_inputs(tuple(xa.shape), xa.dtype)
        if np.issubdtype(ya.dtype, np.number) or ya.dtype == bool:
            acc.target_nonfinite[i - start] = not np.isfinite(ya.astype(np.float64, copy=False)).all()
        targets.append(ya)
        chunk_idx.append(i)
        chunk_x.append(xa)
        if len(chunk_idx) >= CHUNK:
            flush()
        tick(1)
    if chunk_idx:
        flush()
    if len(set(acc.target_shapes)) == 1:
        try:
            acc.targets = np.stack(targets)
        except (TypeError, ValueError):
            acc.targets = None


class _Accumulator:
    """What the pass keeps while streaming: per-sample statistics, hashes, features, maybe the inputs.

    It covers samples ``start`` to ``stop`` (default: the whole split); row ``r`` of its arrays is sample
    ``start + r``. A shard read elsewhere (:mod:`sanitycheck.pipeline.ray_engine`) is one with ``cache=False``.
    """

    def __init__(self, split: Split, start: int = 0, stop: int | None = None, cache: bool = True):
        self.start = start
        n = self.n = (split.n if stop is None else stop) - start
        self.budget = split.memory_mb * 2**20 if cache else 0
        self.stats = {k: np.zeros(n, dtype=np.float64) for k in ("numel", "nan", "inf", "min", "max", "mean", "std")}
        self.target_nonfinite = np.zeros(n, dtype=bool)
        self.input_shapes: list[tuple[int, ...]] = []
        self.input_dtypes: list[str] = []
        self.target_shapes: list[tuple[int, ...]] = []
        self.target_dtypes: list[str] = []
        self.targets: np.ndarray | None = None
        self.inputs: np.ndarray | None = None
        self.inputs_note = "cached"
        self.inputs_view = False  # the cache is the user's own tensor (nothing to copy)
        self.hashes = np.zeros(n, dtype=np.uint64)
        self.features: np.ndarray | None = None
        self.features_kind: str | None = None
        self.features_note = "embedded"

    def start_inputs(self, shape: tuple[int, ...], dtype: Any, view: np.ndarray | None = None) -> None:
        """Cache the inputs (shape and dtype of the first) when they fit the budget; ``view``: all of them already."""
        dtype = cache_dtype(dtype)
        need = self.n * max(int(np.prod(shape)), 1) * dtype.itemsize
        if need > self.budget:
            self.inputs_note = f"not cached: {need / 2**20:.0f} MiB exceeds data.memory_mb={self.budget // 2**20}"
        elif view is not None:
            self.inputs, self.inputs_view = view[: self.n].view(), True
        else:
            self.inputs = np.zeros((self.n, *shape), dtype=dtype)

    def _cache(self, idx: np.ndarray, raw: np.ndarray) -> None:
        """Copy a chunk into the cache (widened to float32 once if a chunk does not fit the cache's dtype)."""
        if raw.shape[1:] != self.inputs.shape[1:]:
            self.inputs, self.inputs_note = None, "not cached: inputs have different shapes"
            return
        if not np.can_cast(cache_dtype(raw.dtype), self.inputs.dtype, "safe"):
            if self.inputs.size * 4 > self.budget:
                self.inputs, self.inputs_note = None, "not cached: inputs have different dtypes"
                return
            self.inputs = self.inputs.astype(np.float32)
        if len(idx) and idx[-1] - idx[0] + 1 == len(idx):  # a run of indices: a plain copy, no gather
            self.inputs[idx[0]:idx[-1] + 1] = raw
        else:
            self.inputs[idx] = raw

    def add(self, idx: np.ndarray, xs: np.ndarray) -> None:
        """A chunk of equally shaped inputs ``xs`` (rows are the samples at ``idx``)."""
        from sanitycheck.pipeline.features import content_hashes, raw_features

        idx = idx - self.start
        size = int(np.prod(xs.shape[1:]))
        if self.inputs is not None and not self.inputs_view:
            self._cache(idx, xs)
        xs = np.ascontiguousarray(xs, dtype=np.float32)  # one conversion, shared by statistics, hash and features
        flat = xs.reshape(len(idx), -1) if size else None
        _chunk_stats(self.stats, idx, flat, size)
        self.hashes[idx] = content_hashes(xs)
        if self.features_note != "embedded":
            return
        if not size:
            self.features, self.features_note = None, "not embedded: empty inputs"
            return
        feats, kind = raw_features(xs)
        if self.features is None:
            self.features = np.zeros((self.n, feats.shape[1]), dtype=np.float32)
            self.features_kind = kind
        if feats.shape[1] != self.features.shape[1] or kind != self.features_kind:
            self.features, self.features_note = None, "not embedded: inputs have different shapes"
            return
        self.features[idx] = feats

    def finish(self, seconds: float) -> DataPass:
        s = self.stats
        if self.inputs is not None:
            self.inputs.flags.writeable = False  # shared by every check (and maybe the user's own tensor)
        return DataPass(
            n=self.n, inputs=self.inputs, inputs_note=self.inputs_note, targets=self.targets,
            input_shapes=self.input_shapes, input_dtypes=self.input_dtypes,
            target_shapes=self.target_shapes, target_dtypes=self.target_dtypes,
            numel=s["numel"].astype(np.int64), nan_count=s["nan"].astype(np.int64),
            inf_count=s["inf"].astype(np.int64), minimum=s["min"], maximum=s["max"],
            mean=s["mean"], std=s["std"], target_nonfinite=self.target_nonfinite,
            seconds=seconds, hashes=self.hashes, features=self.features, features_kind=self.features_kind,
            features_note=self.features_note,
        )


def _chunk_stats(stats: dict[str, np.ndarray], idx: np.ndarray, flat: np.ndarray | None, numel: int) -> None:
    """Per-sample statistics for a chunk of equally shaped samples (rows of ``flat``), over finite values."""
    stats["numel"][idx] = numel
    if flat is None:  # empty inputs
        for k in ("min", "max", "mean", "std"):
            stats[k][idx] = math.nan
        return
    finite = np.isfinite(flat)
    if finite.all():
        stats["min"][idx] = flat.min(1)
        stats["max"][idx] = flat.max(1)
        stats["mean"][idx] = flat.mean(1, dtype=np.float64)
        stats["std"][idx] = flat.std(1, dtype=np.float64)
        return
    stats["nan"][idx] = np.isnan(flat).sum(1)
    stats["inf"][idx] = np.isinf(flat).sum(1)
    masked = np.where(finite, flat, np.nan)
    with warnings.catch_warnings():  # all-NaN rows are expected here: their statistics are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        stats["min"][idx] = np.nanmin(masked, 1)
        stats["max"][idx] = np.nanmax(masked, 1)
        stats["mean"][idx] = np.nanmean(masked, 1, dtype=np.float64)
        stats["std"][idx] = np.nanstd(masked, 1, dtype=np.float64)
