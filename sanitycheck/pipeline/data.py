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
from sanitycheck.engine.memory import empty_huge, empty_shared
from sanitycheck.pipeline.tensors import describe, dtype_name, target_array, to_numpy

#: How ``DataPass.targets_note`` ends for targets that are not numbers (``DataPass.structured_targets``).
NOT_NUMBERS = ", not numbers"
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


#: Two splits' inputs are on one scale when the std ratio val/train lies within this factor either way and their
#: means are at most SPLIT_MEAN_SHIFT training stds apart (data-integrity's SC811 rule, these its defaults).
SPLIT_STD_RATIO = 1.5
SPLIT_MEAN_SHIFT = 2.0


def scale_shift(train: dict[str, float], val: dict[str, float]) -> tuple[float, float] | None:
    """How far apart two splits' input scales are (:meth:`DataPass.input_scale` of each): ``(std ratio val/train,
    mean shift in training stds)``; None when either is not finite or constant."""
    if not all(math.isfinite(s[k]) for s in (train, val) for k in ("mean", "std")) or train["std"] <= 0 or val["std"] <= 0:
        return None
    return val["std"] / train["std"], abs(val["mean"] - train["mean"]) / train["std"]


def within_scale(apart: tuple[float, float], std_ratio: float = SPLIT_STD_RATIO,
                 mean_shift: float = SPLIT_MEAN_SHIFT) -> bool:
    """The SC811 rule on a :func:`scale_shift`: the std ratio within ``std_ratio`` either way, the means at most
    ``mean_shift`` training stds apart."""
    ratio, shift = apart
    return 1 / std_ratio <= ratio <= std_ratio and shift <= mean_shift


def same_scale(train: Split, val: Split) -> bool:
    """Whether two splits' inputs are on one scale by the SC811 rule at its defaults (label-shuffle reads held-out
    neighbours only then: raw validation features against standardized training ones have neighbours of any
    class)."""
    apart = scale_shift(train.data_pass().input_scale(), val.data_pass().input_scale())
    return apart is not None and within_scale(apart)


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
    #: Targets as an array ``(n,)`` (scalar targets) or ``(n, *shape)``; ``None`` when their shapes differ or they
    #: are not numbers (a dict per sample), ``targets_note`` says which.
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
    #: Why ``targets`` is None ("their shapes differ", "a dict per sample, not numbers"); "" when it is not.
    targets_note: str = ""

    @property
    def structured_targets(self) -> bool:
        """Targets that are not numbers (a dict per sample for multi-task heads, read by the user's loss)."""
        return self.targets is None and self.targets_note.endswith(NOT_NUMBERS)

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
    #: Dict samples: the keys of the input and the target (an input of several keys is read as a dict of them).
    #: Tuple/list samples: their positions (an input of several positions is read as a tuple of them); None there
    #: means (input, target, ...).
    input_key: str | int | list[int] | list[str] | None
    target_key: str | int | None
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
            names = self.input_key if isinstance(self.input_key, list) else [self.input_key]
            target = target_name(item, self.target_key)
            missing = [k for k in (*names, target) if k not in item]
            if missing:
                raise UsageError(f"data.{self.name}: {where} has no key {missing[0]!r} (keys: {sorted(map(str, item))})")
            inputs = {k: item[k] for k in names} if isinstance(self.input_key, list) else item[self.input_key]
            return inputs, item[target]
        if isinstance(item, (tuple, list)) and len(item) >= 2:
            if isinstance(self.input_key, list) and not all(isinstance(k, int) for k in self.input_key):
                raise UsageError(f"data.input_key: {where} is a {type(item).__name__}; a list of keys is for dict "
                                 "samples (give positions: [0, 1])")
            inputs, target = _positions(self)
            for key, pos in [*(("input_key", p) for p in inputs), ("target_key", target)]:
                if not -len(item) <= pos < len(item):
                    raise UsageError(f"data.{key}: {where} has {len(item)} elements, no position {pos}"
                                     + (" (positions index a sample as the dataset returns it, before any "
                                        "collate_fn)" if index is not None else ""))
            return tuple(item[p] for p in inputs) if isinstance(self.input_key, list) else item[inputs[0]], item[target]
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
        if inputs is not None and isinstance(split.input_key, list):  # several names: a dict of them
            new.update(inputs)
        elif inputs is not None:
            new[split.input_key] = inputs
        if targets is not None:
            new[target_name(batch, split.target_key)] = targets
        return new
    items = list(batch)
    positions, target = _positions(split)
    if inputs is not None:
        if isinstance(split.input_key, list):  # several positions: the inputs come as a tuple of them
            for pos, value in zip(positions, inputs, strict=True):
                items[pos] = value
        else:
            items[positions[0]] = inputs
    if targets is not None:
        items[target] = targets
    return items if isinstance(batch, list) else tuple(items)


