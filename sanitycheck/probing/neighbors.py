"""Chunked k-nearest-neighbour search on embeddings, with memory bounded whatever the dataset size.

``knn(queries, base, k)`` returns the Euclidean distances and indices of each query's ``k`` nearest rows
of ``base``. Small problems are solved exactly by brute force (torch matmul + top-k over row chunks).
Large ones (more than :data:`BRUTE_PAIRS` query-base pairs) use an inverted-file index (IVF, as in FAISS):
the base is clustered by k-means into about 2 sqrt(n) cells, and each query is compared only with the members
of its :data:`NPROBE` nearest cells. That cuts the work from ``m * n`` to about ``m * NPROBE * sqrt(n) / 2``
distances; what it gives up is exactness far from the query, which is where no near duplicate lives: a copy
of a sample is in the same or a neighbouring cell. Every step is seeded, so results are reproducible.

Measured (benchmarks/leakage_scale.py): a 10k x 50k brute-force join on 2 CPU cores spends most of its
time writing the distance matrix, which is why the index exists.

Memory: besides the ``(m, k)`` results, a search holds fixed-size working blocks: :data:`BLOCK` distances at a
time, and through the index one block of queries whose candidate buffers take :data:`CANDIDATE_BYTES`; after
each block the heap's free memory goes back to the OS (:func:`sanitycheck.pipeline.memory.trim`: without it the search's
many freed temporaries fragmented the heap by up to 1.4 GB at 1M queries). Searches and index builds report their
progress (:func:`sanitycheck.engine.progress.scan_progress`, counted in queries and base rows).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import numpy as np

#: Above this many query-base pairs, search through the IVF index instead of brute force.
BRUTE_PAIRS = 1.2e8
#: Cells each query visits in the IVF index.
NPROBE = 6
#: Bytes of candidate buffers (distances and indices, ``probes x k`` per query) of one block of queries searched
#: through the index: the block size follows from it, so the memory does not grow with ``m`` or ``k``.
CANDIDATE_BYTES = 2**25
#: The index has about this many cells per sqrt(n) base rows.
CELLS_PER_SQRT = 2.0
#: Distance-matrix entries computed at once (bounds the working memory: 4 bytes each). Kept below glibc's
#: 32 MiB mmap threshold: measured, 32 MiB blocks grew the resident memory by 0.5 GB on a 200k x 894
#: assignment (freed heap blocks were not reused), 8 MiB blocks by nothing.
BLOCK = 2**21


def knn(queries: np.ndarray, base: np.ndarray, k: int, *, exclude_self: bool = False, seed: int = 0,
        device: Any = None, exact: bool | None = None, index: IVFIndex | None = None,
        label: str = "k-NN search") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` for every row of ``queries``: ``(distances (m, k), indices (m, k))``.

    Distances are Euclidean, ascending. ``exclude_self``: queries are the rows of base themselves (same
    order), and row ``i`` is not its own neighbour. When base has fewer than ``k`` rows the missing
    columns are ``inf`` / ``-1``. ``exact`` forces (True) or forbids (False) brute force; by default brute
    force is used up to :data:`BRUTE_PAIRS` pairs. ``index``: a prebuilt :class:`IVFIndex` of this very
    ``base`` (searching several query sets against one base then clusters it once). ``label``: how the
    search is named in the progress display (:func:`sanitycheck.engine.progress.scan_progress`; counts queries).
    """
    import torch

    from sanitycheck.engine.progress import scan_progress

    q = torch.as_tensor(np.ascontiguousarray(queries, dtype=np.float32), device=device)
    b = index.b if index is not None else torch.as_tensor(np.ascontiguousarray(base, dtype=np.float32), device=device)
    q = q.to(b.device)
    m, n = q.shape[0], b.shape[0]
    dist = torch.full((m, k), math.inf, device=q.device)
    idx = torch.full((m, k), -1, dtype=torch.long, device=q.device)
    if m == 0 or n == 0 or k == 0:
        return dist.cpu().numpy(), idx.cpu().numpy()
    brute = exact if exact is not None else m * n <= BRUTE_PAIRS
    with torch.no_grad():
        if brute:
            with scan_progress(label, m) as tick:
                _brute(q, b, k, exclude_self, dist, idx, tick)
        else:
            index = index if index is not None else IVFIndex(b, seed, label=label)
            with single_thread(q.device), scan_progress(label, m) as tick:
                _ivf(q, index, k, exclude_self, dist, idx, tick)
    return dist.sqrt_().cpu().numpy(), idx.cpu().numpy()


