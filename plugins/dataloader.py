"""``dataloader``: the plumbing between the dataset and the training step.

Class-sorted data fed in order (every batch one class), validation labels that change between reads,
DataLoader workers that replay the same random augmentation, a tiny last batch feeding BatchNorm, and
loading that measurably speeds up with worker processes (or pinned memory on CUDA).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.trainer import rounded as _r

#: How many of the loader's batches (in its own order) the class-sortedness test looks at.
SORT_BATCHES = 100


class Settings(CheckSettings):
    speed_seconds: float = Field(
        1.0, gt=0, description="Time spent measuring the loader's speed (each of single-process and workers).")
    speedup: float = Field(1.5, gt=1, description="Suggest num_workers when worker processes load this many "
                                                  "times faster (measured).")


CODES = (
    CodeDoc(
        code="SC1201", title="Train loader yields single-class batches (sorted data, no shuffle)", severity="error",
        what="Not for a streaming IterableDataset (it has no sampler: it yields in its own order). "
        "Takes the training DataLoader's own batch order (its sampler; no data is read) for up to 100 batches "
        "and measures the mean share of each batch's most common class. The same is computed for a seeded random "
        "order with the same batch size. Decision rule: flagged when the loader's share is more than halfway from "
        "the shuffled share to 1 (observed - shuffled >= 0.5 x (1 - shuffled)).",
        why="Batches of one class pull the weights towards that class, then the next: training oscillates, "
        "BatchNorm statistics are per-class, and the model ends up biased to the last classes seen.",
        example="DataLoader(dataset_sorted_by_label, batch_size=32) with shuffle left at its default (False).",
        fix="Pass shuffle=True (or a RandomSampler / a shuffled sampler) to the training DataLoader.",
    ),
    CodeDoc(
        code="SC1202", title="Train loader does not shuffle", severity="info",
        what="Reported when the training DataLoader's sampler is a SequentialSampler but the batches are not "
        "class-sorted (see SC1201): every epoch sees the samples in the same order.",
        why="A fixed order makes consecutive updates correlated the same way every epoch; shuffling is the default "
        "assumption of SGD.",
        example="DataLoader(train_set, batch_size=64) without shuffle=True.",
        fix="Pass shuffle=True to the training DataLoader.",
    ),
    CodeDoc(
        code="SC1203", title="Validation labels change between reads", severity="error",
        what="Reads up to 64 validation samples a second time and compares the targets with the first read. "
        "Decision rule: any changed target is a finding; a warning instead of an error when every changed target "
        "came with a changed input (a split drawn or mixed at each read, not a label drawn for the same input).",
        why="Validation metrics computed on labels that change every read are noise: model selection and early "
        "stopping on them are meaningless.",
        example="A dataset whose __getitem__ applies a random label-mixing augmentation (mixup, label smoothing "
        "by sampling) on the validation split too.",
        fix="Build the validation dataset without random transforms; apply label augmentations in training only.",
    ),
    CodeDoc(
        code="SC1204", title="DataLoader workers repeat the same random augmentation", severity="warning",
        what="When the training DataLoader uses worker processes and the dataset is random (the same index read "
        "twice differs), the same batch of indices is loaded by two workers, and again in a second epoch, with "
        "the loader's own worker_init_fn. Decision rule: identical inputs from two workers, or from two epochs, "
        "are a finding.",
        why="Forked workers start from the same copy of the random state: a NumPy RandomState kept on the dataset, "
        "or a worker_init_fn that seeds with a constant, makes every worker (and every epoch) produce the same "
        "'random' augmentations, so the model sees far fewer distinct inputs than you think.",
        example="worker_init_fn=lambda w: np.random.seed(0); or self.rng = np.random.RandomState(0) in the "
        "dataset's __init__ and self.rng.rand() in __getitem__.",
        fix="Seed per worker and per epoch from torch's seed: in worker_init_fn, "
        "np.random.seed(torch.initial_seed() % 2**32) (or create the RNG there), and draw randomness from it.",
    ),
    CodeDoc(
        code="SC1205", title="Tiny last batch feeds BatchNorm", severity="warning",
        what="When the model has BatchNorm layers, the training loader's last batch (dataset size modulo batch "
        "size, unless drop_last) is checked. Decision rule: 1 sample is an error (BatchNorm1d cannot train on it, "
        "BatchNorm2d gets meaningless statistics); 2 or 3 samples with a batch size of at least 16 is a warning.",
        why="BatchNorm normalizes with the batch's own mean and variance; from one to three samples those are "
        "noise, and the running statistics used at evaluation are updated with them every epoch.",
        example="1025 training samples, batch_size=32, drop_last=False: the last batch has 1 sample.",
        fix="Pass drop_last=True to the training DataLoader, or choose a batch size that divides the dataset.",
    ),
    CodeDoc(
        code="SC1206", title="Loading would be faster with worker processes or pinned memory", severity="info",
        what="When the training DataLoader loads in the main process (num_workers=0), the time to load its batches "
        "is measured (about 1 s), then the same batches with 2 worker processes. Decision rule: a hint when "
        "workers load at least 1.5x faster (measured, setting `speedup`). On CUDA with pin_memory=False, the "
        "host-to-device copy of one batch is timed from pageable and pinned memory; a hint when pinned is at "
        "least 1.3x faster.",
        why="A training step waiting for data wastes the accelerator: the loading time adds to every step.",
        example="An image dataset that decodes and augments in __getitem__, loaded with num_workers=0.",
        fix="Set num_workers (e.g. to the number of CPU cores) and persistent_workers=True; on CUDA set "
        "pin_memory=True.",
    ),
)


class Dataloader(Check):
    name = "dataloader"
    summary = ("train loader not shuffled (single-class batches), validation labels that change between reads, "
               "workers repeating augmentations, a tiny last batch with BatchNorm, loading speed hints")
    cost = "under 1 s without a DataLoader; 1-3 s with one (two short timed loads, one worker probe)"
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        from torch.utils.data import IterableDataset

        loader = ctx.train.loader
        # the order, worker and speed probes replay the loader's own sampler by index; a streaming
        # IterableDataset has none (it yields in its own order)
        indexed = loader is not None and not isinstance(loader.dataset, IterableDataset)
        if indexed:
            yield from self._order(ctx, loader)
        if ctx.val is not None:
            yield from self._val_labels(ctx)
        if indexed and loader.num_workers > 0:
            yield from self._workers(ctx, loader)
        yield from self._last_batch(ctx, loader)
        if indexed and loader.num_workers == 0:
            yield from self._speed(ctx, loader, settings)

    # ------------------------------------------------------------------------------------- order

    def _order(self, ctx: Any, loader: Any):
        from torch.utils.data import SequentialSampler

        sequential = isinstance(loader.sampler, SequentialSampler)
        targets = ctx.train.data_pass().targets
        batches = _loader_batches(loader, ctx.train.n)
        classes = ctx.task == "classification" and targets is not None and targets.ndim == 1
        if classes and batches:
            observed = _majority_share(targets, batches)
            perm = ctx.rng("dataloader:order").permutation(ctx.train.n)
            sizes = np.cumsum([len(b) for b in batches])[:-1]
            shuffled = _majority_share(targets, [list(b) for b in np.split(perm[:sum(map(len, batches))], sizes)])
            if observed - shuffled >= 0.5 * (1 - shuffled):
                pure = [b for b in batches if len(set(targets[b].tolist())) == 1]
                yield self.finding(
                    "SC1201", f"In the training loader's own order, a batch's most common class makes up "
                    f"{observed:.0%} of it on average ({len(pure)} of the first {len(batches)} batches hold a "
                    f"single class); a shuffled order gives {shuffled:.0%}. The data is sorted by class and the "
                    f"loader {'does not shuffle' if sequential else 'keeps that order'}.",
                    samples={"train": [int(i) for b in pure[:3] for i in b][:1000]},
                    evidence={"majority_share": _r(observed), "shuffled_majority_share": _r(shuffled),
                              "single_class_batches": len(pure), "batches_examined": len(batches),
                              "sampler": type(loader.sampler).__name__,
                              "first_batches_classes": [sorted(set(targets[b].tolist())) for b in batches[:5]]},
                )
                return
        if sequential:
            yield self.finding(
                "SC1202", f"The training DataLoader uses a SequentialSampler: every epoch feeds the {ctx.train.n} "
                "samples in the same order.", evidence={"sampler": "SequentialSampler"},
            )

    # ---------------------------------------------------------------------------------- val labels

    def _val_labels(self, ctx: Any):
        from sanitycheck.pipeline.rereads import rereads

        probe = rereads(ctx, ctx.val)
        if probe.targets_random:
            changed = probe.indices[probe.target_changed]
            # a new target for the same input is a label drawn at random; a new input with it is another sample
            # (a split generated at each read, as PyTorch's regression example draws its data) or a mix of two
            drawn = bool(probe.input_changed[probe.target_changed].all())
            yield self.finding(
                "SC1203", f"{len(changed)} of {len(probe.indices)} validation samples read twice came back with a "
                "different target" + (", and a different input with it: the validation split draws new samples (or "
                "mixes them) at every read, so each validation pass scores other ones." if drawn else "."),
                samples={"val": [int(i) for i in changed]},
                evidence={"probed": len(probe.indices), "changed": len(changed), "inputs_changed_too": drawn},
                severity="warning" if drawn else None,
            )

    # ------------------------------------------------------------------------------------- workers

    def _workers(self, ctx: Any, loader: Any):
        from torch.utils.data import DataLoader

        from sanitycheck.pipeline.tensors import to_numpy
        from sanitycheck.pipeline.rereads import rereads

        probe = rereads(ctx, ctx.train)
        if not probe.inputs_random:
            return  # a deterministic dataset cannot repeat a random augmentation
        batch = [int(i) for i in probe.indices[:8]]
        workers = min(2, loader.num_workers)
        plan = [batch] * workers  # batch k goes to worker k: the same indices, one load per worker
        seen = []
        try:
            for _ in range(2):  # two epochs: fresh workers each time (unless the loader keeps them)
                probe_loader = DataLoader(
                    loader.dataset, batch_sampler=plan, num_workers=workers, collate_fn=loader.collate_fn,
                    worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
                )
                seen.append([to_numpy(ctx.train.unpack(b)[0]) for b in probe_loader])
        except Exception:  # workers cannot start here (e.g. an unpicklable dataset under spawn): nothing to measure
            return
        across_workers = workers > 1 and np.array_equal(seen[0][0], seen[0][1])
        across_epochs = np.array_equal(seen[0][0], seen[1][0])
        if not (across_workers or across_epochs):
            return
        where = " and ".join(w for w, hit in (("every worker", across_workers), ("every epoch", across_epochs)) if hit)
        yield self.finding(
            "SC1204", f"The training dataset is random (the same index read twice differs), yet loading the same "
            f"{len(batch)} indices in DataLoader workers gives identical inputs in {where}: the workers replay "
            "one random stream (a RandomState on the dataset, or a worker_init_fn with a constant seed).",
            samples={"train": batch},
            evidence={"num_workers": loader.num_workers, "identical_across_workers": bool(across_workers),
                      "identical_across_epochs": bool(across_epochs),
                      "worker_init_fn": getattr(loader.worker_init_fn, "__name__", None)},
        )

    # ---------------------------------------------------------------------------------- last batch

    def _last_batch(self, ctx: Any, loader: Any):
        from torch import nn

        if loader is not None and (loader.batch_size is None or loader.drop_last):
            return  # a custom batch sampler, or the last batch is dropped
        model = ctx.make_model("dataloader:batchnorm")
        norms = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        size = loader.batch_size if loader is not None else ctx.config.batch_size
        rest = ctx.train.n % size
        if rest == 0 or not (rest == 1 or (rest <= 3 and size >= 16)):
            return
        source = "the training DataLoader" if loader is not None else "batch_size in the config"
        yield self.finding(
            "SC1205", f"{ctx.train.n} training samples in batches of {size} ({source}) leave a last batch of "
            f"{rest} sample{'s' if rest > 1 else ''}, and the model has BatchNorm layers ({', '.join(norms[:3])}"
            f"{' ...' if len(norms) > 3 else ''}): their statistics come from {rest} sample{'s' if rest > 1 else ''} "
            "once per epoch" + (" (BatchNorm1d raises on it)." if rest == 1 else "."),
            severity="error" if rest == 1 else "warning",
            evidence={"samples": ctx.train.n, "batch_size": size, "last_batch": rest, "batchnorm_layers": norms[:10]},
        )

    # --------------------------------------------------------------------------------------- speed

    def _speed(self, ctx: Any, loader: Any, settings: Settings):
        batches = _loader_batches(loader, ctx.train.n, limit=200)
        if len(batches) < 4:
            return
        single, count = _time_loading(loader.dataset, batches, 0, loader.collate_fn, settings.speed_seconds)
        hints, evidence = [], {"seconds_per_batch_main_process": _r(single), "batches_timed": count}
        if single > 2e-3:  # faster than 2 ms a batch, workers cannot win back their start-up and IPC cost
            try:
                multi, count2 = _time_loading(loader.dataset, batches, 2, loader.collate_fn, settings.speed_seconds)
            except Exception:  # workers cannot start here: no measured hint
                return
            evidence.update(seconds_per_batch_2_workers=_r(multi), batches_timed_workers=count2)
            if multi > 0 and single / multi >= settings.speedup:
                hints.append(f"with 2 worker processes a batch loads in {multi * 1e3:.1f} ms instead of "
                             f"{single * 1e3:.1f} ms ({single / multi:.1f}x faster); set num_workers")
        if ctx.device.type == "cuda" and not loader.pin_memory:
            pageable, pinned = _time_copy(ctx, loader, batches[0])
            evidence.update(copy_seconds_pageable=_r(pageable), copy_seconds_pinned=_r(pinned))
            if pinned > 0 and pageable / pinned >= 1.3:
                hints.append(f"copying a batch to {ctx.device} takes {pinned * 1e3:.2f} ms from pinned memory "
                             f"instead of {pageable * 1e3:.2f} ms; set pin_memory=True")
        if hints:
            yield self.finding("SC1206", "Measured on your training loader: " + "; ".join(hints) + ".",
                               evidence=evidence)


# ------------------------------------------------------------------------------------------------- helpers


def _loader_batches(loader: Any, n: int, limit: int = SORT_BATCHES) -> list[list[int]]:
    """The first ``limit`` batches of dataset indices in the loader's own order (no data is read)."""
    if loader.batch_sampler is None:
        return []
    out = []
    for batch in loader.batch_sampler:
        out.append([int(i) for i in batch if int(i) < n])
        if len(out) >= limit:
            break
    return [b for b in out if b]