def target_name(item: dict, key: Any) -> Any:
    """The key under which dict ``item`` (a sample or a collated batch) holds the target named ``key``: Hugging
    Face's collators (DataCollatorWithPadding, default_data_collator) rename a sample's ``label`` or ``label_ids``
    to the batch's ``labels``, so these names stand for one another."""
    if key in item or key not in CONVENTIONAL_TARGET_KEYS:
        return key
    return next((alias for alias in CONVENTIONAL_TARGET_KEYS if alias in item), key)


def _positions(split: Split) -> tuple[list[int], int]:
    """Where a tuple/list sample holds its input(s) and its target: ``data.input_key`` / ``data.target_key`` when
    they are positions (e.g. ``TensorDataset(input_ids, attention_mask, labels)``: ``[0, 1]`` and ``2``), else
    ``(input, target, ...)``."""
    key = split.input_key
    inputs = key if isinstance(key, list) else [key] if isinstance(key, int) else [0]
    return inputs, split.target_key if isinstance(split.target_key, int) else 1


def materialize(obj: Any, name: str, *, max_samples: int | None, memory_mb: int,
                input_key: str | int | list[int] | list[str] | None, target_key: str | int | None) -> Split:
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


#: Keys of dict samples read without data.input_key / data.target_key: Hugging Face's names of a model's main input
#: (text, images, audio waveforms, audio features) and of the targets (``label`` is the datasets' column before a
#: collator renames it).
CONVENTIONAL_INPUT_KEYS = ("input_ids", "pixel_values", "input_values", "input_features")
CONVENTIONAL_TARGET_KEYS = ("labels", "label", "label_ids")


def _conventional_keys(dataset: Any, input_key: Any, target_key: Any) -> tuple[Any, Any]:
    """Dict samples with exactly one of Hugging Face's input names and one of its target names need no
    data.input_key / target_key."""
    if input_key is not None and target_key is not None:
        return input_key, target_key
    try:
        first = dataset[0]
    except Exception:
        return input_key, target_key  # materialize reports it
    if not isinstance(first, dict):
        return input_key, target_key
    inputs = [k for k in CONVENTIONAL_INPUT_KEYS if k in first]
    targets = [k for k in CONVENTIONAL_TARGET_KEYS if k in first]
    if len(inputs) == 1 and len(targets) == 1:
        return (input_key if input_key is not None else inputs[0],
                target_key if target_key is not None else targets[0])
    return input_key, target_key


# ---------------------------------------------------------------------------------------------- data pass


def _read_pass(split: Split) -> DataPass:
    """One streaming pass: statistics, hashes, embedding features and (within budget) the inputs, chunk by chunk.

    Memory is bounded whatever the dataset size: per sample only a few numbers, an 8-byte hash and at most
    ``embedding.MAX_DIM`` float32 features are kept; the inputs themselves only when they fit in
    ``data.memory_mb`` (in their own dtype when float32 adds nothing to it: see :func:`cache_dtype`), and a plain
    in-memory TensorDataset is not copied at all: the cache is a read-only view of its tensor.

    Speed: each chunk of :data:`CHUNK` samples is read and summarized in one go (:class:`_Reader`: a
    TensorDataset by slices, any other dataset through its ``__getitem__``). The first chunk is timed on the
    main thread; when the rest would take longer than :data:`WORKERS_AFTER` seconds, it is spread over DataLoader
    worker processes (as many as the run's thread policy gives cores, :mod:`sanitycheck.engine.threads`; the
    user's DataLoader's ``worker_init_fn`` and ``multiprocessing_context`` when the split is one), each reading
    *and* summarizing whole chunks, while the main process only places their results. Every sample's results
    are the same either way (tests/test_embedding.py).
    """
    from sanitycheck.engine.progress import scan_progress
    from sanitycheck.engine.memory import trim

    start = time.perf_counter()
    acc = _Accumulator(split)
    with scan_progress(f"data pass: {split.name}", split.n) as tick:
        scan(split, acc, tick)
    trim()
    return acc.finish(time.perf_counter() - start)


