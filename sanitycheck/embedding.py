"""The shared representation of samples for data checks: an exact content hash and a compact embedding.

Both are computed while the one data pass streams over a split (see :mod:`sanitycheck.data`), chunk by
chunk, so their memory is bounded by the number of samples times a small constant (8 bytes of hash plus at
most :data:`MAX_DIM` float32 features per sample), never by the size of the inputs.

What checks use (everything is cached per run through ``ctx.shared``)::

    hashes(ctx, split)       -> np.ndarray (n,) uint64        exact content of each input
    embedding(ctx, split)    -> np.ndarray (n, d) float32     compact vector; Euclidean distance = similarity
    embed(ctx, inputs)       -> np.ndarray (m, d) float32     extra inputs (e.g. augmented samples), same space
    space(ctx)               -> EmbeddingSpace                how raw features become embeddings

**Hash.** Every input is converted to contiguous float32 (``-0.0`` becomes ``0.0``, every NaN the same NaN)
and hashed with BLAKE2b together with its shape, so a ``uint8`` image and the same image as ``float32``,
or a strided view and its contiguous copy, hash the same.

**Embedding.** Images (``(C, H, W)``, ``(H, W)`` or ``(H, W, C)`` with C in 1, 3, 4) are averaged down to an
8 x 8 grid per channel (first 3 channels), then centred and scaled to unit length per sample: a
downsampled, brightness- and contrast-invariant thumbnail. Re-encoding noise, 1-2 pixel shifts, small crops
and resizes barely move it; different pictures land far apart. Other inputs are flattened; with more than
:data:`MAX_VECTOR_DIM` values they are reduced by a seeded Gaussian random projection; the resulting
features are then standardized with the training split's mean and standard deviation (each standard deviation
floored at 0.3x the median one, so near-constant features do not dominate).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Side of the grid images are averaged down to.
GRID = 8
#: Non-image inputs with more values than this are randomly projected to this many dimensions.
MAX_VECTOR_DIM = 128
#: A feature's standard deviation is floored at this fraction of the median feature's before standardizing.
STD_FLOOR = 0.3
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


def content_hashes(chunk: np.ndarray) -> np.ndarray:
    """Exact content hash (uint64) of each row of ``chunk`` (samples of one shape), independent of dtype/strides."""
    m = chunk.shape[0]
    x = np.ascontiguousarray(chunk, dtype=np.float32).reshape(m, -1) + np.float32(0.0)  # -0.0 -> 0.0
    if np.isnan(x).any():
        x = np.where(np.isnan(x), np.float32(np.nan), x)  # one NaN bit pattern
    prefix = repr(tuple(chunk.shape[1:])).encode()
    out = np.empty(m, dtype=np.uint64)
    for i in range(m):
        h = hashlib.blake2b(prefix, digest_size=8)
        h.update(x[i].data)
        out[i] = int.from_bytes(h.digest(), "little")
    return out


def raw_features(chunk: np.ndarray) -> tuple[np.ndarray, str]:
    """Per-sample features of a chunk of equally shaped inputs ``(m, *shape)``: ``(features (m, d), kind)``.

    ``kind`` is ``'image'`` (unit-length thumbnails, final) or ``'vector'`` (to be standardized by
    :class:`EmbeddingSpace` with training statistics).
    """
    import torch
    import torch.nn.functional as F

    m, shape = chunk.shape[0], tuple(chunk.shape[1:])
    kind = layout(shape)
    x = np.asarray(chunk, dtype=np.float32)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    if kind == "vector":
        flat = x.reshape(m, -1)
        if flat.shape[1] > MAX_VECTOR_DIM:
            flat = flat @ _projection(flat.shape[1])
        return np.ascontiguousarray(flat, dtype=np.float32), "vector"
    t = torch.from_numpy(np.ascontiguousarray(x))
    if kind == "hw":
        t = t.unsqueeze(1)
    elif kind == "hwc":
        t = t.permute(0, 3, 1, 2)
    t = t[:, :3]  # alpha carries no content
    h, w = t.shape[2:]
    pooled = F.adaptive_avg_pool2d(t, (min(GRID, h), min(GRID, w))).reshape(m, -1).numpy()
    return _unit_thumbnails(pooled), "image"


def _unit_thumbnails(pooled: np.ndarray) -> np.ndarray:
    """Centre each row and scale it to unit length (brightness and contrast invariance)."""
    pooled = pooled.astype(np.float64)
    pooled -= pooled.mean(1, keepdims=True)
    norm = np.linalg.norm(pooled, axis=1, keepdims=True)
    # a (near) constant image has no pattern to compare: it becomes the zero vector
    return np.where(norm > 1e-9, pooled / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


_PROJECTIONS: dict[int, np.ndarray] = {}


def _projection(dim: int) -> np.ndarray:
    """A fixed (seeded) Gaussian random projection ``dim -> MAX_VECTOR_DIM`` (Johnson-Lindenstrauss)."""
    if dim not in _PROJECTIONS:
        rng = np.random.default_rng(20240531 + dim)
        _PROJECTIONS[dim] = (rng.standard_normal((dim, MAX_VECTOR_DIM)) / np.sqrt(MAX_VECTOR_DIM)).astype(np.float32)
    return _PROJECTIONS[dim]


@dataclass
class EmbeddingSpace:
    """Turns raw features (from the data pass) into embeddings; fitted once on the training split."""

    kind: str
    dim: int
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def fit(cls, features: np.ndarray, kind: str) -> EmbeddingSpace:
        if kind == "image":
            return cls(kind=kind, dim=features.shape[1])
        mean = features.mean(0, dtype=np.float64)
        std = features.std(0, dtype=np.float64)
        # floor each std at STD_FLOOR x the median one: a near-constant feature (a border pixel) would otherwise be
        # blown up until its rare values dominate every distance
        positive = std[std > 1e-12]
        floor = STD_FLOOR * float(np.median(positive)) if len(positive) else 1.0
        std = np.maximum(std, max(floor, 1e-12))
        return cls(kind=kind, dim=features.shape[1], mean=mean.astype(np.float32), std=std.astype(np.float32))

    def transform(self, features: np.ndarray) -> np.ndarray:
        if features.shape[1] != self.dim:
            raise ValueError(f"features have {features.shape[1]} dimensions, the embedding space {self.dim}")
        if self.kind == "image":
            return np.ascontiguousarray(features, dtype=np.float32)
        return ((features - self.mean) / self.std).astype(np.float32)


class EmbeddingUnavailable(Exception):
    """The split's inputs cannot be embedded (different shapes, or train and val embed differently)."""


