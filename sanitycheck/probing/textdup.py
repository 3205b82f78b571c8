"""Copies between windows of token ids, judged as text: exact copies and copies shifted by a few tokens.

A language model's samples are windows of one long text. Two windows of a clean corpus may be identical (repeated
lines, boilerplate), and windows cut with a stride shorter than their length overlap by construction; neither is
leakage. What is leakage is the same stretch of text on both sides of the split: a random split of overlapping
windows puts window k in validation and windows k-1 and k+1 in training, so every validation window is its training
neighbour shifted by one token. Euclidean distance between id vectors cannot see that (ids are categorical, and a
shift changes every position); matching hashes of the overlapping parts can.
"""

from __future__ import annotations

import numpy as np


def _row_hashes(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of integer ids (wrapping multiply-add with fixed random odd weights)."""
    with np.errstate(over="ignore"):
        return ((rows.astype(np.uint64) + np.uint64(1)) * weights[: rows.shape[1]]).sum(1, dtype=np.uint64)


def shifted_copies(train: np.ndarray, val: np.ndarray, max_shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validation windows that continue or precede a training window by 1 to ``max_shift`` tokens.

    ``train`` ``(n, T)`` and ``val`` ``(m, T)`` are windows of token ids. Validation window ``v`` is a shifted copy
    of training window ``w`` by ``s > 0`` when ``v[s:] == w[:-s]`` (``w`` starts ``s`` tokens later in the text) or
    ``v[:-s] == w[s:]`` (``w`` starts ``s`` tokens earlier). Returns ``(val rows, train rows, signed shifts)`` for the
    validation windows that have one (the smallest shift found first), compared by 64-bit hashes.
    """
    length = train.shape[1]
    weights = (np.random.default_rng(20240611).integers(1, 2**62, size=length, dtype=np.int64) * 2 + 1).astype(np.uint64)
    found_train = np.full(len(val), -1, dtype=np.int64)
    found_shift = np.zeros(len(val), dtype=np.int64)
    for s in range(1, min(max_shift, length - 1) + 1):
        for sign, v_part, t_part in ((+1, val[:, s:], train[:, :-s]), (-1, val[:, :-s], train[:, s:])):
            open_rows = np.flatnonzero(found_train < 0)
            if not len(open_rows):
                break
            th = _row_hashes(t_part, weights)
            order = np.argsort(th, kind="stable")
            sorted_th = th[order]
            vh = _row_hashes(v_part[open_rows], weights)
            pos = np.clip(np.searchsorted(sorted_th, vh), 0, len(sorted_th) - 1)
            hit = sorted_th[pos] == vh
            found_train[open_rows[hit]] = order[pos[hit]]
            found_shift[open_rows[hit]] = sign * s
    rows = np.flatnonzero(found_train >= 0)
    return rows, found_train[rows], found_shift[rows]