def scan(split: Split, acc: _Accumulator, tick: Callable[[int], None], workers: bool = True) -> None:
    """Read the samples ``acc`` covers (``acc.start`` to ``acc.start + acc.n``) into it, chunk by chunk.

    Chunks start at multiples of :data:`CHUNK` (for a shard: when ``acc.start`` is one), so a pass read in shards
    sees the same chunks as one read whole. ``workers=False``: never DataLoader workers (a Ray shard is already
    one worker's share).
    """
    reader = _Reader(split)
    stop = acc.start + acc.n
    chunks = [np.arange(lo, min(stop, lo + CHUNK)) for lo in range(acc.start, stop, CHUNK)]
    reader.prepare(acc)
    if chunks:
        reader.keep_inputs = not acc._started or (acc.inputs is not None and not acc.inputs_view)
        first = time.perf_counter()
        part = reader.chunk(chunks[0])
        estimate = (time.perf_counter() - first) * (len(chunks) - 1) if workers else 0.0
        count = pass_workers(split, estimate) if len(chunks) > 1 else 0
        # forked workers write their inputs straight into a cache they share (see memory.empty_shared)
        acc.share_cache = bool(count) and not acc._started and _forks(split)
        acc.merge(part)
        tick(len(chunks[0]))
        reader.keep_inputs = acc.inputs is not None and not acc.inputs_view
        reader.shared = (acc.inputs, acc.start) if reader.keep_inputs and acc.inputs is acc.shared else None
        for part in _chunk_results(split, reader, chunks[1:], count):
            acc.merge(part)
            tick(len(part.idx))
    acc.settle_targets()


#: Read the rest of a split in DataLoader worker processes when the main thread would take longer than this
#: (seconds, estimated from the first chunk): starting two forked workers costs about 0.15 s. The 10k CIFAR-sized
#: validation images behind a per-sample Dataset (estimated 0.85 s) took 0.61-0.95 s on the main thread and
#: 0.49-0.59 s with two workers (2 cores, 2 runs each); at 1.0 s they were read on the main thread.
WORKERS_AFTER = 0.5
#: ... and when workers are spawned, not forked (macOS's and Windows' default): each imports torch again first,
#: seconds rather than 0.15 s (the threshold before the one above; not measured here, where workers fork).
WORKERS_AFTER_SPAWN = 1.0


def pass_workers(split: Split, estimate: float) -> int:
    """How many worker processes read the rest of ``split`` (0: the main thread does), given the estimated
    main-thread seconds: the run's available cores when there are at least 2 and the estimate exceeds
    :data:`WORKERS_AFTER` (:data:`WORKERS_AFTER_SPAWN` for workers that are not forked)."""
    from sanitycheck.engine.threads import current_threads

    threshold = WORKERS_AFTER if _forks(split) else WORKERS_AFTER_SPAWN
    if estimate < threshold or isinstance(split.dataset, _ListDataset):
        return 0
    workers = current_threads()
    return workers if workers >= 2 else 0


def _forks(split: Split) -> bool:
    """Whether the pass's DataLoader workers are forked (they then see memory the main process shares)."""
    import multiprocessing

    context = getattr(split.loader, "multiprocessing_context", None)
    if context is not None:
        return context.get_start_method() == "fork"
    # unset: the platform's default, which the first of get_all_start_methods() is (asking would fix it)
    return (multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]) == "fork"


