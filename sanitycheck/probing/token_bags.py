"""Bags of tokens: texts given as token ids, compared by the tokens they use rather than by the id at each position.

Distances between id vectors mean nothing (ids are categorical, and a text shifted by one token changes every
position), so the neighbour votes that ask "do the inputs predict the labels without training?" read token-id
inputs as bags instead: each sample's token counts (ids folded onto :data:`BAG_DIM` buckets), log-scaled, weighted
by inverse document frequency (a padding id or a token in every text weighs almost nothing) and scaled to unit
length (TF-IDF, the classic text-classification baseline). Computed on demand for at most a few thousand samples.
"""

from __future__ import annotations

import numpy as np

#: Token ids are folded onto this many buckets (id modulo BAG_DIM): bytes and small vocabularies keep one bucket
#: per id; a larger vocabulary shares buckets, which blurs rare tokens only.
BAG_DIM = 4096


def token_bags(ids: np.ndarray, idf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(bags, idf)``: unit-length TF-IDF bags ``(n, BAG_DIM)`` float32 of ``ids`` ``(n, ...)`` (integer token ids,
    negative ids left out), and the inverse document frequencies used (computed from ``ids`` unless given: held-out
    samples take their training samples')."""
    n = len(ids)
    flat = np.asarray(ids).reshape(n, -1).astype(np.int64)
    rows = np.repeat(np.arange(n), flat.shape[1])
    keep = flat.reshape(-1) >= 0
    cells = rows[keep] * BAG_DIM + flat.reshape(-1)[keep] % BAG_DIM
    counts = np.bincount(cells, minlength=n * BAG_DIM).reshape(n, BAG_DIM).astype(np.float32)
    if idf is None:
        documents = (counts > 0).sum(0)
        idf = (np.log((1.0 + n) / (1.0 + documents)) + 1.0).astype(np.float32)
    bags = np.log1p(counts) * idf
    bags /= np.maximum(np.linalg.norm(bags, axis=1, keepdims=True), 1e-12)
    return bags, idf


__all__ = ["token_bags", "BAG_DIM"]
