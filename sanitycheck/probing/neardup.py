"""Near-duplicate machinery shared by data checks: pair scores, the calibrated cutoff, and the aligned look.

A pair of samples scores ``d(a, b) / min(r_k(a), r_k(b))`` (:func:`pair_score`: distance over neighbourhood
scale). :func:`tail_cutoff` turns a clean sample of scores into the cutoff a fraction alpha of clean pairs falls
under. :func:`aligned_scores` compares image samples with candidate training neighbours under small shifts, crops
resized back and colour casts (:mod:`sanitycheck.probing.alignment`). The ``leakage`` check holds the decision
rules built on them; this module holds no verdicts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


#: On small splits (no tail fit) the cutoff quantile is taken at a fraction leaving at least this many scores below it.
MIN_TAIL = 10
#: The cutoff extends the power law fitted to the training scores between these quantiles down to alpha.
TAIL_FIT = (0.05, 0.20)
#: Below this many scores the tail is not fitted: the cutoff is the empirical quantile at alpha, raised so that
#: MIN_TAIL scores lie below it.
MIN_FIT = 200


def tail_cutoff(scores: np.ndarray, alpha: float) -> tuple[float, float | None, float]:
    """The score under which a fraction ``alpha`` of clean samples falls: ``(cutoff, exponent, alpha used)``.

    Nearest-neighbour distance ratios have a power-law lower tail, P(score <= s) ~ C s^m, m the data's local
    intrinsic dimension. m and C are fitted on the TAIL_FIT quantiles of the training scores and the law is
    extended down to alpha. The plain alpha quantile would do on a clean split, but real training splits hold
    near copies of their own (a few percent of CIFAR-10's), and their scores fill the bottom of the distribution:
    that quantile would be how close those copies are, and every copy less exact than them would be missed.
    """
    finite = scores[np.isfinite(scores)]
    if len(finite) >= MIN_FIT:
        lo, hi = np.quantile(finite, TAIL_FIT)
        if lo > 0 and hi > lo:
            exponent = float(np.log(TAIL_FIT[1] / TAIL_FIT[0]) / np.log(hi / lo))
            return float(lo * (alpha / TAIL_FIT[0]) ** (1 / exponent)), exponent, alpha
    alpha = min(0.5, max(alpha, MIN_TAIL / max(len(finite), 1)))
    return (float(np.quantile(finite, alpha)) if len(finite) else 0.0), None, alpha


#: The aligned look compares a sample with this many candidate neighbours (found without alignment), plus those of
#: the shifted search (SEARCH_SHIFTS): the neighbours every split's scan has already found (``K_SHARED``), so that
#: duplicates inside a split are looked at without another search, exactly as across splits and in calibration.
ALIGN_CANDIDATES = 10
#: ... and searches 3 x this many of them for a crop resized back: the best after shifting the sample, and as many
#: nearest by a 4x4 thumbnail and by the central 4x4 cells of the 8x8 one (both barely moved by a 1-2 pixel crop).
#: 2 rather than 3: the crop search is most of the aligned look's time, and with 2 the same ciFAIR pairs are found
#: (35 of 39 across splits, 33 of 39 inside one) and the same planted copies (benchmarks/leakage_scale.py cifar,
#: seeds 0 and 1: 297 and 299 of 300) for a tenth less of the look's time (docs/benchmarks-speed.md).
ZOOM_CANDIDATES = 2
#: Random training samples scored by the aligned and colour looks to calibrate their cutoffs (the tail fit uses the
#: 5%-20% quantiles: a few hundred scores).
ALIGN_CALIBRATION = 2000
#: Samples handled at once by the aligned look (bounds its buffers: about 20 MB a block, one block per core at a
#: time). 128 rather than 256 since blocks run side by side: the peak of leakage + outliers on 60k images fell
#: from 1920-1943 MB to 1761-1806 MB at the same speed (benchmarks/preflight_vs_epoch.py neardup, 2 cores).
ALIGN_BLOCK = 128


def aligned_scores(ctx: Any, split: Any, indices: np.ndarray, nb: Any, k: int, base_split: Any = None,
                   self_ids: np.ndarray | None = None, cand: np.ndarray | None = None,
                   group: np.ndarray | None = None) -> dict[str, tuple]:
    """Per look (``aligned``; ``colour`` for colour images), for each sample: (distance to its best partner in
    ``base_split`` (default the training split), the partner's distinct id, score).

    ``nb``: the base split's :class:`~sanitycheck.probing.neighbors.SplitNeighbors` (its distinct inputs, their
    embeddings and index). Candidates are the sample's ALIGN_CANDIDATES nearest distinct base samples on the embedding. Each is
    compared with the sample shifted by every (dy, dx) of ``alignment.shift_windows()``, keeping the smallest
    distance; the sample's scale is the k-th smallest of these. Then 3 x ZOOM_CANDIDATES of them (the best after
    shifts, the nearest by 4x4 thumbnail, the nearest by the central 4x4 cells) are searched for a crop resized back, both ways
    (``alignment.crop_distance``: a window of the candidate against the sample, and of the sample against the
    candidate). The ``colour`` look compares the unshifted sample with the same candidates, each colour channel
    centred and scaled on its own (``alignment.per_channel``), which a colour cast leaves unchanged.
    ``self_ids``: the samples are these distinct inputs of the base split itself, each left out of its own
    candidates (calibration, duplicates inside a split). ``cand``: the candidates when the caller has searched them
    already (distinct ids, nearest first). ``group``: the base's own near-duplicate groups (one id per distinct
    input): the scale counts each group once (:func:`group_kth`), and a sample of ``self_ids`` is not compared
    with its own group.
    """
    import torch

    from sanitycheck.probing.alignment import central_cells, coarse_thumbnails, per_channel
    from sanitycheck.pipeline.features import GRID
    from sanitycheck.probing.embedding import embedding
    from sanitycheck.probing.neighbors import knn, knn_device
    from sanitycheck.engine.progress import scan_progress
    from sanitycheck.engine.threads import map_on_cores

    base_split = ctx.train if base_split is None else base_split
    extra = 1 if self_ids is not None else 0
    kc = min(ALIGN_CANDIDATES + extra, len(nb.unique))
    if cand is None:
        _, cand = knn(embedding(ctx, split)[indices], nb.base, kc, seed=ctx.derived_seed("leakage-align"),
                      device=knn_device(ctx), index=nb.index, label=f"leakage: candidates ({split.name})")
    cand = with_shifted_neighbours(ctx, split, indices, cand, nb)
    # the samples taken in order of their number of candidates, so that a block's rows are about as long: a block is
    # as wide as its longest row, and in dataset order a third of the distances computed were padding (60k
    # CIFAR-sized images: 33 candidates a row, blocks 47 wide)
    order = np.argsort(-(cand >= 0).sum(1), kind="stable")
    thumbs = torch.from_numpy(nb.base)
    channels = thumbs.shape[1] // (GRID * GRID)
    colour = per_channel(thumbs, channels) if channels > 1 else None
    base = _Base(thumbs, thumbs.square().sum(1), coarse_thumbnails(thumbs), central_cells(thumbs), colour,
                 None if colour is None else colour.square().sum(1))

    # blocks side by side on the run's cores, but only over cached inputs: the user's dataset, read again from
    # several threads at once, need not be thread-safe
    cached = split.data_pass().inputs is not None and base_split.data_pass().inputs is not None
    # cached inputs the data pass found no NaN or Inf in are not searched for them again, block after block
    finite = cached and all(not (s.data_pass().nan_count.any() or s.data_pass().inf_count.any())
                            for s in (split, base_split))

    def block(lo: int) -> dict[str, tuple]:
        rows = order[lo:lo + ALIGN_BLOCK]
        own = None if self_ids is None else torch.from_numpy(self_ids[rows])
        return _aligned_block(split, base_split, indices[rows], torch.from_numpy(_compact(cand[rows])), own, base,
                              nb.unique, k, group, finite)

    starts = range(0, len(indices), ALIGN_BLOCK)
    out: dict[str, list] = {}
    with torch.no_grad(), scan_progress(f"leakage: aligned look ({split.name})", len(indices)) as tick:
        # strict: zip asks the pool's generator for one more result, so it runs to its end (threads given back) here
        for lo, blocks in zip(starts, map_on_cores(block, starts) if cached else map(block, starts), strict=True):
            for look, parts in blocks.items():
                out.setdefault(look, []).append(parts)
            tick(min(len(indices), lo + ALIGN_BLOCK) - lo)
    looks = {}
    for look, parts in out.items():
        best, partner, scale = (_unsorted(np.concatenate(x), order) for x in zip(*parts))
        looks[look] = (best, partner, pair_score(best, scale))
    return looks


def _unsorted(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per-sample ``values`` computed in ``order``, put back in the samples' own order."""
    out = np.empty_like(values)
    out[order] = values
    return out