def _chunk_results(split: Split, reader: _Reader, chunks: list[np.ndarray], workers: int):
    """The :class:`_Chunk` of every chunk, in order: on the main thread, or from ``workers`` DataLoader workers."""
    if workers and chunks:
        loader = split.loader
        try:
            it = iter(DataLoader(
                _Chunks(reader, chunks), batch_size=None, num_workers=min(workers, len(chunks)),
                collate_fn=_identity, worker_init_fn=getattr(loader, "worker_init_fn", None),
                multiprocessing_context=getattr(loader, "multiprocessing_context", None),
            ))
            part = next(it)
        except Exception:  # workers cannot start (e.g. an unpicklable dataset under spawn): the main thread reads
            workers = 0
        else:
            yield part
            yield from it
            return
    for idx in chunks:
        yield reader.chunk(idx)


def _identity(item: Any) -> Any:
    return item


class _Chunks(Dataset):
    """Chunk ``j`` of a pass, read and summarized: what each DataLoader worker computes."""

    def __init__(self, reader: _Reader, chunks: list[np.ndarray]):
        self.reader, self.chunks = reader, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, j: int) -> _Chunk:
        return self.reader.chunk(self.chunks[j])


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


@dataclass
class _Group:
    """Equally shaped samples of a chunk (rows ``pos`` of it) and their summaries."""

    pos: np.ndarray
    stats: dict[str, np.ndarray]
    hashes: np.ndarray
    features: np.ndarray | None
    kind: str | None
    #: The inputs as read (for the cache; only when the pass keeps them), a tensor when they travel between
    #: processes (shared memory instead of a pickled copy).
    inputs: Any = None
    #: True when the reader wrote the inputs into the shared cache itself (``inputs`` is then None).
    written: bool = False


@dataclass
class _Chunk:
    """One chunk of a pass, read and summarized (by the main thread or a DataLoader worker)."""

    idx: np.ndarray
    groups: list[_Group] = field(default_factory=list)
    #: Per-sample descriptions (the general path; the TensorDataset path knows them for the whole split).
    input_dtypes: list[str] = field(default_factory=list)
    target_dtypes: list[str] = field(default_factory=list)
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    target_shapes: list[tuple[int, ...]] = field(default_factory=list)
    #: The targets in blocks of rows, in order: one block of the whole chunk when they stack (one array travels
    #: back from a worker, not one per sample), else one block per sample.
    targets: list[np.ndarray] = field(default_factory=list)
    target_nonfinite: np.ndarray | None = None
    #: A reading error: ``UsageError``'s message (raised by the main process).
    error: str | None = None