def _majority_share(targets: np.ndarray, batches: list[list[int]]) -> float:
    shares = []
    for b in batches:
        _, counts = np.unique(targets[b], return_counts=True)
        shares.append(counts.max() / len(b))
    return float(np.mean(shares))


def _time_loading(dataset: Any, batches: list[list[int]], workers: int, collate: Any,
                  seconds: float) -> tuple[float, int]:
    """Seconds per batch to load ``batches`` (stopping after ``seconds``), the first batch not counted (it
    includes starting the workers)."""
    from torch.utils.data import DataLoader

    it = iter(DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate))
    next(it)
    start, count = time.perf_counter(), 0
    for _ in it:
        count += 1
        if time.perf_counter() - start >= seconds:
            break
    del it
    return (time.perf_counter() - start) / max(count, 1), count


def _time_copy(ctx: Any, loader: Any, batch_indices: list[int]) -> tuple[float, float]:
    """Host-to-device copy time of one batch's inputs from pageable and from pinned memory (best of 10)."""
    import torch

    x = ctx.train.unpack(ctx.train.collate(batch_indices))[0]
    if not isinstance(x, torch.Tensor) or x.device.type != "cpu":  # a dataset already on the GPU copies nothing
        return 0.0, 0.0
    x = x.contiguous()
    pinned = x.pin_memory()

    def best(t: Any) -> float:
        times = []
        for _ in range(10):
            torch.cuda.synchronize(ctx.device)
            start = time.perf_counter()
            t.to(ctx.device, non_blocking=True)
            torch.cuda.synchronize(ctx.device)
            times.append(time.perf_counter() - start)
        return min(times)

    return best(x), best(pinned)


@hookimpl
def sanitycheck_checks():
    return [Dataloader()]
