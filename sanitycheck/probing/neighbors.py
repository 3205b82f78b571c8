"""k-nearest-neighbour search on embeddings, on FAISS, with memory bounded whatever the dataset size.

``knn(queries, base, k)`` returns the Euclidean distances and indices of each query's ``k`` nearest rows of
``base``. How it searches:

- **CPU, small problems** (up to :data:`BRUTE_PAIRS` query-base pairs, and no index of the base built yet): exact
  search, ``faiss.knn`` (BLAS-blocked brute force: one matrix product and a top-k per block; FAISS keeps the
  blocks bounded, the base is not copied).
- **CPU, large problems**, and any query set against a base whose index is built: an inverted-file index (FAISS ``IndexIVFScalarQuantizer``, 8 bits per value): the base
  is clustered by k-means into about :data:`CELLS_PER_SQRT` ``sqrt(n)`` cells, and each query is compared only
  with the members of its :data:`NPROBE` nearest cells, on 8-bit codes (a quarter of the memory of float32 and
  of the bytes scanned); the neighbours found are then re-ranked by their exact distances, which is what is
  returned. What it gives up is exactness far from the query, which is where no near duplicate lives: a copy of
  a sample is in the same or a neighbouring cell. Seeded k-means, so results are reproducible. Rows of more than
  :data:`PCA_DIMS` dimensions whose first PCA_DIMS principal components hold :data:`PCA_VARIANCE` of the variance
  (image thumbnails do) are indexed on those components (FAISS ``PCAMatrix``), and :data:`OVERFETCH` times as
  many neighbours are fetched there before the exact re-ranking: a projection never moves two rows apart, so a
  near copy stays near, and the cells are scanned at a third of the cost.
- **CUDA** (``device`` a GPU): exact search on the GPU, torch matmul + top-k over blocks of queries.

:class:`Index` is a built index of one base: :func:`split_neighbors` builds it once per split and every other
query set (validation against train, shifted looks) searches through it. Searches and index builds report
progress (:func:`sanitycheck.engine.progress.scan_progress`, counted in queries and base rows). FAISS's threads
follow the run's thread policy (:mod:`sanitycheck.engine.threads`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Above this many query-base pairs, search through an IVF index instead of exact search. Measured on 2 cores
#: (docs/benchmarks-speed.md): exact search costs 2-4 ns per pair (192 dims); an index of 12k rows is built and
#: searched by 10k queries in half the time exact search takes, of 50k rows in a tenth.
BRUTE_PAIRS = 5e7
#: Cells each query visits in the IVF index.
NPROBE = 8
#: Rows wider than this are indexed on this many principal components when they hold PCA_VARIANCE of the
#: variance, fetching OVERFETCH times the neighbours asked for, re-ranked by exact distance. Measured on the 50k
#: CIFAR-sized training thumbnails (192 dims, 97% of the variance in 64; 2 cores, docs/benchmarks-speed.md): the
#: index built in 0.27 s instead of 0.45, its 50k rows searched for 10 neighbours in 0.52 s instead of 0.83, the
#: validation images' 10 nearest found as often (0.817 of the exact ones against 0.816). Rows whose
#: variance is spread over many directions are not projected: on 192-dim Gaussian clusters (69% in 64) the
#: projection found 0.69 of the exact 5 nearest where the full rows find 0.99.
PCA_DIMS = 64
PCA_VARIANCE = 0.95
OVERFETCH = 2
#: The index has about this many cells per sqrt(n) base rows (at most :data:`MAX_CELLS`).
CELLS_PER_SQRT = 2.0
MAX_CELLS = 8192
#: k-means of the index: iterations, and rows sampled per cell to train on (FAISS's own subsampling, seeded).
KMEANS_ITERATIONS = 10
KMEANS_POINTS_PER_CELL = 64
#: Query-base pairs per call of exact search (sets how often progress is reported; FAISS blocks its own work).
BLOCK = 2**25
#: Queries per call of an index search.
QUERY_BLOCK = 16384
#: Distances computed at once by the exact search on a GPU (4 bytes each).
GPU_BLOCK = 2**27


def _faiss() -> Any:
    from sanitycheck.engine.faiss_loader import load_faiss
    from sanitycheck.engine.threads import current_threads

    faiss = load_faiss()
    faiss.omp_set_num_threads(current_threads())
    return faiss


def _f32(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


class Index:
    """An inverted-file (IVF) index of one base: FAISS ``IndexIVFScalarQuantizer`` (8-bit codes), k-means cells,
    :data:`NPROBE` probed, exact distances to what it finds.

    ``base`` is ``(n, d)`` float32; ``seed`` seeds the k-means; ``label`` names the build in the progress display
    (``"<label>: index"``, counted in base rows).
    """

    def __init__(self, base: Any, seed: int = 0, label: str = "k-NN search"):
        from sanitycheck.engine.progress import scan_progress

        faiss = _faiss()
        self.base = b = _f32(base)
        n, d = b.shape
        self.n = n
        self.cells = int(min(MAX_CELLS, n, max(1, round(CELLS_PER_SQRT * math.sqrt(n)))))
        projection = _projection(faiss, b) if d > PCA_DIMS else None
        dims = d if projection is None else PCA_DIMS
        self._quantizer = faiss.IndexFlatL2(dims)
        ivf = faiss.IndexIVFScalarQuantizer(self._quantizer, dims, self.cells, faiss.ScalarQuantizer.QT_8bit)
        self.overfetch = 1 if projection is None else OVERFETCH
        index = self.index = ivf if projection is None else faiss.IndexPreTransform(projection, ivf)
        cp = ivf.cp
        cp.seed, cp.niter = int(seed) % 2**31, KMEANS_ITERATIONS
        cp.min_points_per_centroid = 1  # no "please provide at least ..." warning on stderr for small bases
        cp.max_points_per_centroid = KMEANS_POINTS_PER_CELL
        with scan_progress(f"{label}: index", n) as tick:
            index.train(b)
            for lo in range(0, n, QUERY_BLOCK):
                index.add(b[lo:lo + QUERY_BLOCK])
                tick(min(n, lo + QUERY_BLOCK) - lo)
        ivf.nprobe = min(NPROBE, self.cells)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact squared distances and ids ``(m, k)`` of the ``k`` nearest base rows found through the index
        (found on the 8-bit codes, then re-ranked by exact distance; ``-1`` where fewer were found)."""
        faiss = _faiss()
        q = np.ascontiguousarray(q, dtype=np.float32)
        _, ids = self.index.search(q, max(k, min(self.n, k * self.overfetch)))
        # exact distances to what was found, in FAISS (fvec_L2sqr_by_idx: 30x numpy's gather + einsum)
        safe = np.ascontiguousarray(np.maximum(ids, 0))
        d2 = np.empty(ids.shape, dtype=np.float32)
        faiss.fvec_L2sqr_by_idx(faiss.swig_ptr(d2), faiss.swig_ptr(q), faiss.swig_ptr(self.base), faiss.swig_ptr(safe),
                                q.shape[1], q.shape[0], ids.shape[1])
        d2[ids < 0] = np.inf
        order = np.argsort(d2, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d2, order, 1), np.take_along_axis(ids, order, 1)


