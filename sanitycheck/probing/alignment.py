"""Thumbnails of shifted and zoomed windows of images: comparing an image with copies that were moved or cropped.

A copy shifted by two pixels, or cropped by a pixel or two and resized back, moves an 8x8 thumbnail as much as
another picture would. Comparing the thumbnail of one image with thumbnails of *windows* of the other undoes
that: a shifted window (edges replicated) undoes a shift, a smaller window (a zoom-in) undoes a crop that was
resized back. Windows are cheap because area-averaging a window onto a grid is separable: with ``R`` (8 x H)
and ``C`` (8 x W) the row and column pooling weights of a window, its thumbnail is ``R @ image @ C.T`` per
channel, so every window of a family is two small matrix products.

Each window's thumbnail is centred and scaled to unit length, exactly like the shared embedding's image
thumbnails (:mod:`sanitycheck.probing.embedding`), so distances are comparable with it and the identity window gives
the embedding itself. :func:`crop_distance` finds the window that undoes a crop one axis at a time, and
:func:`per_channel` turns thumbnails into a form a colour cast leaves unchanged. ``plugins/leakage.py`` (its
aligned and colour looks) is the user.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from sanitycheck.pipeline.features import GRID, pooling_weights

#: Shifts (pixels, each axis) of the query-side windows.
SHIFTS = (-2, -1, 0, 1, 2)
#: Zoom-in factors (window side / image side, each axis) of the windows: a crop of up to 15% of a side,
#: resized back, is undone by one of them (the two axes independently).
ZOOMS = (0.85, 0.8875, 0.925, 0.9625, 1.0)


def window_thumbnails(images: Any, windows: list[tuple[float, float, float, float]]) -> Any:
    """Unit thumbnails of windows of every image: ``(m, len(windows), c * GRID * GRID)``.

    ``images`` is ``(m, c, h, w)``; each window is ``(zoom_y, zoom_x, offset_y, offset_x)``. Row and column
    weights are computed once per distinct (zoom, offset) of each axis; one product pools every row window
    against every column window, and the windows asked for are picked from it.
    """
    import torch

    m, c, h, w = images.shape
    rows = tuple(sorted({(zy, dy) for zy, _, dy, _ in windows}))
    cols = tuple(sorted({(zx, dx) for _, zx, _, dx in windows}))
    r = _weights(h, rows)
    cw = _weights(w, cols)
    # columns first as one large product, then rows: every (row window, column window) pair, laid out per channel
    by_cols = (images.reshape(m * c * h, w) @ cw.T).reshape(m, c, h, -1)
    pooled = torch.matmul(r, by_cols).reshape(m, c, len(rows), GRID, len(cols), GRID)
    ri = [rows.index((zy, dy)) for zy, _, dy, _ in windows]
    ci = [cols.index((zx, dx)) for _, zx, _, dx in windows]
    if ri == [i for i in range(len(rows)) for _ in cols] and ci == list(range(len(cols))) * len(rows):
        out = pooled.permute(0, 2, 4, 1, 3, 5)  # every pair, row-major (the shifts): no gather, half the time
    else:  # advanced indices first: (len(windows), m, c, GRID, GRID)
        out = pooled[:, :, torch.tensor(ri), :, torch.tensor(ci), :].permute(1, 0, 2, 3, 4)
    return _unit(out.reshape(m, len(windows), -1))


def closest_window(windows: Any, targets: Any, targets_sq: Any = None) -> Any:
    """For each sample ``i`` and target ``j``: the Euclidean distance from ``targets[i, j]`` to the nearest of
    ``windows[i]``, ``(m, p)`` for ``windows`` ``(m, w, d)`` and ``targets`` ``(m, p, d)``; ``targets_sq``: the
    targets' squared norms ``(m, p)`` when the caller has them (gathered from its base's, computed once).

    One batched product (``|a|^2 + |b|^2 - 2 a.b``) and the minimum taken before the square root: a third of
    ``torch.cdist(...).amin(1)``'s time for 25 windows and 40 targets (1.0 ms against 3.3 ms for 128 samples,
    one thread), whose full distance matrix is never needed."""
    import torch

    if targets_sq is None:
        targets_sq = targets.square().sum(-1)
    d2 = torch.baddbmm(windows.square().sum(-1, keepdim=True), windows, targets.transpose(1, 2), alpha=-2)
    return d2.add_(targets_sq[:, None]).amin(1).clamp_min_(0).sqrt_()


@lru_cache(maxsize=64)
def _weights(size: int, windows: tuple[tuple[float, float], ...]) -> Any:
    """Stacked ``(len(windows) * GRID, size)`` pooling weights of 1-D windows ``(zoom, offset)`` (built once per
    size and family: the aligned look asks for the same few thousands of times)."""
    import torch

    return torch.from_numpy(np.concatenate([pooling_weights(size, z, d) for z, d in windows]).astype(np.float32))


def _unit(x: Any) -> Any:
    """Centre and scale the last dimension to unit length, in place (a constant thumbnail stays ~0)."""
    x -= x.mean(-1, keepdim=True)
    return x.div_(x.norm(dim=-1, keepdim=True).clamp_min_(1e-6))


#: A channel's spread is floored at this fraction of the largest channel's before it is scaled to one: a channel
#: with almost no pattern (a flat blue sky) would otherwise be all noise blown up.
CHANNEL_FLOOR = 0.1


def per_channel(thumbs: Any, channels: int) -> Any:
    """Thumbnails (last dimension ``channels * GRID * GRID``) with each channel centred and scaled on its own,
    the whole to unit length: a colour cast (a gain and an offset per channel) leaves them unchanged."""
    shape = thumbs.shape
    x = thumbs.reshape(*shape[:-1], channels, -1)
    x = x - x.mean(-1, keepdim=True)
    norm = x.norm(dim=-1, keepdim=True)
    norm = norm.maximum(CHANNEL_FLOOR * norm.amax(-2, keepdim=True)).clamp_min(1e-6)
    return (x / (norm * channels ** 0.5)).reshape(shape)


def coarse_thumbnails(thumbs: Any) -> Any:
    """4x4 unit thumbnails ``(n, c * 16)`` from 8x8 ones ``(n, c * 64)`` (2x2 cells averaged): a crop or shift of a
    pixel or two barely moves them."""
    n, d = thumbs.shape
    cells = thumbs.reshape(n, d // (GRID * GRID), GRID // 2, 2, GRID // 2, 2).mean((3, 5))
    return _unit(cells.reshape(n, -1))


def central_cells(thumbs: Any) -> Any:
    """The central 4x4 cells of 8x8 thumbnails ``(n, c * 64)``, centred and unit length: a zoom of a few percent
    barely moves them."""
    n, d = thumbs.shape
    return _unit(thumbs.reshape(n, d // (GRID * GRID), GRID, GRID)[:, :, 2:6, 2:6].reshape(n, -1))


def shift_windows() -> list[tuple[float, float, float, float]]:
    """Every shift in SHIFTS^2 (row-major, so the unshifted window is the middle one)."""
    return [(1.0, 1.0, float(dy), float(dx)) for dy in SHIFTS for dx in SHIFTS]


#: Offsets (pixels) of the 1-D windows searched per axis, at every zoom in ZOOMS, to undo a crop: a crop that
#: took more from one side than from the other moves the window's centre.
OFFSETS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def crop_distance(images: Any, targets: Any) -> Any:
    """For each image ``i`` and each of its targets ``j``: the distance between ``targets[i, j]`` (a unit
    thumbnail) and the thumbnail of the window of ``images[i]`` that best undoes a crop resized back:
    ``(n, p)`` for ``targets`` of shape ``(n, p, d)``.

    A crop is separable, so the window is found one axis at a time: the image's row profile (its mean over
    columns) is pooled through every 1-D window (ZOOMS x OFFSETS) once, and compared with each target's row
    profile, and the same for columns; then the one window made of the two best is pooled in full and compared.
    Profiles are compared as unit thumbnails are: centred and scaled to unit length, the nearest being the one of
    largest cosine with the (unit) target profile, computed from the window profiles' dot products and spreads
    without a normalized copy of each (the same windows, a seventh of the time saved).
    """
    import torch

    n, c, h, w = images.shape
    p = targets.shape[1]
    t = targets.reshape(n, p, c, GRID, GRID)
    windows = tuple((z, d) for z in ZOOMS for d in OFFSETS)
    k, d = len(windows), c * GRID
    best = []
    for axis, size in ((3, h), (4, w)):
        weights = _weights(size, windows)  # (k * GRID, size)
        profile = images.mean(6 - axis).reshape(n * c, size) @ weights.T  # the other axis averaged out
        profile = profile.reshape(n, c, k * GRID).transpose(1, 2).reshape(n, k, d)  # (n, windows, GRID x c)
        wanted = _unit(t.mean(7 - axis).transpose(2, 3).reshape(n, p, d))  # the same (GRID, c) order, centred
        # |profile - its mean|, with the centred target's dot product unchanged by the profile's mean
        spread = (profile.square().sum(-1) - profile.sum(-1).square() / d).clamp_min_(1e-12).sqrt_()
        choice = (torch.bmm(wanted, profile.transpose(1, 2)) / spread[:, None]).argmax(2)  # (n, p)
        best.append(weights.reshape(k, GRID, size)[choice])  # (n, p, GRID, size)
    rows, cols = best
    if p == 1:  # one target per image (the candidates' side): the products broadcast over channels, no copies
        pooled = rows @ images @ cols.transpose(2, 3)  # (n, c, GRID, GRID)
        return (_unit(pooled.reshape(n, 1, -1)) - targets).norm(dim=2)
    # rows @ image @ cols.T for every (image, target, channel), as two batched products over the images (channels
    # side by side) rather than n * p * c tiny ones: 2.5x faster for 9 targets per image
    by_rows = rows.reshape(n, p * GRID, h) @ images.permute(0, 2, 1, 3).reshape(n, h, c * w)  # (n, p * GRID, c * w)
    by_rows = by_rows.reshape(n, p, GRID, c, w).permute(0, 1, 3, 2, 4).reshape(n * p, c * GRID, w)
    pooled = by_rows @ cols.reshape(n * p, GRID, w).transpose(1, 2)  # (n * p, c * GRID, GRID): per channel, GRID x GRID
    return (_unit(pooled.reshape(n, p, -1)) - targets).norm(dim=2)


__all__ = ["window_thumbnails", "closest_window", "shift_windows", "per_channel", "crop_distance",
           "coarse_thumbnails", "central_cells", "SHIFTS", "ZOOMS", "OFFSETS"]