@contextmanager
def single_thread(device: Any):
    """The index works on many small blocks: on a CPU, one thread each beats waking a pool (measured: 4x faster
    on a loaded 2-core machine, no slower on an idle one)."""
    import torch

    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sq_norms(x: Any) -> Any:
    """``(x * x).sum(1)``, the squared norm of each row, computed in blocks of rows: the product is never
    materialized whole (it is as large as ``x``: 256 MB at 1M rows of 64 dims). Each row's sum is the same."""
    import torch

    n = x.shape[0]
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    rows = max(1, BLOCK // max(1, x.shape[1]))
    for lo in range(0, n, rows):
        part = x[lo:lo + rows]
        torch.sum(part * part, 1, out=out[lo:lo + rows])
    return out


class _Distances:
    """Squared Euclidean distances between rows, from norms and one matmul (clamped at 0), written into two
    buffers of :data:`BLOCK` floats reused by every block of a search.

    Allocating the blocks anew each time (8 MiB temporaries, freed between small long-lived results) fragmented
    the heap: measured at 1M rows, assigning them to their cells grew the resident memory by 0.9 GB. The
    arithmetic is the same as ``(qn + bn) - 2 (q @ b.T)``, step for step, so the results are too.
    """

    def __init__(self, device: Any):
        import torch

        self.prod = torch.empty(BLOCK, device=device)
        self.sums = torch.empty(BLOCK, device=device)

    def __call__(self, q: Any, b: Any, qn: Any, bn: Any) -> Any:
        import torch

        r, c = q.shape[0], b.shape[0]
        if r * c > BLOCK:  # a single row against more than BLOCK base rows: no buffer, plain temporaries
            return (qn[:, None] + bn[None, :] - 2.0 * (q @ b.T)).clamp_min_(0.0)
        prod = torch.mm(q, b.T, out=self.prod[: r * c].view(r, c))
        sums = torch.add(qn[:, None], bn[None, :], out=self.sums[: r * c].view(r, c))
        return sums.sub_(prod.mul_(2.0)).clamp_min_(0.0)


def _brute(q: Any, b: Any, k: int, exclude_self: bool, dist: Any, idx: Any, tick: Any) -> None:
    import torch

    qn, bn = _sq_norms(q), _sq_norms(b)
    rows = max(1, BLOCK // b.shape[0])
    kk = min(k, b.shape[0])
    sqdist = _Distances(q.device)
    for lo in range(0, q.shape[0], rows):
        hi = min(q.shape[0], lo + rows)
        d = sqdist(q[lo:hi], b, qn[lo:hi], bn)
        if exclude_self:
            r = torch.arange(lo, hi, device=q.device)
            d[r - lo, r] = math.inf
        v, i = d.topk(kk, dim=1, largest=False)
        dist[lo:hi, :kk], idx[lo:hi, :kk] = v, i
        tick(hi - lo)


def kmeans(x: Any, cells: int, seed: int, iterations: int = 8) -> Any:
    """Lloyd's k-means on (a seeded sample of) the rows of ``x``: the ``(cells, d)`` centroids."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    sample = x[torch.randperm(n, generator=g)[: min(n, 25 * cells)].to(x.device)]
    centroids = sample[torch.randperm(sample.shape[0], generator=g)[:cells].to(x.device)].clone()
    sn = (sample * sample).sum(1)
    for _ in range(iterations):
        assign = _nearest(sample, centroids, sn)
        sums = torch.zeros_like(centroids).index_add_(0, assign, sample)
        counts = torch.bincount(assign, minlength=cells).to(sample.dtype)
        filled = counts > 0  # an empty cell keeps its centroid
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


def _nearest(x: Any, centroids: Any, xn: Any | None = None, probes: int = 1, tick: Any = None,
             sqdist: _Distances | None = None) -> Any:
    """Index of the nearest centroid of each row (or the ``probes`` nearest, shape (n, probes)); ``tick(rows)``
    after each block of rows when given."""
    import torch

    xn = _sq_norms(x) if xn is None else xn
    cn = (centroids * centroids).sum(1)
    rows = max(1, BLOCK // centroids.shape[0])
    sqdist = sqdist or _Distances(x.device)
    n = x.shape[0]
    out = torch.empty((n,) if probes == 1 else (n, probes), dtype=torch.long, device=x.device)
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        d = sqdist(x[lo:hi], centroids, xn[lo:hi], cn)
        out[lo:hi] = d.argmin(1) if probes == 1 else d.topk(probes, dim=1, largest=False).indices
        if tick is not None:
            tick(hi - lo)
    return out


class IVFIndex:
    """An inverted-file index of a base: k-means cells (about 2 sqrt(n)) and each cell's member rows."""

    def __init__(self, base: Any, seed: int = 0, label: str = "k-NN search"):
        import torch

        from sanitycheck.pipeline.memory import trim
        from sanitycheck.engine.progress import scan_progress

        b = self.b = torch.as_tensor(base) if not isinstance(base, torch.Tensor) else base
        n = b.shape[0]
        self.cells = int(min(8192, max(8, round(CELLS_PER_SQRT * math.sqrt(n)))))
        with torch.no_grad(), single_thread(b.device):
            self.centroids = kmeans(b, self.cells, seed)
            self.bn = _sq_norms(b)
            with scan_progress(f"{label}: index", n) as tick:
                self.member_cell = _nearest(b, self.centroids, self.bn, tick=tick)
            self.members_order = torch.argsort(self.member_cell)
            sorted_cells = self.member_cell[self.members_order]
            self.member_bounds = torch.searchsorted(sorted_cells, torch.arange(self.cells + 1, device=b.device)).tolist()
            self.rank_in_cell = torch.empty(n, dtype=torch.long, device=b.device)  # position of each row in its cell
            self.rank_in_cell[self.members_order] = torch.arange(n, device=b.device) - member_bounds_tensor(
                self.member_bounds, sorted_cells)
        trim()


def _ivf(q: Any, index: IVFIndex, k: int, exclude_self: bool, dist: Any, idx: Any, tick: Any) -> None:
    from sanitycheck.pipeline.memory import trim

    m = q.shape[0]
    probes = min(NPROBE, index.cells)
    qn = _sq_norms(q)
    # queries in blocks, so the candidate buffers stay bounded (CANDIDATE_BYTES) whatever m and k are; a block is a
    # whole number of _nearest's own row blocks, so each query's cells are the same whatever the block size
    rows = max(1, BLOCK // index.centroids.shape[0])
    block = max(1, CANDIDATE_BYTES // (probes * k * 12) // rows) * rows
    sqdist = _Distances(q.device)
    for start in range(0, m, block):
        stop = min(m, start + block)
        probe_cell = _nearest(q[start:stop], index.centroids, qn[start:stop], probes, sqdist=sqdist)  # (block, probes)
        _ivf_block(q[start:stop], qn[start:stop], probe_cell, index.b, index.bn, k, probes, index.cells,
                   index.members_order, index.member_bounds, index.member_cell, index.rank_in_cell, exclude_self,
                   start, dist[start:stop], idx[start:stop], tick, sqdist)
        trim()  # what the block's many temporaries freed goes back to the OS instead of fragmenting the heap


def _ivf_block(q: Any, qn: Any, probe_cell: Any, b: Any, bn: Any, k: int, probes: int, cells: int,
               members_order: Any, member_bounds: list[int], member_cell: Any, rank_in_cell: Any,
               exclude_self: bool, offset: int, dist: Any, idx: Any, tick: Any, sqdist: _Distances) -> None:
    """Search one block of queries (rows ``offset`` ... of the full query set) through the index; ``tick`` counts
    queries (the (query, cell) pairs searched so far, divided by ``probes``)."""
    import torch

    m = q.shape[0]
    flat_cell = probe_cell.reshape(-1)
    pair_order = torch.argsort(flat_cell)
    pair_bounds = torch.searchsorted(flat_cell[pair_order], torch.arange(cells + 1, device=q.device)).tolist()
    cand_d = torch.full((m * probes, k), math.inf, device=q.device)
    cand_i = torch.full((m * probes, k), -1, dtype=torch.long, device=q.device)
    pairs_done = ticked = 0
    for c in range(cells):
        lo_m, hi_m, lo_p, hi_p = member_bounds[c], member_bounds[c + 1], pair_bounds[c], pair_bounds[c + 1]
        if hi_m == lo_m or hi_p == lo_p:
            continue
        members = members_order[lo_m:hi_m]
        kk = min(k, hi_m - lo_m)
        bc, bcn = b[members], bn[members]
        rows = max(1, BLOCK // (hi_m - lo_m))
        for lo in range(lo_p, hi_p, rows):
            p = pair_order[lo:min(hi_p, lo + rows)]  # (query, probe slot) pairs, flattened as query * probes + slot
            qi = p // probes
            d = sqdist(q[qi], bc, qn[qi], bcn)
            if exclude_self:  # a query that is a base row of this cell is not its own neighbour
                own = torch.nonzero(member_cell[qi + offset] == c).squeeze(1)
                d[own, rank_in_cell[qi[own] + offset]] = math.inf
            v, i = d.topk(kk, dim=1, largest=False)
            cand_d[p, :kk] = v
            cand_i[p, :kk] = members[i]
        pairs_done += hi_p - lo_p
        tick(pairs_done // probes - ticked)
        ticked = pairs_done // probes
    tick(m - ticked)
    v, i = cand_d.reshape(m, -1).topk(k, dim=1, largest=False)
    dist.copy_(v)
    idx.copy_(torch.where(torch.isfinite(v), cand_i.reshape(m, -1).gather(1, i), torch.full_like(i, -1)))


def member_bounds_tensor(bounds: list[int], sorted_cells: Any) -> Any:
    """For rows sorted by cell, the start offset of each row's cell (so offset - start = rank in the cell)."""
    import torch

    starts = torch.tensor(bounds[:-1], dtype=torch.long, device=sorted_cells.device)
    return starts[sorted_cells]


class SplitNeighbors:
    """Each distinct input of a split and its ``k`` nearest distinct neighbours in the same split.

    Exact duplicates (equal content hash) are collapsed first, so a sample copied ten times does not
    hide its real neighbourhood behind its own copies. ``unique[u]`` is the first dataset index of distinct
    input ``u``, ``inverse[i]`` the distinct input of dataset index ``i``; ``dist[u]`` / ``idx[u]`` its
    neighbours (distinct-input ids), nearest first.
    """

    def __init__(self, unique: np.ndarray, inverse: np.ndarray, dist: np.ndarray, idx: np.ndarray, seconds: float,
                 base: np.ndarray, index: IVFIndex | None):
        self.unique, self.inverse, self.dist, self.idx, self.seconds = unique, inverse, dist, idx, seconds
        #: The embeddings of the distinct inputs (rows match ``unique``), and their index when one was built:
        #: pass both to :func:`knn` to search other queries against this split without re-clustering it.
        self.base, self.index = base, index

    def radius(self, k: int) -> np.ndarray:
        """Distance of every distinct input to its ``k``-th nearest distinct neighbour (its neighbourhood scale).

        With fewer than ``k`` neighbours available the farthest one is used.
        """
        return kth_distance(self.dist, k)


def kth_distance(dist: np.ndarray, k: int) -> np.ndarray:
    """Per row of a :func:`knn` distance matrix, the distance to the ``k``-th neighbour (the farthest found when
    fewer than ``k`` exist; ``inf`` when none)."""
    d = dist[:, : max(1, min(k, dist.shape[1]))]
    farthest = np.where(np.isfinite(d), d, -np.inf).max(1)
    return np.where(np.isfinite(farthest), farthest, np.inf)


#: Neighbours computed per distinct input by :func:`split_neighbors` (checks use up to this many).
K_SHARED = 10


def split_neighbors(ctx: Any, split: Any) -> SplitNeighbors:
    """The :class:`SplitNeighbors` of ``split`` on the shared embedding, computed once per run (``ctx.shared``).

    Used by ``leakage`` (in-split near duplicates, each training sample's neighbourhood scale) and
    ``outliers`` (k-NN distance score).
    """
    import time

    from sanitycheck.probing.embedding import embedding, hashes

    def compute() -> SplitNeighbors:
        start = time.perf_counter()
        import torch

        emb = embedding(ctx, split)
        unique, inverse = unique_inputs(hashes(ctx, split))
        # all distinct (unique is 0..n-1): the embedding itself, not a copy of it (n x d float32 saved)
        base = np.ascontiguousarray(emb if len(unique) == len(emb) else emb[unique], dtype=np.float32)
        index = None
        label = f"neighbours in {split.name}"
        if len(unique) ** 2 > BRUTE_PAIRS / 4:  # large enough that other query sets will use an index too
            index = IVFIndex(torch.as_tensor(base, device=knn_device(ctx)), ctx.derived_seed("neighbors"), label=label)
        dist, idx = knn(base, base, K_SHARED, exclude_self=True, index=index, device=knn_device(ctx),
                        seed=ctx.derived_seed("neighbors"), label=label)
        return SplitNeighbors(unique, inverse, dist, idx, time.perf_counter() - start, base, index)

    return ctx.shared(f"neighbors:{split.name}", compute)


def unique_inputs(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(unique, inverse)`` for content hashes: the first index of each distinct hash, and each index's group."""
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # distinct inputs in dataset order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.reshape(-1)]


def knn_device(ctx: Any) -> Any:
    """Search on the run's device when it is a GPU (much faster there), else on the CPU."""
    device = getattr(ctx, "device", None)
    return device if device is not None and getattr(device, "type", "cpu") == "cuda" else None


__all__ = ["knn", "kmeans", "IVFIndex", "kth_distance", "split_neighbors", "SplitNeighbors", "unique_inputs", "knn_device", "single_thread", "BRUTE_PAIRS", "NPROBE", "K_SHARED"]
