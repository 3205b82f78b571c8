"""Sliding windows of one series on both sides of a split: validation windows that training windows overlap.

Forecasting and sequence-classification data is often cut into overlapping windows (``series[i:i + T]`` for every
``i``). Split at random, a validation window then has training windows that start a step or two before it and a
step or two after it: T - 1 of its T values are in each, and its target lies between training examples in time.
The validation score measures interpolation, not forecasting. A chronological split overlaps only at its boundary,
and only with earlier training windows: the validation targets still come after everything trained on.

:func:`interleaved` finds, for every validation window, a training window shifted by k = 1..:data:`MAX_SHIFT`
steps (up to half a window on smaller data) that shares its T - k values exactly, before it and after it: one sort per shift and side on a short key of
a few values, then the candidate rows compared whole. Only exact overlaps count: windows cut from one stored
series are exact.
"""

from __future__ import annotations

import numpy as np

#: Window steps (strides) looked for: a training window starting up to this many steps before or after, or more
#: (up to half a window: 50% overlap, as human-activity data is cut) while the keys sorted, one per training
#: window and shift, stay within MAX_SORTED.
MAX_SHIFT = 8
MAX_SORTED = 500_000
#: Inputs of fewer steps than this are not windows of a series.
MIN_STEPS = 8
#: The shared part must hold at least this many distinct values: constant padding, or a one-hot block shifted by
#: a position (two values), is not a series.
MIN_DISTINCT = 4
#: A second axis at most this long is a sequence's features (T, F), or its channels (C, T) when the first is.
MAX_FEATURES = 64


def time_axis(shape: tuple[int, ...]) -> int | None:
    """The axis of a sample that is time: ``(T,)``; ``(T, F)`` with few features; ``(C, T)`` with few channels
    (a Conv1d's layout); None for anything else (images, volumes, short vectors)."""
    if len(shape) == 1:
        return 0 if shape[0] >= MIN_STEPS else None
    if len(shape) == 2:
        steps, other = shape
        if steps >= MIN_STEPS and other <= MAX_FEATURES and other < steps:
            return 0
        if other >= MIN_STEPS and steps <= MAX_FEATURES and steps < other:
            return 1
    return None


def interleaved(train: np.ndarray, val: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each validation window: the index of a training window that starts up to MAX_SHIFT steps (more on
    smaller data, see MAX_SORTED) *before* it
    and shares the rest of its values, and of one that starts *after* it (-1: none), and the steps between the
    earlier one and it: ``(before, after, lag)``.

    ``train`` and ``val`` are ``(n, *shape)`` with time on ``axis`` of the sample shape."""
    # (n, T, F) views, time first: the shifted parts below are views too, never copies of a split
    tr = np.moveaxis(train, axis + 1, 1).reshape(len(train), train.shape[axis + 1], -1)
    va = np.moveaxis(val, axis + 1, 1).reshape(len(val), val.shape[axis + 1], -1)
    steps = tr.shape[1]
    before = np.full(len(va), -1, dtype=np.int64)
    after = np.full(len(va), -1, dtype=np.int64)
    lag = np.zeros(len(va), dtype=np.int64)
    shifts = range(1, min(max(MAX_SHIFT, MAX_SORTED // max(len(tr), 1)), steps // 2) + 1)
    # an earlier training window a: a[k:] is the validation window's v[:-k]; a later one: a[:-k] is v[k:]. Later
    # ones are looked for only beside an earlier one (what is reported is both): data that is no series of windows
    # costs one side
    for k in shifts:
        lag[_fill(before, tr[:, k:], va[:, :-k], before < 0)] = k
    for k in shifts:
        _fill(after, tr[:, :-k], va[:, k:], (after < 0) & (before >= 0))
    return before, after, lag


def _fill(found: np.ndarray, a: np.ndarray, v: np.ndarray, todo: np.ndarray) -> np.ndarray:
    """``found[i]`` = a row of ``a`` equal to ``v[i]`` (its values varied), for the rows ``todo`` selects; returns
    the rows filled."""
    todo = np.flatnonzero(todo)
    if not len(todo):
        return todo
    match = _equal_rows(a, v, todo)
    hit = np.flatnonzero(match >= 0)
    hit = hit[_varied(v[todo[hit]])]
    found[todo[hit]] = match[hit]
    return todo[hit]


#: Rows are matched on this many of their values (a short sort key), then compared whole.
KEY_VALUES = 8


def _equal_rows(a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each of the ``rows`` of ``b``, the index of a row of ``a`` with the same values (-1: none; rows are
    ``(L, F)`` windows), found by sorting on KEY_VALUES of their values as bytes and then comparing the rows whole
    (sorting whole rows took 5 s on MNIST's 60k + 10k flat images, this 0.34 s)."""
    if not len(a):
        return np.full(len(rows), -1, dtype=np.int64)
    # positions drawn over the whole row (seeded), not its first values: those are often a constant margin or
    # padding shared by many rows, and every row sharing the key is compared whole
    at = np.sort(np.random.default_rng(0).permutation(a.shape[1] * a.shape[2])[:KEY_VALUES])
    t, f = np.divmod(at, a.shape[2])
    key = np.dtype((np.void, a.dtype.itemsize * len(at)))
    keys = np.ascontiguousarray(a[:, t, f]).view(key).ravel()
    queries = np.ascontiguousarray(b[rows[:, None], t, f], dtype=a.dtype).view(key).ravel()
    order = np.argsort(keys, kind="stable")
    match = order[np.clip(np.searchsorted(keys[order], queries), 0, len(keys) - 1)]
    hit = keys[match] == queries
    hit[hit] = (a[match[hit]] == b[rows[hit]]).all((1, 2))
    return np.where(hit, match, -1)


def _varied(rows: np.ndarray) -> np.ndarray:
    """Whether each row holds at least MIN_DISTINCT distinct values."""
    if not len(rows):
        return np.zeros(0, dtype=bool)
    flat = np.sort(rows.reshape(len(rows), -1), axis=1)
    return (np.diff(flat, axis=1) != 0).sum(1) + 1 >= MIN_DISTINCT


__all__ = ["interleaved", "time_axis", "MAX_SHIFT", "MIN_STEPS", "MIN_DISTINCT"]
