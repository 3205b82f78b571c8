"""Bags of tokens: texts given as token ids, compared by the tokens they use rather than by the id at each position.

Distances between id vectors mean nothing (ids are categorical, and a text shifted by one token changes every
position), so the shared embedding of token-id inputs (:mod:`sanitycheck.probing.embedding`) is a bag of tokens:
each sample's token counts (ids folded onto :data:`BAG_DIM` buckets), log-scaled, weighted by the inverse document
frequency fitted on the training split (a padding id or a token in every text weighs almost nothing), randomly
projected to :data:`DIM` dimensions (seeded; Johnson-Lindenstrauss keeps the angles) and scaled to unit length: the
TF-IDF of text classification, for the checks that ask which inputs are alike (label-shuffle's vote of neighbours,
influence's out-of-fold classifier). Computed chunk by chunk: memory is bounded by ``n x DIM`` floats.
"""

from __future__ import annotations

import numpy as np

#: Token ids are folded onto this many buckets (id modulo BAG_DIM): bytes and small vocabularies keep one bucket
#: per id; a larger vocabulary shares buckets, which blurs rare tokens only.
BAG_DIM = 4096
#: Dimensions of the projected bags.
DIM = 256
#: Samples per chunk (a chunk's counts are CHUNK x BAG_DIM float32: 16 MB).
CHUNK = 1024


def _counts(ids: np.ndarray) -> np.ndarray:
    """Token counts ``(n, BAG_DIM)`` float32 of ``ids`` ``(n, ...)``; negative ids (ignored positions) left out."""
    n = len(ids)
    flat = np.asarray(ids).reshape(n, -1).astype(np.int64)
    keep = flat >= 0
    cells = np.repeat(np.arange(n), flat.shape[1])[keep.reshape(-1)] * BAG_DIM + flat[keep] % BAG_DIM
    return np.bincount(cells, minlength=n * BAG_DIM).reshape(n, BAG_DIM).astype(np.float32)


def inverse_document_frequency(ids: np.ndarray) -> np.ndarray:
    """``(BAG_DIM,)`` float32 smoothed IDF, ln((1 + n) / (1 + df)) + 1, of the texts ``ids`` ``(n, ...)``."""
    documents = np.zeros(BAG_DIM, dtype=np.int64)
    for lo in range(0, len(ids), CHUNK):
        documents += (_counts(ids[lo:lo + CHUNK]) > 0).sum(0)
    return (np.log((1.0 + len(ids)) / (1.0 + documents)) + 1.0).astype(np.float32)


def bag_embedding(ids: np.ndarray, idf: np.ndarray) -> np.ndarray:
    """``(n, DIM)`` float32 unit-length projected TF-IDF bags of ``ids`` ``(n, ...)`` with the training split's
    ``idf``; a text with no token is the zero vector."""
    from sanitycheck.pipeline.features import _projection

    projection = _projection(BAG_DIM, DIM)
    out = np.empty((len(ids), DIM), dtype=np.float32)
    for lo in range(0, len(ids), CHUNK):
        bags = np.log1p(_counts(ids[lo:lo + CHUNK])) * idf
        block = bags @ projection
        norm = np.linalg.norm(block, axis=1, keepdims=True)
        out[lo:lo + CHUNK] = np.where(norm > 1e-12, block / np.maximum(norm, 1e-12), 0.0)
    return out


__all__ = ["inverse_document_frequency", "bag_embedding", "BAG_DIM", "DIM"]