class _Reader:
    """Reads chunks of a split and summarizes them (statistics, hashes, features); picklable for workers."""

    def __init__(self, split: Split):
        self.split = split
        self.source = _tensor_source(split)
        self.keep_inputs = True
        #: ``(cache, first row's sample index)``: the accumulator's shared input cache, written here directly.
        self.shared: tuple[np.ndarray, int] | None = None

    def prepare(self, acc: _Accumulator) -> None:
        """What is known before reading: the TensorDataset path's shapes, dtypes, targets and cache (a view)."""
        if self.source is None:
            return
        x, y, index = self.source
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

    def chunk(self, idx: np.ndarray) -> _Chunk:
        try:
            out = self._tensor_chunk(idx) if self.source is not None else self._sample_chunk(idx)
        except UsageError as exc:
            return _Chunk(idx=idx, error=str(exc))
        for group in out.groups:
            self._hand_over(idx, group)
        return out

    def _hand_over(self, idx: np.ndarray, group: _Group) -> None:
        """Write a group's inputs into the shared cache when there is one and they fit it; else, in a worker, make
        them a tensor (it travels through shared memory instead of as a pickled copy)."""
        raw = group.inputs
        if raw is None:
            return
        if self.shared is not None:
            cache, first = self.shared
            if raw.shape[1:] == cache.shape[1:] and np.can_cast(cache_dtype(raw.dtype), cache.dtype, "safe"):
                rows = idx[group.pos] - first
                if rows[-1] - rows[0] + 1 == len(rows):  # a run of indices: a plain copy, no scatter
                    cache[rows[0]:rows[-1] + 1] = raw
                else:
                    cache[rows] = raw
                group.inputs, group.written = None, True
                return
        if torch.utils.data.get_worker_info() is not None:
            try:
                group.inputs = torch.from_numpy(np.ascontiguousarray(raw))
            except TypeError:
                pass

    def _tensor_chunk(self, idx: np.ndarray) -> _Chunk:
        x, _, index = self.source
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        xs = to_numpy(x[index[lo:hi]] if index is not None else x[lo:hi])
        return _Chunk(idx=idx, groups=[self._summarize(np.arange(len(idx)), xs)])

    def _sample_chunk(self, idx: np.ndarray) -> _Chunk:
        split = self.split
        out = _Chunk(idx=idx, target_nonfinite=np.zeros(len(idx), dtype=bool))
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        for pos, i in enumerate(idx.tolist()):
            try:
                x, y = split.sample(i)
            except UsageError:
                raise
            except Exception as exc:
                raise UsageError(f"data.{split.name}: reading sample {i} raised {type(exc).__name__}: {exc}") from exc
            try:
                xa, ya = to_numpy(x), target_array(y)
            except (TypeError, ValueError) as exc:  # e.g. a nested structure NumPy cannot make one array of
                raise UsageError(f"data.{split.name}: sample {i}'s input or target cannot be read as an array "
                                 f"(input {describe(x)}, target {describe(y)}): {exc}") from exc
            out.input_dtypes.append(dtype_name(x))
            out.target_dtypes.append(dtype_name(y))
            out.input_shapes.append(tuple(xa.shape))
            out.target_shapes.append(tuple(ya.shape))
            if xa.dtype.kind not in "biufc":
                raise UsageError(f"data.{split.name}: sample {i} has a non-numeric input of dtype {xa.dtype} "
                                 f"({type(x).__name__})")
            if ya.dtype.kind in "fc":  # integer and bool targets are always finite
                out.target_nonfinite[pos] = not np.isfinite(ya).all()
            ys.append(ya)
            xs.append(xa)
        out.targets = _blocks(ys, out.target_shapes)
        if len(set(out.input_shapes)) == 1:
            out.groups.append(self._summarize(np.arange(len(idx)), np.stack(xs)))
        else:  # mixed shapes: one sample at a time (rare, and reported by data-integrity)
            out.groups += [self._summarize(np.array([pos]), x[None]) for pos, x in enumerate(xs)]
        return out

    def _summarize(self, pos: np.ndarray, xs: np.ndarray) -> _Group:
        """Statistics, hashes and features of equally shaped inputs ``xs`` (rows ``pos`` of a chunk)."""
        from sanitycheck.pipeline.features import content_hashes, raw_features

        size = int(np.prod(xs.shape[1:]))
        raw = xs if self.keep_inputs else None
        flat32 = np.ascontiguousarray(xs, dtype=np.float32)  # one conversion: statistics, hash and features
        flat = flat32.reshape(len(pos), -1) if size else None
        stats = _chunk_stats(flat, size, len(pos))
        finite = "nan" not in stats  # counted only where there are some (_chunk_stats)
        hashes = content_hashes(flat32, finite)
        feats = kind = None
        if size:
            feats, kind = raw_features(flat32, finite)
        return _Group(pos=pos, stats=stats, hashes=hashes, features=feats, kind=kind, inputs=raw)


