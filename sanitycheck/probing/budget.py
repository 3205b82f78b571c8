"""Budgets from measured cost: how much work an expensive probe may do, sized by what this pipeline's work costs.

A pre-flight is only worth running when it costs less than the training it protects, so the expensive probes
(``influence``'s out-of-fold classifiers, ``augmentation``'s with-augmentation training; the reference training
they share) size their work to a share of one budget instead of fixed step counts:

- :func:`epoch_seconds` ``(ctx) -> float``: one epoch over the training split, estimated from the user's
  training step timed once per run (:func:`sanitycheck.probing.trainer.step_cost`, the measurement the reference
  plan uses too: a fresh model, the user's ``train_step`` on batches of ``batch_size`` in the user's format on the
  configured device, collation included, one warm-up step then two timed).
- :func:`budget_seconds` ``(ctx) -> float``: the seconds the expensive probes share: 30% of an estimated epoch,
  at least :data:`FLOOR_S` and at most :data:`CEILING_S`, times the profile's scale (fast 0.25, thorough 4).
- :func:`time_cap` ``(ctx, seconds) -> float``: a training run's time cap (the reference run and the runs
  compared with it, the memorization runs, the LR range test): its default for an epoch of a minute or more,
  shorter in proportion below, at least :data:`MIN_CAP_S`.
- :func:`fit_budget` ``(seconds, per_unit, default=..., minimum=...) -> int``: how many units (steps, epochs)
  of a measured cost fit ``seconds``, never more than the probe's own default and never fewer than the minimum
  its verdict needs. Work whose default costs less than :data:`NEVER_SHRINK_S` is never shrunk: small
  pipelines (the digits example, the tests) get exactly their defaults, whatever the machine's load.
- :func:`mlp_step_seconds`: one Adam step of the small classifiers of :mod:`sanitycheck.probing.probes`, timed.

Budgets shrink work, never the evidence a verdict needs: each caller keeps a minimum that leaves its decision
rule conclusive, and says in its evidence when the budget cut it (coordinated with the label-shuffle verdict
budgets of the real-pipelines issue, which build on the same helpers).
"""

from __future__ import annotations

import math
import time
from typing import Any

#: The budget is this share of an estimated epoch, within these bounds (seconds, default profile).
EPOCH_SHARE = 0.3
FLOOR_S = 8.0
CEILING_S = 45.0
#: The training probes' time caps are their defaults when one epoch is estimated at this many seconds or more,
#: shorter in proportion for a cheaper epoch ...
FULL_CAPS_EPOCH_S = 60.0
#: ... but never below this (seconds; or the default cap when that is smaller). A check whose verdict the short
#: run cannot decide runs again at the default cap (label-shuffle: ``reference_plan(ctx, full=True)``): PyTorch's
#: MNIST example on 2000 digits with the images permuted is "inconclusive" at 2 s and SC201 at 10 s.
MIN_CAP_S = 2.0
#: Work whose default costs less than this (seconds) keeps its default.
NEVER_SHRINK_S = 3.0


def epoch_seconds(ctx: Any) -> float:
    """Estimated seconds of one epoch of the user's training: the user's step at the config's batch size
    (:func:`sanitycheck.probing.trainer.step_cost`, timed once per run and shared with the reference plan) times
    the steps of one pass over the training split; 0 when the model cannot be trained (nothing to time)."""
    from sanitycheck.engine.errors import SkipCheck
    from sanitycheck.probing.trainer import step_cost

    size = max(1, min(ctx.config.batch_size, len(ctx.train)))
    try:
        cost = step_cost(ctx, size)
    except SkipCheck:
        return 0.0
    return cost.step(size) * math.ceil(len(ctx.train) / size)


def _sync(ctx: Any) -> None:
    if getattr(ctx.device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize(ctx.device)


def budget_seconds(ctx: Any) -> float:
    """The seconds the expensive probes share at this profile (see the module docstring)."""
    epoch = epoch_seconds(ctx)
    return ctx.scale * min(CEILING_S, max(FLOOR_S, EPOCH_SHARE * epoch))


def time_cap(ctx: Any, seconds: float, minimum: float = MIN_CAP_S) -> float:
    """A training probe's time cap: ``seconds`` (its default, already scaled by the profile) when one epoch of the
    user's training is estimated at :data:`FULL_CAPS_EPOCH_S` or more, shorter in proportion for a cheaper epoch
    (so a pre-flight costs less than the epoch it protects), never below ``minimum``. Only a run that would last
    that long is cut: a small model's default steps finish well inside either cap."""
    factor = min(1.0, epoch_seconds(ctx) / FULL_CAPS_EPOCH_S)
    return min(seconds, max(minimum, seconds * factor))


def fit_budget(seconds: float, per_unit: float, *, default: int, minimum: int) -> int:
    """How many units costing ``per_unit`` seconds each fit ``seconds``: at most ``default``, at least
    ``minimum``; ``default`` itself when that costs less than :data:`NEVER_SHRINK_S`."""
    if per_unit <= 0 or default * per_unit <= max(seconds, NEVER_SHRINK_S):
        return default
    return max(minimum, min(default, int(seconds / per_unit)))


def mlp_step_seconds(ctx: Any, dim: int, hidden: int, classes: int, batch_size: int = 256) -> float:
    """Seconds of one Adam step of :func:`sanitycheck.probing.probes.fit_mlp`'s classifier (``dim`` inputs,
    ``hidden`` units, ``classes`` outputs, ``batch_size`` rows) on the configured device; timed once per shape."""

    def compute() -> float:
        import numpy as np

        from sanitycheck.probing.probes import fit_mlp

        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch_size * 4, dim)).astype(np.float32)
        y = rng.integers(0, classes, len(x))
        fit_mlp(x[:batch_size], y[:batch_size], classes, epochs=1, hidden=hidden, seed=0, device=ctx.device)
        best = math.inf
        for _ in range(2):
            start = time.perf_counter()
            fit_mlp(x, y, classes, epochs=2, hidden=hidden, seed=0, batch_size=batch_size, device=ctx.device)
            _sync(ctx)
            best = min(best, (time.perf_counter() - start) / 8)
        return best

    return ctx.shared(f"budget:mlp:{dim}:{hidden}:{classes}:{batch_size}", compute)


__all__ = ["epoch_seconds", "budget_seconds", "time_cap", "fit_budget", "mlp_step_seconds"]