def _features(split: Any) -> tuple[np.ndarray, str]:
    data = split.data_pass()
    if data.features is None:
        raise EmbeddingUnavailable(f"{split.name}: {data.features_note}")
    return data.features, data.features_kind


def space(ctx: Any) -> EmbeddingSpace:
    """The embedding space of this run, fitted on the training split (cached)."""

    def compute() -> EmbeddingSpace:
        features, kind = _features(ctx.train)
        return EmbeddingSpace.fit(features, kind)

    return ctx.shared("embedding:space", compute)


def embedding(ctx: Any, split: Any) -> np.ndarray:
    """The ``(n, d)`` float32 embedding of every sample of ``split`` (cached; row ``i`` is sample ``i``).

    Raises :class:`EmbeddingUnavailable` when the split cannot be embedded in the training split's space.
    """

    def compute() -> np.ndarray:
        features, kind = _features(split)
        sp = space(ctx)
        if kind != sp.kind or features.shape[1] != sp.dim:
            raise EmbeddingUnavailable(
                f"{split.name} inputs embed as {kind} of {features.shape[1]} dims, train as {sp.kind} of {sp.dim}"
            )
        return sp.transform(features)

    return ctx.shared(f"embedding:{split.name}", compute)


def hashes(ctx: Any, split: Any) -> np.ndarray:
    """The ``(n,)`` uint64 exact content hash of every input of ``split`` (from the data pass)."""
    return split.data_pass().hashes


def embed(ctx: Any, inputs: Any) -> np.ndarray:
    """Embed extra inputs (a batch ``(m, *shape)`` tensor/array, or a list of equally shaped inputs) in the
    training split's embedding space, e.g. augmented versions of training samples."""
    from sanitycheck.data import to_numpy

    if isinstance(inputs, (list, tuple)):
        arr = np.stack([to_numpy(x) for x in inputs])
    else:
        arr = to_numpy(inputs)
    features, kind = raw_features(arr.astype(np.float32, copy=False))
    sp = space(ctx)
    if kind != sp.kind:
        raise EmbeddingUnavailable(f"inputs embed as {kind}, train as {sp.kind}")
    return sp.transform(features)


__all__ = ["hashes", "embedding", "embed", "space", "EmbeddingSpace", "EmbeddingUnavailable",
           "content_hashes", "raw_features", "layout"]


def shifted_embeddings(ctx: Any, inputs: np.ndarray, max_shift: int) -> np.ndarray:
    """Embeddings of every image of ``inputs`` ``(m, *shape)`` translated by each (dy, dx) in
    ``[-max_shift, max_shift]^2`` (edges replicated): ``(m, (2 max_shift + 1)^2, d)``, the unshifted one included.

    For comparing images with copies of them that were shifted or cropped by a pixel or two, which move an
    8x8 thumbnail as much as a different picture would.
    """
    import torch
    import torch.nn.functional as F

    x = np.asarray(inputs, dtype=np.float32)
    kind = layout(tuple(x.shape[1:]))
    if kind == "vector":
        raise EmbeddingUnavailable("shifts apply to images only")
    t = torch.from_numpy(np.ascontiguousarray(np.nan_to_num(x)))
    if kind == "hw":
        t = t.unsqueeze(1)
    elif kind == "hwc":
        t = t.permute(0, 3, 1, 2)
    t = t[:, :3]
    m, c, h, w = t.shape
    s = max_shift
    offsets = [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)]
    padded = F.pad(t, (s, s, s, s), mode="replicate")
    if h % GRID == 0 and w % GRID == 0:
        # the 8x8 average of a shifted image is a strided sample of one box filter of the padded image
        ch, cw = h // GRID, w // GRID
        box = F.avg_pool2d(padded, (ch, cw), stride=1)
        pooled = torch.stack([box[:, :, s + dy:s + dy + h - ch + 1:ch, s + dx:s + dx + w - cw + 1:cw]
                              for dy, dx in offsets], 1).reshape(m * len(offsets), -1).numpy()
        features = _unit_thumbnails(pooled)
    else:
        views = [padded[:, :, s + dy:s + dy + h, s + dx:s + dx + w] for dy, dx in offsets]
        features, _ = raw_features(torch.stack(views, 1).reshape(m * len(offsets), c, h, w).numpy())
    return space(ctx).transform(features).reshape(m, len(offsets), -1)