def _projection(faiss: Any, base: np.ndarray) -> Any:
    """A FAISS ``PCAMatrix`` onto PCA_DIMS components, trained on ``base`` (FAISS subsamples large ones with a
    fixed seed), when those components hold PCA_VARIANCE of its variance; else None."""
    pca = faiss.PCAMatrix(base.shape[1], PCA_DIMS)
    pca.train(base)
    variance = faiss.vector_to_array(pca.eigenvalues)
    return pca if variance[:PCA_DIMS].sum() >= PCA_VARIANCE * variance.sum() else None


def knn(queries: Any, base: Any, k: int, *, exclude_self: bool = False, seed: int = 0,
        device: Any = None, exact: bool | None = None, index: Index | None = None,
        label: str = "k-NN search") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` for every row of ``queries``: ``(distances (m, k), indices (m, k))``.

    Distances are Euclidean, ascending. ``exclude_self``: queries are the rows of base themselves (same
    order), and row ``i`` is not its own neighbour. When base has fewer than ``k`` rows the missing
    columns are ``inf`` / ``-1``. ``exact`` forces (True) or forbids (False) exact search; by default exact
    search is used up to :data:`BRUTE_PAIRS` pairs. ``index``: a prebuilt :class:`Index` of this very ``base``
    (searching several query sets against one base then clusters it once; ``base`` may then be None), searched
    by default whatever the number of queries.
    ``seed`` seeds an index built here. ``device``: a CUDA device searches exactly there (torch). ``label``: how
    the search is named in the progress display (counts queries).
    """
    from sanitycheck.engine.progress import scan_progress

    q = _f32(queries)
    b = index.base if index is not None else _f32(base)
    m, n = q.shape[0], b.shape[0]
    dist = np.full((m, k), np.inf, dtype=np.float32)
    idx = np.full((m, k), -1, dtype=np.int64)
    if m == 0 or n == 0 or k == 0:
        return dist, idx
    kk = min(n, k + (1 if exclude_self else 0))  # one more: the query itself is dropped from its own results
    if _gpu(device):
        rows, search = max(1, GPU_BLOCK // n), lambda part: _torch_search(part, b, kk, device)
    elif exact is False or (exact is None and (index is not None or m * n > BRUTE_PAIRS)):
        # an index already built is searched whatever the query count: a query costs a few cells of it against
        # the whole base by exact search (500 queries into 50k rows: 4 ms against 0.2 s)
        index = index if index is not None else Index(b, seed, label=label)
        rows, search = QUERY_BLOCK, lambda part: index.search(part, kk)
    else:
        faiss = _faiss()
        rows, search = max(1, BLOCK // n), lambda part: faiss.knn(part, b, kk)
    with scan_progress(label, m) as tick:
        for lo in range(0, m, rows):  # each block's results go straight into the output: no full-size temporaries
            d2, i2 = search(q[lo:lo + rows])
            d2 = np.where(i2 >= 0, np.maximum(d2, 0.0), np.inf).astype(np.float32, copy=False)
            if exclude_self:
                d2, i2 = _drop_self(d2, i2, lo)
            width = min(k, d2.shape[1])
            dist[lo:lo + len(d2), :width], idx[lo:lo + len(d2), :width] = np.sqrt(d2[:, :width]), i2[:, :width]
            tick(len(d2))
    return dist, idx


def _gpu(device: Any) -> bool:
    """Whether ``device`` is a GPU (its search runs there, with torch)."""
    return device is not None and str(getattr(device, "type", device)).startswith("cuda")


def _drop_self(d2: np.ndarray, i2: np.ndarray, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Remove query ``r``'s own row from its results (query ``r`` of this block is base row ``offset + r``; else
    its farthest column: the query tied at distance 0 with more rows than were asked for). One column fewer."""
    own = i2 == (offset + np.arange(i2.shape[0]))[:, None]
    own[~own.any(1), -1] = True
    keep = ~own
    width = i2.shape[1] - 1
    if width == 0:  # a base of one row: nothing is left besides the query itself
        return d2[:, :0], i2[:, :0]
    return d2[keep].reshape(-1, width), i2[keep].reshape(-1, width)


def _torch_search(q: np.ndarray, b: np.ndarray, k: int, device: Any) -> tuple[np.ndarray, np.ndarray]:
    """Exact search of one block of queries with torch on ``device`` (a GPU): squared distances from norms and
    one matmul, top-k on the device. The base is moved to the device once per base (cached by identity)."""
    import torch

    global _device_base
    with torch.no_grad():
        if _device_base is None or _device_base[0] is not b or _device_base[1] != device:
            bt = torch.from_numpy(b).to(device)
            _device_base = (b, device, bt, (bt * bt).sum(1))
        bt, bn = _device_base[2], _device_base[3]
        qt = torch.from_numpy(q).to(device)
        # full float32 products: with TF32 on (nanoGPT's train.py turns it on) a near copy's distance, ~1e-4, is noise
        precision = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            d = ((qt * qt).sum(1)[:, None] + bn[None, :]).sub_(2.0 * (qt @ bt.T)).clamp_min_(0.0)
        finally:
            torch.set_float32_matmul_precision(precision)
        v, i = d.topk(k, dim=1, largest=False)
        return v.cpu().numpy(), i.cpu().numpy()


#: The base last moved to a GPU: (array, device, tensor, squared norms); one search's blocks share it.
_device_base: tuple | None = None


class SplitNeighbors:
    """Each distinct input of a split and its ``k`` nearest distinct neighbours in the same split.

    Exact duplicates (equal content hash) are collapsed first, so a sample copied ten times does not
    hide its real neighbourhood behind its own copies. ``unique[u]`` is the first dataset index of distinct
    input ``u``, ``inverse[i]`` the distinct input of dataset index ``i``; ``dist[u]`` / ``idx[u]`` its
    neighbours (distinct-input ids), nearest first.
    """

    def __init__(self, unique: np.ndarray, inverse: np.ndarray, dist: np.ndarray, idx: np.ndarray, seconds: float,
                 base: np.ndarray, index: Index | None):
        self.unique, self.inverse, self.dist, self.idx, self.seconds = unique, inverse, dist, idx, seconds
        #: The embeddings of the distinct inputs (rows match ``unique``), and their index when one was built:
        #: pass both to :func:`knn` to search other queries against this split without re-clustering it.
        self.base, self.index = base, index

    def radius(self, k: int) -> np.ndarray:
        """Distance of every distinct input to its ``k``-th nearest distinct neighbour (its neighbourhood scale).

        With fewer than ``k`` neighbours available the farthest one is used.
        """
        return kth_distance(self.dist, k)

    def label_votes(self, labels: np.ndarray, samples: np.ndarray, classes: int) -> np.ndarray:
        """``(len(samples), classes)``: for each dataset index in ``samples``, how many of its distinct neighbours
        carry each label, counting only neighbours (by their first dataset index) that are themselves in
        ``samples`` (leave-one-out: a sample is not its own neighbour). Shared by ``influence`` (neighbour label
        frequencies) and ``label-shuffle`` (do the inputs predict the labels?)."""
        member_of = np.zeros(len(labels), dtype=bool)
        member_of[samples] = True
        cell = self.idx[self.inverse[samples]]
        member = np.where(cell >= 0, self.unique[np.maximum(cell, 0)], 0)
        return vote_counts(np.where((cell >= 0) & member_of[member], labels[member], -1), classes)


def vote_counts(voters: np.ndarray, classes: int) -> np.ndarray:
    """``(m, classes)`` float32: for each row of ``voters`` (the labels of a sample's neighbours, -1 for none), how
    many neighbours carry each label."""
    votes = np.zeros((len(voters), classes), dtype=np.float32)
    for j in range(voters.shape[1] if voters.ndim == 2 else 0):
        ok = voters[:, j] >= 0
        np.add.at(votes, (np.flatnonzero(ok), voters[ok, j]), 1.0)
    return votes


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

    Used by ``leakage`` (in-split near duplicates, each training sample's neighbourhood scale), ``outliers``
    (k-NN distance score) and ``influence`` (neighbour labels). On a CPU, a split large enough that its own
    search goes through an index keeps that :class:`Index` for every other query set searched against it.
    """
    import time

    from sanitycheck.probing.embedding import embedding, hashes

    def compute() -> SplitNeighbors:
        start = time.perf_counter()
        emb = embedding(ctx, split)
        unique, inverse = unique_inputs(hashes(ctx, split))
        # all distinct (unique is 0..n-1): the embedding itself, not a copy of it (n x d float32 saved)
        base = np.ascontiguousarray(emb if len(unique) == len(emb) else emb[unique], dtype=np.float32)
        device, seed, label = knn_device(ctx), ctx.derived_seed("neighbors"), f"neighbours in {split.name}"
        index = Index(base, seed, label=label) if device is None and len(unique) ** 2 > BRUTE_PAIRS else None
        dist, idx = knn(base, base, K_SHARED, exclude_self=True, index=index, device=device, seed=seed, label=label)
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
    """Search on the run's device when it is a GPU (much faster there), else on the CPU (FAISS)."""
    device = getattr(ctx, "device", None)
    return device if device is not None and getattr(device, "type", "cpu") == "cuda" else None


__all__ = ["knn", "Index", "kth_distance", "split_neighbors", "SplitNeighbors", "unique_inputs", "knn_device",
           "vote_counts", "BRUTE_PAIRS", "NPROBE", "K_SHARED"]
