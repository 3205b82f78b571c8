"""Per-chunk features the one data pass computes for every sample: an exact content hash and raw pixel features.

They live with the data pass (not with the embedding built on them) because the pass computes them while it
streams over a split, chunk by chunk. :mod:`sanitycheck.probing.embedding` turns the raw features into the shared
embedding; :mod:`sanitycheck.probing.alignment` reuses :func:`pooling_weights` for shifted and cropped windows.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

#: Side of the grid images are averaged down to.
GRID = 8
#: Non-image inputs with more values than this are randomly projected to this many dimensions.
MAX_VECTOR_DIM = 128
#: The largest embedding: 3 channels x 8 x 8.
MAX_DIM = 3 * GRID * GRID


def layout(shape: tuple[int, ...]) -> str:
    """``'chw'``, ``'hw'``, ``'hwc'`` for images (both sides >= 8), else ``'vector'``."""
    if len(shape) == 2 and min(shape) >= GRID:
        return "hw"
    if len(shape) == 3:
        if shape[0] in (1, 3, 4) and min(shape[1:]) >= GRID:
            return "chw"
        if shape[2] in (1, 3, 4) and min(shape[:2]) >= GRID:
            return "hwc"
    return "vector"


def content_hashes(chunk: np.ndarray, finite: bool = False) -> np.ndarray:
    """Exact content hash (uint64) of each row of ``chunk`` (samples of one shape), independent of dtype/strides.
    ``finite``: the caller knows there is no NaN (the data pass counted them), and no pass looks for one."""
    import xxhash

    m = chunk.shape[0]
    x = np.ascontiguousarray(chunk, dtype=np.float32).reshape(m, -1) + np.float32(0.0)  # -0.0 -> 0.0
    if not finite and np.isnan(x).any():
        x = np.where(np.isnan(x), np.float32(np.nan), x)  # one NaN bit pattern
    prefix = repr(tuple(chunk.shape[1:])).encode()
    out = np.empty(m, dtype=np.uint64)
    # XXH3-64 (the xxhash package): it finds equal content, not an adversary. Per 12 KB row (a 3x32x32 float32
    # image) 1.1 us against SHA-1's 8.3 us with the CPU's SHA extensions and about 15 us without them; per 3x224x224
    # row 43 us against 372 us (docs/dependencies.md)
    for i in range(m):
        h = xxhash.xxh3_64(prefix)
        h.update(x[i].data)
        out[i] = h.intdigest()
    return out


def raw_features(chunk: np.ndarray, finite: bool = False) -> tuple[np.ndarray, str]:
    """Per-sample features of a chunk of equally shaped inputs ``(m, *shape)``: ``(features (m, d), kind)``.

    ``kind`` is ``'image'`` (unit-length thumbnails, final) or ``'vector'`` (to be standardized by
    :class:`EmbeddingSpace` with training statistics). ``finite``: the caller knows there is no NaN or Inf (NaN
    and Inf are read as 0 otherwise).
    """
    import torch

    m = chunk.shape[0]
    if layout(tuple(chunk.shape[1:])) == "vector":
        flat = _finite_float32(chunk, finite).reshape(m, -1)
        if flat.shape[1] > MAX_VECTOR_DIM:
            flat = flat @ _projection(flat.shape[1])
        return np.ascontiguousarray(flat, dtype=np.float32), "vector"
    t = as_chw(chunk, finite)
    h, w = t.shape[2:]
    if h % GRID == 0 and w % GRID == 0:  # whole-pixel cells: plain average pooling is the same, and faster
        pooled = torch.nn.functional.avg_pool2d(t, (h // GRID, w // GRID)).reshape(m, -1).numpy()
    else:
        rows = torch.from_numpy(pooling_weights(h).astype(np.float32))
        cols = torch.from_numpy(pooling_weights(w).astype(np.float32))
        pooled = (rows @ t @ cols.T).reshape(m, -1).numpy()
    return _unit_thumbnails(pooled), "image"


def _finite_float32(x: np.ndarray, finite: bool = False) -> np.ndarray:
    """``x`` as float32 with NaN and Inf as 0 (copied only when needed; ``finite``: the caller knows there are
    none, and they are not searched for)."""
    x = np.asarray(x, dtype=np.float32)
    return x if finite or np.isfinite(x).all() else np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def as_chw(images: np.ndarray, finite: bool = False) -> Any:
    """A float32 ``(m, c, h, w)`` tensor of images (the first 3 channels: alpha carries no content; NaN and Inf
    as 0) from ``(m, *shape)`` in any image :func:`layout`. ``finite``: the caller knows there is no NaN or Inf
    (the data pass counted them), and the images are not searched for any."""
    import torch

    kind = layout(tuple(images.shape[1:]))
    if kind == "vector":
        raise ValueError(f"inputs of shape {tuple(images.shape[1:])} are not images")
    images = _finite_float32(images, finite)
    t = torch.from_numpy(np.ascontiguousarray(images))
    if kind == "hw":
        t = t.unsqueeze(1)
    elif kind == "hwc":
        t = t.permute(0, 3, 1, 2)
    return t[:, :3].contiguous()


@lru_cache(maxsize=64)
def pooling_weights(size: int, zoom: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """``(GRID, size)`` weights that area-average a 1-D window onto GRID equal cells (exact for any size: a pixel
    on a cell border is shared by the overlap). ``rows @ image @ cols.T`` is then the image's GRID x GRID thumbnail.

    The window has length ``zoom * size``, is centred, then moved by ``offset`` pixels; pixels it covers outside
    the image take the nearest edge pixel's value (replicated edges). See :mod:`sanitycheck.probing.alignment`.
    """
    length = zoom * size
    start = (size - length) / 2 + offset
    edges = start + length * np.arange(GRID + 1) / GRID
    w = np.zeros((GRID, size))
    for j in range(GRID):
        a, b = edges[j], edges[j + 1]
        for p in range(int(np.floor(a)), int(np.ceil(b))):
            overlap = min(b, p + 1) - max(a, p)
            if overlap > 0:
                w[j, min(max(p, 0), size - 1)] += overlap / (b - a)
    return w


def _unit_thumbnails(pooled: np.ndarray) -> np.ndarray:
    """Centre each row and scale it to unit length (brightness and contrast invariance)."""
    pooled = pooled.astype(np.float64)
    pooled -= pooled.mean(1, keepdims=True)
    norm = np.linalg.norm(pooled, axis=1, keepdims=True)
    # a (near) constant image has no pattern to compare: it becomes the zero vector
    return np.where(norm > 1e-9, pooled / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


_PROJECTIONS: dict[tuple[int, int], np.ndarray] = {}


def _projection(dim: int, out: int = MAX_VECTOR_DIM) -> np.ndarray:
    """A fixed (seeded) Gaussian random projection ``dim -> out`` (Johnson-Lindenstrauss)."""
    if (dim, out) not in _PROJECTIONS:
        rng = np.random.default_rng(20240531 + dim)
        _PROJECTIONS[dim, out] = (rng.standard_normal((dim, out)) / np.sqrt(out)).astype(np.float32)
    return _PROJECTIONS[dim, out]
