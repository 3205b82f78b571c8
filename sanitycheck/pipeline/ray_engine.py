"""The one data pass on a Ray cluster: ``engine: {name: ray, address: auto}`` in the config, or ``--engine ray``.

What runs where:

* **On the workers**, as Ray Data ``map_batches`` over shards: content hashes, per-sample statistics, targets and the
  raw features of the shared embedding, computed by the very functions the local pass uses
  (:func:`sanitycheck.pipeline.data.scan` into an ``_Accumulator`` covering the shard). A map-style Dataset is
  sharded by index ranges of :func:`shard_size` samples (multiples of :data:`~sanitycheck.pipeline.data.CHUNK`, so
  every chunk is the one the local pass reads); each worker process builds its own dataset object once, as a DataLoader
  worker does: it imports the config's ``module:attr`` reference with the config's folder on ``sys.path`` (a
  dataset given as a Python object is pickled once into the object store instead). A ``ray.data.Dataset`` given as
  ``data.train``/``data.val`` is used as it is (:class:`RayRows`): ``map_batches`` over its own blocks.
* **Back to the driver** travel only the compact per-sample results: an 8-byte hash, seven statistics, the target,
  and the float32 raw features (at most 192 values; 64 for a grey image). Shapes and dtypes come run-length coded.
  The inputs stay on the cluster: the driver's :class:`~sanitycheck.pipeline.data.DataPass` has ``inputs=None``
  (checks that need a few inputs read them through the dataset), except for an in-memory TensorDataset, whose
  tensor the driver already holds (a view, as with the local engine).
* **On the driver**: everything else: the merge (in index order, so the result is the local engine's), the
  embedding, the neighbour search and every check. The training probes stay local: they train on small subsets.

Ray is an optional extra (``pip install 'sanitycheck[ray]'``): this module is imported only for ``engine: ray`` or a
``ray.data.Dataset`` split, and imports ``ray`` inside its functions.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sanitycheck.engine.errors import ConfigError, UsageError
from sanitycheck.pipeline.data import CHUNK, DataPass, Split, _Accumulator, _ListDataset, _tensor_source, _view, \
    cache_dtype, materialize, scan
from sanitycheck.pipeline.ray_rows import INSTALL_HINT, RayRows, quiet_ray_data, require_ray

#: Shards are sized for about this many per worker CPU (load balance, and a progress display that moves) ...
SHARDS_PER_CPU = 4
#: ... within these bounds (samples; multiples of CHUNK). A shard's results are ~1 KiB per sample at most.
MIN_SHARD, MAX_SHARD = CHUNK, 64 * CHUNK


# ------------------------------------------------------------------------------------------ the cluster


def connect(engine: Any) -> None:
    """Connect this process to the cluster ``engine.address`` names (once; a process already connected stays so).

    ``auto``: ``RAY_ADDRESS``, else the cluster ``ray start`` started on this machine; ``host:port``: a head node's
    GCS; ``ray://host:10001``: Ray Client; ``local``: a private Ray on this machine, stopped when the process ends.
    """
    ray = require_ray()
    quiet_ray_data()
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
    if engine.runtime_env:
        kwargs["runtime_env"] = engine.runtime_env
    address = None if engine.address == "local" else engine.address
    if address is None:
        kwargs["include_dashboard"] = False
    elif address != "auto" and not _reachable(address):  # Ray itself retries an unreachable head for minutes
        raise ConfigError(f"engine.address: nothing answers at {address!r} (within {PROBE_S:.0f} s); is the Ray head "
                          "running there? (`ray start --head`; Ray Client listens on port 10001)")
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise ConfigError(
            f"engine.address: no Ray cluster found at {engine.address!r} ({exc}); start one (`ray start --head` on "
            "this machine for `auto`), name its head (`host:6379`, `ray://host:10001`), or use address: local") from exc
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"engine.address: cannot connect to Ray at {engine.address!r}: {exc}") from exc


#: Seconds to wait for a TCP answer from a named head before giving up (Ray's own connect retries for minutes).
PROBE_S = 5.0


def _reachable(address: str) -> bool:
    """Whether something accepts a TCP connection at ``[ray://]host:port`` (a head's GCS or Ray Client server)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return True  # not host:port: let Ray judge (and word) it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_S):
            return True
    except OSError:
        return False


def cluster_cpus() -> int:
    """The CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def shard_size(n: int, cpus: int, configured: int | None = None) -> int:
    """Samples per shard: ``configured`` (rounded up to a multiple of CHUNK), else about SHARDS_PER_CPU shards per
    CPU within [MIN_SHARD, MAX_SHARD]. A multiple of CHUNK, so every shard's chunks are the local pass's chunks."""
    want = configured or math.ceil(n / (SHARDS_PER_CPU * cpus))
    size = math.ceil(want / CHUNK) * CHUNK
    return size if configured else min(max(size, MIN_SHARD), MAX_SHARD)


# ------------------------------------------------------------------------------------- what a worker reads


@dataclass(frozen=True)
class DatasetSource:
    """How a worker builds its own copy of a split: the config's ``module:attr`` reference, imported there with
    the config's folder first on ``sys.path`` (``ref``/``base_dir``), or the dataset object, put once into the
    object store (``obj``, an ObjectRef: from the Python API, where there is no reference to import)."""

    name: str
    n: int
    input_key: str | None
    target_key: str | None
    ref: str | None = None
    base_dir: str | None = None
    obj: Any = None

    def open(self) -> Split:
        """The split, built on this worker (no input cache: only per-sample results leave the worker)."""
        from sanitycheck.engine.config import resolve

        if self.ref is not None:
            base = Path(self.base_dir) if self.base_dir and Path(self.base_dir).is_dir() else None  # else: runtime_env
            obj = resolve(self.ref, f"data.{self.name}", base)
        else:
            import ray

            obj = ray.get(self.obj)
        split = materialize(obj, self.name, max_samples=self.n, memory_mb=0,
                            input_key=self.input_key, target_key=self.target_key)
        if split.n != self.n:
            raise UsageError(f"data.{self.name}: {split.n} samples on a Ray worker but {self.n} on the driver: "
                             "the dataset must be the same wherever it is built")
        return split


def _runs(values: list[Any]) -> list[tuple[Any, int]]:
    """Run-length code: ``[(value, count), ...]`` (a split's shapes and dtypes are nearly always one run)."""
    out: list[tuple[Any, int]] = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + 1)
        else:
            out.append((v, 1))
    return out


def _expand(runs: list[tuple[Any, int]]) -> list[Any]:
    return [v for v, count in runs for _ in range(count)]


@dataclass
class ShardResult:
    """The compact per-sample results of samples ``lo`` to ``hi``: what travels from a worker to the driver."""

    lo: int
    hi: int
    stats: dict[str, np.ndarray]
    target_nonfinite: np.ndarray
    hashes: np.ndarray
    features: np.ndarray | None
    features_kind: str | None
    features_note: str
    targets: np.ndarray | None
    input_shapes: list[tuple[Any, int]]
    input_dtypes: list[tuple[Any, int]]
    target_shapes: list[tuple[Any, int]]
    target_dtypes: list[tuple[Any, int]]
    #: ``node id:pid`` of the worker that read the shard.
    worker: str = ""
    #: Why the shard's targets are None (``DataPass.targets_note``).
    targets_note: str = ""


def _result(acc: _Accumulator, lo: int) -> ShardResult:
    stats = dict(acc.stats)
    for k in ("numel", "nan", "inf"):
        stats[k] = stats[k].astype(np.int64)
    return ShardResult(
        lo=lo, hi=lo + acc.n, stats=stats, target_nonfinite=acc.target_nonfinite, hashes=acc.hashes,
        features=acc.features, features_kind=acc.features_kind, features_note=acc.features_note, targets=acc.targets,
        targets_note=acc.targets_note,
        input_shapes=_runs(acc.input_shapes), input_dtypes=_runs(acc.input_dtypes),
        target_shapes=_runs(acc.target_shapes), target_dtypes=_runs(acc.target_dtypes),
    )


def read_shard(split: Split, lo: int, hi: int) -> ShardResult:
    """Samples ``lo`` to ``hi`` of ``split`` through the local pass's own code (:func:`~sanitycheck.pipeline.data.scan`)."""
    acc = _Accumulator(split, lo, hi, cache=False)
    scan(split, acc, lambda n: None, workers=False)
    return _result(acc, lo)


#: The splits this worker process has built, by source: each Ray worker process builds a split's dataset once and
#: keeps it for the next shards it gets (Ray reuses worker processes across tasks), as a DataLoader worker does.
_OPENED: dict[DatasetSource, Split] = {}


def _where() -> str:
    """This worker's node and process (the pass reports how many of each took part)."""
    import ray

    return f"{ray.get_runtime_context().get_node_id()}:{os.getpid()}"


def _read_shards(batch: dict[str, np.ndarray], sources: tuple[DatasetSource, ...]) -> dict[str, np.ndarray]:
    """The ``map_batches`` function of the map-style splits (Ray tasks, retried if a worker dies): each row of
    ``batch`` is a shard (``split``: its position in ``sources``, ``lo``/``hi``: its samples)."""
    blobs = []
    for k, lo, hi in zip(batch["split"], batch["lo"], batch["hi"]):
        source = sources[int(k)]
        if source not in _OPENED:
            _OPENED[source] = source.open()
        result = read_shard(_OPENED[source], int(lo), int(hi))
        result.worker = _where()
        blobs.append(pickle.dumps(result, protocol=5))
    return {"split": batch["split"], "result": np.array(blobs, dtype=object)}


def _read_rows(batch: dict[str, np.ndarray], name: str, input_key: str | None, target_key: str | None) -> dict[str, np.ndarray]:
    """The ``map_batches`` function of a ``ray.data.Dataset`` split: its own batches, rows as samples."""
    rows = _ListDataset(_batch_rows(batch))
    split = Split(name=name, source=rows, dataset=rows, loader=None, n=len(rows), input_key=input_key,
                  target_key=target_key, memory_mb=0)
    result = read_shard(split, 0, len(rows))
    result.worker = _where()
    return {"n": np.array([len(rows)]), "result": np.array([pickle.dumps(result, protocol=5)], dtype=object)}


def _batch_rows(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """A Ray Data batch (columns) as its rows (dicts), the samples a DataLoader would see."""
    columns = list(batch)
    m = len(batch[columns[0]]) if columns else 0
    return [{c: batch[c][i] for c in columns} for i in range(m)]


# ----------------------------------------------------------------------------------------- the driver


@dataclass
class RayPass:
    """The :attr:`~sanitycheck.pipeline.data.Split.reader` of the map-style splits under the ray engine: one Ray Data
    job reads the shards of every split it serves (Ray tasks; each worker process builds a split's dataset when it
    first gets a shard of it), on the first ``data_pass()`` of any of them; each split keeps its DataPass."""

    sources: dict[str, DatasetSource]
    splits: dict[str, Split]
    shard_size: int | None = None
    #: Filled by the pass: workers, shards, shard size, samples and seconds (the benchmark's throughput figures).
    stats: dict[str, Any] = field(default_factory=dict)

    def __call__(self, split: Split) -> DataPass:
        if split._pass is None:
            self._run()
        return split._pass

    def _run(self) -> None:
        import ray.data

        from sanitycheck.engine.progress import scan_progress

        start = time.perf_counter()
        names = list(self.sources)
        total = sum(self.splits[name].n for name in names)
        cpus = cluster_cpus()
        size = shard_size(total, cpus, self.shard_size)
        items = [{"split": k, "lo": lo, "hi": min(self.splits[name].n, lo + size)}
                 for k, name in enumerate(names) for lo in range(0, self.splits[name].n, size)]
        workers = min(cpus, len(items))
        shards = ray.data.from_items(items, override_num_blocks=len(items))
        out = shards.map_batches(_read_shards, fn_args=(tuple(self.sources[name] for name in names),), batch_size=1,
                                 batch_format="numpy", num_cpus=1)
        accs = {}
        for name in names:
            accs[name] = _Accumulator(self.splits[name])
            _driver_inputs(self.splits[name], accs[name])
        merges = {name: _Merge(accs[name]) for name in names}
        seen: set[str] = set()
        with scan_progress(f"data pass: {' + '.join(names)} (ray, {workers} CPUs)", total) as tick:
            for batch in _unwrap_errors(out.iter_batches(batch_size=None, batch_format="numpy")):
                for k, blob in zip(batch["split"], batch["result"]):
                    r = pickle.loads(blob)
                    seen.add(r.worker)
                    merges[names[int(k)]].add(r)
                    tick(r.hi - r.lo)
        seconds = time.perf_counter() - start
        for name in names:
            merges[name].finish()
            self.splits[name]._pass = accs[name].finish(seconds)
        self.stats.update(cpus=cpus, shards=len(items), shard_size=size, samples=total, seconds=seconds,
                          nodes=len({w.split(":")[0] for w in seen}), workers=len(seen))


@dataclass
class RayRowsPass:
    """The :attr:`~sanitycheck.pipeline.data.Split.reader` of a ``ray.data.Dataset`` split: ``map_batches`` over the
    dataset's own blocks (its batches are the shards), in the dataset's order."""

    stats: dict[str, Any] = field(default_factory=dict)

    def __call__(self, split: Split) -> DataPass:
        import ray.data

        from sanitycheck.engine.progress import scan_progress

        start = time.perf_counter()
        rows: RayRows = split.dataset
        acc = _Accumulator(split)
        acc.inputs_note = "not cached: the ray engine leaves the inputs on the cluster"
        merge = _Merge(acc)
        ctx = ray.data.DataContext.get_current()
        keep, ctx.execution_options.preserve_order = ctx.execution_options.preserve_order, True
        try:
            out = rows.ds.map_batches(_read_rows, fn_args=(split.name, split.input_key, split.target_key),
                                      batch_size=CHUNK, batch_format="numpy", num_cpus=1)
            lo = 0
            with scan_progress(f"data pass: {split.name} (ray)", split.n) as tick:
                for batch in _unwrap_errors(out.iter_batches(batch_size=None, batch_format="numpy")):
                    for blob in batch["result"]:
                        r: ShardResult = pickle.loads(blob)
                        r.lo, r.hi = lo, lo + (r.hi - r.lo)  # in order: positions follow the rows before
                        lo = r.hi
                        merge.add(r)
                        tick(r.hi - r.lo)
        finally:
            ctx.execution_options.preserve_order = keep
        merge.finish()
        self.stats.update(samples=split.n, seconds=time.perf_counter() - start)
        return acc.finish(time.perf_counter() - start)


def _unwrap_errors(batches: Iterable[Any]) -> Iterator[Any]:
    """Ray wraps what a worker raised; a :class:`UsageError` there (a sample that cannot be read, a dataset that
    does not import) is one here too: exit 2 with the worker's message, as with the local engine."""
    try:
        yield from batches
    except UsageError:
        raise
    except Exception as exc:
        cause: BaseException | None = exc
        seen = set()
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if isinstance(cause, UsageError):
                raise type(cause)(str(cause)) from exc
            cause = getattr(cause, "cause", None) or cause.__cause__
        text = str(exc)
        for marker in ("UsageError: ", "ConfigError: "):
            if marker in text:
                raise UsageError(text.rsplit(marker, 1)[1].strip().splitlines()[0]) from exc
        raise


def _driver_inputs(split: Split, acc: _Accumulator) -> None:
    """The input cache on the driver: only a TensorDataset's own tensor, which the driver holds anyway (a view,
    as with the local engine). Other inputs stay on the cluster."""
    source = _tensor_source(split)
    whole = _view(source[0]) if source is not None and source[2] is None else None
    if whole is not None and whole.dtype == cache_dtype(whole.dtype):
        acc.start_inputs(tuple(whole.shape[1:]), whole.dtype, view=whole)
    else:
        acc.inputs_note = "not cached: the ray engine leaves the inputs on the cluster"


class _Merge:
    """Writes every shard's results into ``acc`` at its indices as they arrive (in any order); :meth:`finish`
    settles what depends on index order (which shard's note stands, shapes, targets)."""

    def __init__(self, acc: _Accumulator):
        self.acc = acc
        self.meta: list[ShardResult] = []
        self.targets: list[tuple[int, np.ndarray]] = []
        self.dims: dict[int, int | None] = {}

    def add(self, r: ShardResult) -> None:
        acc, sl = self.acc, slice(r.lo, r.hi)
        for k, v in r.stats.items():
            acc.stats[k][sl] = v
        acc.target_nonfinite[sl] = r.target_nonfinite
        acc.hashes[sl] = r.hashes
        if r.features is not None and r.features_note == "embedded":
            if acc.features is None:
                acc.features = np.zeros((acc.n, r.features.shape[1]), dtype=np.float32)
                acc.features_kind = r.features_kind
            if r.features.shape[1] == acc.features.shape[1]:
                acc.features[sl] = r.features
        if r.targets is not None:
            self.targets.append((r.lo, r.targets))
        self.dims[r.lo] = None if r.features is None else r.features.shape[1]
        r.stats = r.hashes = r.features = r.targets = r.target_nonfinite = None  # keep only the small metadata
        self.meta.append(r)

    def finish(self) -> None:
        acc, meta = self.acc, sorted(self.meta, key=lambda r: r.lo)
        ends = [0] + [r.hi for r in meta]
        if not meta or [(r.lo, r.hi) for r in meta] != list(zip(ends[:-1], ends[1:])) or ends[-1] != acc.n:
            raise RuntimeError(f"ray engine: the shards do not cover samples 0 to {acc.n} exactly once")
        # in index order, the first shard that stopped embedding (or embedded differently) decides, as locally
        for r in meta:
            if r.features_note != "embedded":
                acc.features, acc.features_note = None, r.features_note
                break
            if acc.features is None or r.features_kind != acc.features_kind or self.dims[r.lo] != acc.features.shape[1]:
                acc.features, acc.features_note = None, "not embedded: inputs have different shapes"
                break
        for name in ("input_shapes", "input_dtypes", "target_shapes", "target_dtypes"):
            runs: list[tuple[Any, int]] = []
            for r in meta:
                runs.extend(getattr(r, name))
            setattr(acc, name, _expand(_runs_merge(runs)))
        acc.targets = None
        acc.targets_note = next((r.targets_note for r in meta if r.targets_note), "")
        if len(set(acc.target_shapes)) == 1 and len(self.targets) == len(meta):
            try:
                acc.targets = np.concatenate([t for _, t in sorted(self.targets, key=lambda t: t[0])])
            except (TypeError, ValueError):
                acc.targets = None


def _runs_merge(runs: list[tuple[Any, int]]) -> list[tuple[Any, int]]:
    out: list[tuple[Any, int]] = []
    for v, c in runs:
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + c)
        else:
            out.append((v, c))
    return out


# ---------------------------------------------------------------------------------------------- wiring


def attach(splits: dict[str, Split | None], config: Any) -> None:
    """Make the ray engine read the data pass of each split (called by ``PipelineContext.open`` for engine ray).

    The map-style splits share one job (:class:`RayPass`); a ``ray.data.Dataset`` split maps its own blocks
    (:class:`RayRowsPass`); an IterableDataset (its first samples already read on the driver) keeps the local pass.
    """
    sources: dict[str, DatasetSource] = {}
    mapped: dict[str, Split] = {}
    for name, split in splits.items():
        if split is None or isinstance(split.dataset, _ListDataset):
            continue
        if isinstance(split.dataset, RayRows):
            split.reader = RayRowsPass()
            continue
        ref = getattr(config.data, name)
        if isinstance(ref, str):
            sources[name] = DatasetSource(name, split.n, split.input_key, split.target_key, ref=ref,
                                          base_dir=str(config.base_dir) if config.base_dir else None)
        else:
            sources[name] = DatasetSource(name, split.n, split.input_key, split.target_key, obj=_put(split, name))
        mapped[name] = split
    if sources:
        job = RayPass(sources, mapped, config.engine.shard_size)
        for split in mapped.values():
            split.reader = job


def _put(split: Split, name: str) -> Any:
    """The dataset object into the object store (once; every worker reads it from there)."""
    import ray

    try:
        return ray.put(split.dataset)
    except Exception as exc:
        raise UsageError(
            f"data.{name}: the dataset object cannot be sent to the Ray workers ({type(exc).__name__}: {exc}); "
            "name it in the config as 'module:attr' so that each worker imports and builds its own") from exc


__all__ = ["RayPass", "RayRows", "RayRowsPass", "DatasetSource", "ShardResult", "attach", "connect", "read_shard", "require_ray",
           "shard_size", "INSTALL_HINT"]