def _compact(cand: np.ndarray) -> np.ndarray:
    """Candidate lists with the missing entries (-1: repeats, none found) moved to the end of each row (order kept)
    and the columns no row uses dropped: the aligned look computes no distance for them."""
    order = np.argsort(cand < 0, axis=1, kind="stable")
    packed = np.take_along_axis(cand, order, 1)
    width = max(1, int((packed >= 0).sum(1).max())) if len(packed) else 1
    return np.ascontiguousarray(packed[:, :width])


#: The sample is also searched shifted by each of these (dy, dx) (pixels), for this many neighbours each: a copy
#: moved by a pixel or two is often not among the nearest of the unshifted sample (thin strokes, crowded classes).
SEARCH_SHIFTS = ((-1.5, -1.5), (-1.5, 1.5), (1.5, -1.5), (1.5, 1.5))
SHIFT_NEIGHBOURS = 12
#: Samples searched shifted at once (bounds the shifted thumbnails and their search: about 15 MB for 3x32x32).
SEARCH_BLOCK = 4096


def with_shifted_neighbours(ctx: Any, split: Any, indices: np.ndarray, cand: np.ndarray, nb: Any) -> np.ndarray:
    """``cand`` with the SHIFT_NEIGHBOURS nearest distinct training samples of every shifted sample appended
    (a candidate found twice is kept once; the repeats become -1). In blocks of SEARCH_BLOCK samples, so the
    shifted thumbnails and their search stay bounded whatever the split's size."""
    from sanitycheck.probing.alignment import window_thumbnails
    from sanitycheck.pipeline.features import as_chw
    from sanitycheck.probing.neighbors import knn, knn_device
    from sanitycheck.engine.progress import scan_progress

    windows = [(1.0, 1.0, dy, dx) for dy, dx in SEARCH_SHIFTS]
    k = min(SHIFT_NEIGHBOURS, len(nb.unique))
    every = np.full((len(indices), cand.shape[1] + len(windows) * k), -1, dtype=np.int64)
    with scan_progress(f"leakage: shifted search ({split.name})", len(indices)) as tick:
        for lo in range(0, len(indices), SEARCH_BLOCK):
            hi = min(len(indices), lo + SEARCH_BLOCK)
            seen = window_thumbnails(as_chw(split.inputs(indices[lo:hi])), windows).numpy()
            _, more = knn(seen.reshape(-1, seen.shape[2]), nb.base, k, seed=ctx.derived_seed("leakage-shifted"),
                          device=knn_device(ctx), index=nb.index)
            block = np.concatenate([cand[lo:hi], more.reshape(hi - lo, -1)], 1)
            order = np.argsort(block, axis=1, kind="stable")
            ranked = np.take_along_axis(block, order, 1)
            repeat = np.zeros_like(block, dtype=bool)
            np.put_along_axis(repeat, order, np.concatenate(
                [np.zeros((hi - lo, 1), bool), ranked[:, 1:] == ranked[:, :-1]], 1), 1)
            block[repeat] = -1
            every[lo:hi] = block
            tick(hi - lo)
    return every