def _blocks(values: list[np.ndarray], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Per-sample arrays as blocks of rows: one stacked block when they have one shape, else one block each."""
    if len(set(shapes)) == 1:
        try:
            return [np.stack(values)]
        except (TypeError, ValueError):
            pass
    return [v[None] for v in values]


class _Accumulator:
    """What the pass keeps while streaming: per-sample statistics, hashes, features, maybe the inputs.

    It covers samples ``start`` to ``stop`` (default: the whole split); row ``r`` of its arrays is sample
    ``start + r``. A shard read elsewhere (:mod:`sanitycheck.pipeline.ray_engine`) is one with ``cache=False``.
    """

    def __init__(self, split: Split, start: int = 0, stop: int | None = None, cache: bool = True):
        self.start = start
        n = self.n = (split.n if stop is None else stop) - start
        self.name = split.name
        self.budget = split.memory_mb * 2**20 if cache else 0
        self.stats = {k: np.zeros(n, dtype=np.float64) for k in ("numel", "nan", "inf", "min", "max", "mean", "std")}
        self.target_nonfinite = np.zeros(n, dtype=bool)
        self.input_shapes: list[tuple[int, ...]] = []
        self.input_dtypes: list[str] = []
        self.target_shapes: list[tuple[int, ...]] = []
        self.target_dtypes: list[str] = []
        self.targets: np.ndarray | None = None
        self.targets_note = ""
        self._target_parts: list[np.ndarray] = []  # blocks of rows (see _Chunk.targets)
        self.inputs: np.ndarray | None = None
        self.inputs_note = "cached"
        self.inputs_view = False  # the cache is the user's own tensor (nothing to copy)
        #: Make the cache memory that forked workers share (set before the first chunk is placed), and that cache.
        self.share_cache = False
        self.shared: np.ndarray | None = None
        self._started = False
        self.hashes = np.zeros(n, dtype=np.uint64)
        self.features: np.ndarray | None = None
        self.features_kind: str | None = None
        self.features_note = "embedded"

    def start_inputs(self, shape: tuple[int, ...], dtype: Any, view: np.ndarray | None = None) -> None:
        """Cache the inputs (shape and dtype of the first) when they fit the budget; ``view``: all of them already."""
        self._started = True
        dtype = cache_dtype(dtype)
        need = self.n * max(int(np.prod(shape)), 1) * dtype.itemsize
        if need > self.budget:
            self.inputs_note = f"not cached: {need / 2**20:.0f} MiB exceeds data.memory_mb={self.budget // 2**20}"
        elif view is not None:
            self.inputs, self.inputs_view = view[: self.n].view(), True
        elif self.share_cache:
            self.inputs = self.shared = empty_shared((self.n, *shape), dtype)
        else:  # every row is written by the pass: no zero-filling, and huge pages (few page faults; memory.py)
            self.inputs = empty_huge((self.n, *shape), dtype)

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

    def merge(self, chunk: _Chunk) -> None:
        """Place one chunk's results (rows are the samples at ``chunk.idx``)."""
        if chunk.error is not None:
            raise UsageError(chunk.error)
        idx = chunk.idx - self.start
        if chunk.target_nonfinite is not None:  # the general path: per-sample descriptions
            self.input_dtypes += chunk.input_dtypes
            self.target_dtypes += chunk.target_dtypes
            self.input_shapes += chunk.input_shapes
            self.target_shapes += chunk.target_shapes
            self.target_nonfinite[idx] = chunk.target_nonfinite
            self._target_parts += chunk.targets
        for group in chunk.groups:
            rows = idx[group.pos]
            raw = group.inputs.numpy() if isinstance(group.inputs, torch.Tensor) else group.inputs
            if not self._started:  # the first sample's shape and dtype decide the cache
                first = raw if raw is not None else np.zeros((1, *chunk.input_shapes[0]), dtype=np.float32)
                self.start_inputs(tuple(first.shape[1:]), first.dtype)
            if self.inputs is not None and not self.inputs_view and raw is not None:
                self._cache(rows, raw)
            elif group.written and self.inputs is not None and self.inputs is not self.shared:
                self._cache(rows, self.shared[rows])  # the cache was widened since: the rows move with it
            for k, v in group.stats.items():
                self.stats[k][rows] = v
            self.hashes[rows] = group.hashes
            self._features(rows, group)

    def _features(self, rows: np.ndarray, group: _Group) -> None:
        if self.features_note != "embedded":
            return
        if group.features is None:
            self.features, self.features_note = None, "not embedded: empty inputs"
            return
        if self.features is None:
            self.features = np.zeros((self.n, group.features.shape[1]), dtype=np.float32)
            self.features_kind = group.kind
        if group.features.shape[1] != self.features.shape[1] or group.kind != self.features_kind:
            self.features, self.features_note = None, "not embedded: inputs have different shapes"
            return
        self.features[rows] = group.features

    def settle_targets(self) -> None:
        """The general path's targets, one array when they stack (its per-chunk parts are dropped)."""
        if self._target_parts and len(set(self.target_shapes)) == 1:
            try:
                self.targets = np.concatenate(self._target_parts)
            except (TypeError, ValueError):
                self.targets, self.targets_note = None, "they do not stack into one array"
            if self.targets is not None and self.targets.dtype.kind not in "biufc":
                # structured targets (a dict per sample for multi-task heads): no one value per sample to read
                first = self._target_parts[0][0]
                kind = type(first).__name__ if self.targets.dtype == object and self.targets.ndim == 1 \
                    else str(first.dtype)
                self.targets, self.targets_note = None, f"a {kind} per sample{NOT_NUMBERS}"
        elif self._target_parts:
            self.targets_note = "their shapes differ"
        self._target_parts = []

    def finish(self, seconds: float) -> DataPass:
        s = self.stats
        if self.inputs is not None:
            self.inputs.flags.writeable = False  # shared by every check (and maybe the user's own tensor)
        return DataPass(
            n=self.n, inputs=self.inputs, inputs_note=self.inputs_note, targets=self.targets,
            targets_note=self.targets_note,
            input_shapes=self.input_shapes, input_dtypes=self.input_dtypes,
            target_shapes=self.target_shapes, target_dtypes=self.target_dtypes,
            numel=s["numel"].astype(np.int64), nan_count=s["nan"].astype(np.int64),
            inf_count=s["inf"].astype(np.int64), minimum=s["min"], maximum=s["max"],
            mean=s["mean"], std=s["std"], target_nonfinite=self.target_nonfinite,
            seconds=seconds, hashes=self.hashes, features=self.features, features_kind=self.features_kind,
            features_note=self.features_note,
        )


def _chunk_stats(flat: np.ndarray | None, numel: int, m: int) -> dict[str, np.ndarray]:
    """Per-sample statistics of ``m`` equally shaped samples (rows of ``flat``), over finite values. The NaN and
    Inf counts (``nan``, ``inf``) are only there when some value is not finite (the pass starts them at 0)."""
    stats = {"numel": np.full(m, numel, dtype=np.float64)}
    if flat is None:  # empty inputs
        return {**stats, **{k: np.full(m, math.nan) for k in ("min", "max", "mean", "std")}}
    lo, hi = flat.min(1), flat.max(1)
    if np.isfinite(lo).all() and np.isfinite(hi).all():  # NaN or Inf in a row shows in its min or max
        mean = flat.mean(1, dtype=np.float64)
        # the spread from values centred on the (float32) mean, their squares summed by one dot product each:
        # std(1, dtype=float64) converts every value and took 10 of a 1024-image chunk's 14 ms of statistics
        # (3x32x32 floats). The centred values' own mean (what float32 rounding of the mean left) is taken out,
        # so a small spread around a large mean keeps its precision (1e-6 relative or better)
        centred = flat - mean.astype(flat.dtype)[:, None]
        offset = centred.sum(1).astype(np.float64) / numel
        square = np.einsum("ij,ij->i", centred, centred).astype(np.float64) / numel
        return {**stats, "min": lo.astype(np.float64), "max": hi.astype(np.float64),
                "mean": mean, "std": np.sqrt(np.maximum(square - offset**2, 0.0))}
    finite = np.isfinite(flat)
    stats["nan"] = np.isnan(flat).sum(1).astype(np.float64)
    stats["inf"] = np.isinf(flat).sum(1).astype(np.float64)
    masked = np.where(finite, flat, np.nan)
    with warnings.catch_warnings():  # all-NaN rows are expected here: their statistics are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        stats["min"] = np.nanmin(masked, 1).astype(np.float64)
        stats["max"] = np.nanmax(masked, 1).astype(np.float64)
        stats["mean"] = np.nanmean(masked, 1, dtype=np.float64)
        stats["std"] = np.nanstd(masked, 1, dtype=np.float64)
    return stats