class _Base(NamedTuple):
    """The base split's unit thumbnails in the forms the aligned look compares with, each computed once per look:
    as they are, 4x4, their central cells, per channel (colour images; else None); with squared norms."""

    thumbs: Any
    sq: Any
    coarse: Any
    inner: Any
    colour: Any
    colour_sq: Any


def _aligned_block(split: Any, base_split: Any, indices: np.ndarray, cand: Any, own: Any, base: _Base,
                   unique: np.ndarray, k: int, group: np.ndarray | None = None,
                   finite: bool = False) -> dict[str, tuple]:
    """One block of :func:`aligned_scores`: per look, (best distance, its candidate, the k-th best distance)."""
    import torch

    from sanitycheck.probing.alignment import (central_cells, closest_window, coarse_thumbnails, crop_distance,
                                               per_channel, shift_windows, window_thumbnails)
    from sanitycheck.pipeline.features import as_chw

    windows = shift_windows()
    q = as_chw(split.inputs(indices), finite)
    m = q.shape[0]
    valid = cand >= 0
    c = cand.clamp_min(0)
    seen = window_thumbnails(q, windows)  # (m, windows, d)
    aligned = closest_window(seen, base.thumbs[c], base.sq[c])  # (m, candidates): each candidate's distance at its best shift
    bad = ~valid if own is None else ~valid | (c == own[:, None])
    if own is not None and group is not None:  # nor with the other copies in its own group
        g = torch.from_numpy(group)
        bad |= g[c] == g[own][:, None]
    aligned[bad] = float("inf")
    plain = seen[:, len(windows) // 2]  # the unshifted window
    coarse_q = coarse_thumbnails(plain)
    d4 = (coarse_q[:, None] - base.coarse[c]).norm(dim=2)
    d4[bad] = float("inf")
    d_inner = (central_cells(plain)[:, None] - base.inner[c]).norm(dim=2)
    d_inner[bad] = float("inf")
    z = min(ZOOM_CANDIDATES, c.shape[1])
    pick = torch.cat([aligned.topk(z, dim=1, largest=False).indices, d4.topk(z, dim=1, largest=False).indices,
                      d_inner.topk(z, dim=1, largest=False).indices], 1)
    top = c.gather(1, pick)  # (m, 3z)
    # a copy cropped from the candidate (its window against the sample), or the candidate cropped from the sample;
    # the three ways often pick the same candidate: each (sample, candidate) pair's candidate image is read and
    # searched once
    flat = top.reshape(-1).numpy()
    row = np.repeat(np.arange(m), pick.shape[1])
    _, first, again = np.unique(row * len(unique) + flat, return_index=True, return_inverse=True)
    dc = crop_distance(as_chw(base_split.inputs(unique[flat[first]]), finite), plain[row[first]][:, None])
    dc = dc.reshape(-1)[torch.from_numpy(again.reshape(-1))].reshape(m, -1)
    dq = crop_distance(q, base.thumbs[top])
    refined = torch.minimum(dc, dq)
    refined[bad.gather(1, pick)] = float("inf")
    aligned = aligned.scatter_reduce(1, pick, refined, reduce="amin")
    looks = {"aligned": aligned}
    if base.colour is not None:
        # each channel centred and scaled on its own (a colour cast), under the same shifts
        tinted = closest_window(per_channel(seen, q.shape[1]), base.colour[c], base.colour_sq[c])
        tinted[bad] = float("inf")
        looks["colour"] = tinted
    out = {}
    for look, dist in looks.items():
        v, order = dist.sort(1)
        ids = c.gather(1, order).numpy()
        scale = kth(v.numpy(), k) if group is None else group_kth(v.numpy(), ids, k, group)[0]
        out[look] = (v[:, 0].numpy(), ids[:, 0], scale)
    return out


def group_kth(dist: np.ndarray, idx: np.ndarray, k: int, group: np.ndarray | None = None,
              exclude: tuple[np.ndarray, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a neighbour list (nearest first; an index of -1 or an infinite distance is no neighbour): the
    distance to the k-th nearest neighbour counting each group once (``group[i]``: the group of base row ``i``;
    None: every row its own group) and leaving out the groups in ``exclude`` (each an array with one group id per
    row); and whether k groups were listed. A row with fewer gets the farthest counted neighbour (a smaller scale:
    the verdict errs towards "no duplicate"), or inf with none.

    Groups are the training split's own near-duplicate groups: a cluster of copies of one picture is one
    neighbour, not k of them, so a copy of it in the validation split is still judged against other pictures.
    """
    m, width = idx.shape
    valid = (idx >= 0) & np.isfinite(dist)
    g = np.where(valid, (idx if group is None else group[np.clip(idx, 0, None)]), -1)
    for ex in exclude:
        valid &= g != np.asarray(ex)[:, None]
    if group is not None and width > 1:  # count a group at its nearest member only (its first column of the row)
        order = np.argsort(g, axis=1, kind="stable")
        ranked = np.take_along_axis(g, order, 1)
        again = np.zeros_like(valid)
        np.put_along_axis(again, order, np.concatenate([np.zeros((m, 1), bool), ranked[:, 1:] == ranked[:, :-1]], 1), 1)
        valid &= ~again
    count = np.cumsum(valid, 1)
    found = count[:, -1] >= k if width else np.zeros(m, dtype=bool)
    pos = np.where(found, np.argmax(count >= k, 1), np.argmax(count == count[:, -1:], 1))
    out = dist[np.arange(m), pos] if width else np.full(m, np.inf)
    return np.where(count[:, -1] > 0, out, np.inf) if width else out, found


def kth(dist: np.ndarray, k: int) -> np.ndarray:
    from sanitycheck.probing.neighbors import kth_distance

    return kth_distance(dist, k)


def pair_score(d: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """d / scale, where identical embeddings score 0 and a zero scale (a crowded spot) scores inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(scale > 0, d / scale, np.inf)
    return np.where(d <= 1e-6, 0.0, s)


def duplicate_groups(inverse: np.ndarray, distinct: int, near: np.ndarray) -> tuple[list[list[int]], int]:
    """Groups of samples that are copies of each other: ``(groups, near links used)``.

    ``inverse[i]`` is the distinct input sample ``i`` holds (exact copies share one); ``near`` holds pairs of
    distinct inputs judged near duplicates. Pairs are joined transitively (union-find); each group lists the samples
    of one joined set, largest group first, and only groups of two or more samples are returned.
    """
    parent = np.arange(distinct)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    links = 0
    for a, b in near:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            links += 1
    linked = np.flatnonzero(parent != np.arange(distinct))  # only distinct inputs joined to another need finding
    roots = np.arange(distinct)
    roots[linked] = [find(int(u)) for u in linked]
    member_root = roots[inverse]
    sizes = np.bincount(member_root, minlength=distinct)
    dup = np.flatnonzero(sizes[member_root] > 1)  # members of groups with more than one sample
    order = dup[np.argsort(member_root[dup], kind="stable")]
    bounds = np.flatnonzero(np.diff(member_root[order])) + 1
    groups = [g.tolist() for g in np.split(order, bounds)] if len(order) else []
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups, links


#: Relative scores (score / cutoff: 1 is the cutoff) are binned over [0, HISTOGRAM_TOP] in HISTOGRAM_BINS bins for the
#: evidence's histogram; larger ones are counted as the overflow.
HISTOGRAM_TOP = 2.0
HISTOGRAM_BINS = 40


def score_histogram(relative: np.ndarray, label: str) -> dict:
    """The distribution of relative scores (each sample's best score over its cutoff; at most 1 is flagged) for a
    report to draw: ``{"edges", "counts", "overflow", "cutoff": 1.0, "samples", "label"}``. The counts just above 1
    show how close the next candidates came."""
    finite = relative[np.isfinite(relative)]
    counts, edges = np.histogram(np.clip(finite, 0, None), bins=HISTOGRAM_BINS, range=(0.0, HISTOGRAM_TOP))
    return {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist(),
            "overflow": int((finite > HISTOGRAM_TOP).sum()), "cutoff": 1.0, "samples": int(len(relative)),
            "label": label}


def drop_list(links: list[tuple[tuple[str, int], tuple[str, int]]], keep_order: tuple[str, ...] = ("train", "val")) \
        -> list[dict]:
    """What to remove so that no two duplicates remain and one of each group is kept.

    ``links``: pairs of samples, ``(split, index)`` each, judged duplicates (across or inside splits). They are
    joined transitively into groups; each group keeps one sample: from the first split of ``keep_order`` it has
    members in (by default a training sample: the validation copy goes), the lowest index there; every other
    member is listed with the one kept. Rows ``{"split", "index", "keep_split", "keep_index", "group"}``, in
    ``keep_order`` then index order.
    """
    nodes: dict[tuple[str, int], int] = {}
    for a, b in links:
        nodes.setdefault(a, len(nodes))
        nodes.setdefault(b, len(nodes))
    if not nodes:
        return []
    pairs = np.array([(nodes[a], nodes[b]) for a, b in links], dtype=np.int64)
    inverse = np.arange(len(nodes))
    groups, _ = duplicate_groups(inverse, len(nodes), pairs)
    keys = list(nodes)
    rank = {split: i for i, split in enumerate(keep_order)}
    rows = []
    for g, members in enumerate(groups):
        samples = sorted((keys[m] for m in members), key=lambda s: (rank.get(s[0], len(rank)), s[0], s[1]))
        keep = samples[0]
        rows += [{"split": s, "index": int(i), "keep_split": keep[0], "keep_index": int(keep[1]), "group": g}
                 for s, i in samples[1:]]
    rows.sort(key=lambda r: (rank.get(r["split"], len(rank)), r["split"], r["index"]))
    return rows
