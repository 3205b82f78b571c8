"""Budgets from measured cost: how much work an expensive probe may do, sized by what this pipeline's work costs.

A pre-flight is only worth running when it costs less than the training it protects, so the expensive probes
(``influence``'s out-of-fold classifiers, ``augmentation``'s with-augmentation training; the reference training
they share) size their work to a share of one budget instead of fixed step counts:

- :func:`step_cost` ``(ctx, batch_size) -> StepCost``: the user's training step timed once per run and batch size
  (:func:`measure_step_cost`: a fresh model, the user's ``train_step`` on batches in the user's format on the
  configured device, collation included, one warm-up step then the fastest of 2 to MAX_TIMED timed ones, and one
  evaluation batch): the one measurement the reference plan (:mod:`sanitycheck.probing.trainer`) and every budget
  here use.
- :func:`epoch_seconds` ``(ctx) -> float``: one epoch over the training split at the config's batch size.
- :func:`budget_seconds` ``(ctx) -> float``: the seconds the expensive probes share: 30% of an estimated epoch,
  at least :data:`FLOOR_S` and at most :data:`CEILING_S`, times the profile's scale (fast 0.25, thorough 4).
- :func:`time_cap` ``(ctx, seconds, steps) -> float``: a training run's time cap (the memorization runs, the LR
  range test): its default for an epoch of a minute or more, shorter in proportion below, at least
  :data:`MIN_CAP_S`. Not the reference run's: label-shuffle's verdicts need its full budget (a 2 s cap let
  PyTorch's MNIST example with permuted images pass in one run of three).
- :func:`step_seconds` ``(ctx, batch_size) -> float | None``: one step at that batch size, from :func:`step_cost`
  (a step of LONG_STEP_S or more at the config's batch size is scaled to other sizes, not timed again).
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
from dataclasses import dataclass
from typing import Any

import numpy as np

from sanitycheck.engine.threads import torch_threads

#: The budget is this share of an estimated epoch, within these bounds (seconds, default profile).
EPOCH_SHARE = 0.3
FLOOR_S = 8.0
CEILING_S = 45.0
#: The training probes' time caps are their defaults when one epoch is estimated at this many seconds or more,
#: shorter in proportion for a cheaper epoch ...
FULL_CAPS_EPOCH_S = 60.0
#: ... but never below this (seconds; or the default cap when that is smaller).
MIN_CAP_S = 2.0
#: A run whose default work fits in this share of its short cap keeps its default cap (see time_cap).
SAFE_SHARE = 0.6
#: Work whose default costs less than this (seconds) keeps its default.
NEVER_SHRINK_S = 3.0
#: A step shorter than this (seconds) on the run's threads is dispatch-bound: it is also timed on one thread
#: (enough steps to fill ONE_THREAD_PROBE_S each way), and training uses one thread when that is at least
#: ONE_THREAD_GAIN faster (see :func:`training_threads`).
SHORT_STEP_S = 0.01
ONE_THREAD_PROBE_S = 0.05
ONE_THREAD_GAIN = 0.8
#: A warm-up step at least this long (seconds) is followed by one timed step instead of two: a step of seconds (an
#: LBFGS step of 20 evaluations on PyTorch's time-sequence example: 15 s) is timed precisely enough by one.
LONG_STEP_S = 1.0
#: Shorter steps are timed 2 to MAX_TIMED times, as many as fill TIMING_S seconds, and the fastest counts: the mean
#: of two varied 5x between runs of the same 150-sample MLP in a test suite on a loaded 2-core VM (a pause of the
#: machine in one of them), which fitted its reference plan to 205 steps in one run of six and hid its overfitting.
TIMING_S = 0.1
MAX_TIMED = 10


@dataclass(frozen=True)
class StepCost:
    """What one training step and one evaluated sample cost on this machine, measured with the user's step."""

    #: Seconds per step at any batch size (the step's fixed overhead) and per sample in a step.
    base: float
    per_sample: float
    #: Seconds per sample of an evaluation (forward pass only).
    eval_per_sample: float
    #: True when the step raised at the smaller batch size (then only the config's batch size is used).
    also_failed: bool = False
    #: torch threads the user's model trains on: 1 when its short step was faster on one thread, else 0 (the
    #: run's thread policy).
    threads: int = 0

    def step(self, batch_size: int) -> float:
        return self.base + self.per_sample * batch_size


def step_cost(ctx: Any, batch_size: int) -> StepCost:
    """The user's step at ``batch_size`` on usable training samples, timed once per run and batch size: the one
    measurement the reference plan and the probes' budgets (:mod:`sanitycheck.probing.budget`) share."""

    def compute() -> StepCost:
        pool = ctx.usable_indices(ctx.train)
        if len(pool) == 0:
            pool = np.arange(len(ctx.train))
        return measure_step_cost(ctx, pool, min(batch_size, len(pool)), also=None)

    return ctx.shared(f"trainer:step-cost:{batch_size}", compute)


def measure_step_cost(ctx: Any, indices: np.ndarray, batch_size: int, also: int | None,
                      known: StepCost | None = None) -> StepCost:
    """Time the user's step on a throwaway model: one warm-up step, then the fastest of 2 to MAX_TIMED timed steps at
    ``batch_size`` (as many as fill TIMING_S; one when the warm-up took LONG_STEP_S or more), the same at ``also``
    (to separate the per-step overhead from the per-sample cost), and one evaluation batch (after a warm-up one).
    ``known``: the cost at ``batch_size`` measured already (:func:`step_cost`): only ``also`` is timed (after a
    warm-up step of its own)."""
    import torch

    rng = ctx.rng("trainer:timing")
    from sanitycheck.probing.numerics import flush_denormal

    with flush_denormal():
        model = ctx.make_model("trainer:timing")
        if not any(p.requires_grad for p in model.parameters()):  # as in train(): nothing can train, nothing to time
            from sanitycheck.engine.errors import SkipCheck

            raise SkipCheck("the model has no trainable parameters, so it cannot be trained (overfit-batch reports SC304)")
        optimizer = ctx.make_optimizer(model)

        def timed(size: int, repeats: int) -> float:
            """The fastest of ``repeats`` steps at ``size``: the step's own cost, without the pauses other work on
            the machine added to some of them (see TIMING_S)."""
            return _fastest(lambda: ctx.step(model, optimizer, ctx.batch(
                ctx.train, np.sort(rng.choice(indices, size, replace=False)))), ctx, repeats)

        def warmed(size: int) -> float:
            """Seconds of a step at ``size`` after a warm-up one (first-call allocations, lazy initialization)."""
            return timed(size, _repeats(timed(size, 1)))

        if known is not None:
            big, threads, per_eval = known.step(batch_size), known.threads, known.eval_per_sample
        else:
            big = warmed(batch_size)
            threads = 0
            if big < SHORT_STEP_S:
                repeats = int(min(50, max(5, ONE_THREAD_PROBE_S / max(big, 1e-6))))
                big, threads = _one_thread_if_faster(ctx, lambda: timed(batch_size, repeats))
        small, failed = None, False
        if also is not None:
            try:
                small = warmed(also)
            except Exception:  # e.g. a model that hard-codes its batch size: never shrink the batch
                failed = True
        if known is None:
            chunk = np.sort(rng.choice(indices, min(len(indices), max(batch_size, 64)), replace=False))
            was = model.training
            model.eval()

            def evaluate() -> None:
                with torch.no_grad():
                    ctx.outputs(model, ctx.batch(ctx.train, chunk))  # the adapter: loss: model calls model(inputs, targets)

            # a cold first forward in eval mode cost a 150-sample MLP 8x a warm one on this 2-core VM
            per_eval = _fastest(evaluate, ctx, 1 if _fastest(evaluate, ctx, 1) >= LONG_STEP_S else 2) / len(chunk)
            model.train(was)
    if small is None or also is None or also >= batch_size:
        return StepCost(0.0, big / batch_size, per_eval, also_failed=failed, threads=threads)
    per_sample = max(0.0, (big - small) / (batch_size - also))
    return StepCost(max(0.0, small - per_sample * also), per_sample, per_eval, threads=threads)


def _fastest(work: Any, ctx: Any, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` runs of ``work()``."""
    best = math.inf
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        work()
        _sync(ctx)  # CUDA kernels run asynchronously: wait for them before reading the clock
        best = min(best, time.perf_counter() - start)
    return best


def _repeats(warm_up: float) -> int:
    """How many timed runs follow a warm-up run of ``warm_up`` seconds: one after a long one (LONG_STEP_S), else
    enough to fill TIMING_S, 2 to MAX_TIMED."""
    if warm_up >= LONG_STEP_S:
        return 1
    return int(np.clip(TIMING_S / max(warm_up, 1e-6), 2, MAX_TIMED))


def training_threads(ctx: Any) -> Any:
    """A context in which the user's model trains on the threads its measured step ran fastest on
    (:attr:`StepCost.threads`, timed at the config's batch size): one thread for a short, dispatch-bound step,
    else the run's thread policy."""

    def compute() -> int:
        size = max(1, min(ctx.config.batch_size, len(ctx.train)))
        try:
            return step_cost(ctx, size).threads
        except Exception:  # nothing to time (an untrainable model): the training itself says why
            return 0

    return torch_threads(ctx.shared("budget:training-threads", compute))  # decided once, failed timings too


def epoch_seconds(ctx: Any) -> float:
    """Estimated seconds of one epoch of the user's training: the user's step at the config's batch size
    (:func:`step_cost`, timed once per run and shared with the reference plan) times
    the steps of one pass over the training split; 0 when the model cannot be trained (nothing to time)."""
    from sanitycheck.engine.errors import SkipCheck

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


def time_cap(ctx: Any, seconds: float, steps: int | None = None, batch_size: int | None = None,
             minimum: float = MIN_CAP_S, scaled: bool = False) -> float:
    """A training probe's time cap: ``seconds`` (its default, already scaled by the profile) when one epoch of the
    user's training is estimated at :data:`FULL_CAPS_EPOCH_S` or more, shorter in proportion for a cheaper epoch
    (so a pre-flight costs less than the epoch it protects), never below ``minimum``.

    ``steps`` (of ``batch_size``, default the config's): the run's default work. When it fits in
    :data:`SAFE_SHARE` of the short cap at the measured step cost, the run keeps its default cap: the cap is then
    only a guard, and a guard cut close to the work binds on a loaded machine and makes results vary (a small CNN's
    300 reference steps on digits: 269 of them within a 2 s cap while the test suite ran beside it). ``scaled``: that
    step cost is :func:`step_seconds`'s estimate from the config's batch size (no timing at ``batch_size``)."""
    factor = min(1.0, epoch_seconds(ctx) / FULL_CAPS_EPOCH_S)
    short = min(seconds, max(minimum, seconds * factor))
    if steps is not None and short < seconds:
        per_step = step_seconds(ctx, batch_size or ctx.config.batch_size, scaled=scaled)
        if per_step is not None and steps * per_step <= SAFE_SHARE * short:
            return seconds
    return short


def step_seconds(ctx: Any, batch_size: int, scaled: bool = False) -> float | None:
    """Seconds of one step of the user's training at ``batch_size`` (at most the training split's size), from the
    one measured :func:`step_cost`; None when there is nothing to time (an untrainable model: the training itself
    says why). What the training probes size their steps and caps with. ``scaled``: from the cost at the config's
    batch size, scaled by the samples, without timing this size (an estimate where only slow steps matter)."""
    size = max(1, min(batch_size, len(ctx.train)))
    usual = max(1, min(ctx.config.batch_size, len(ctx.train)))
    try:
        known = step_cost(ctx, usual)
        if size != usual and (scaled or known.step(usual) >= LONG_STEP_S):
            # a step of seconds is not timed again at another batch size (two more steps of it): scaled by its samples
            return max(known.step(size), 1e-9)
        return max(step_cost(ctx, size).step(size), 1e-9)
    except Exception:
        return None


def fit_budget(seconds: float, per_unit: float, *, default: int, minimum: int) -> int:
    """How many units costing ``per_unit`` seconds each fit ``seconds``: at most ``default``, at least
    ``minimum``; ``default`` itself when that costs less than :data:`NEVER_SHRINK_S`."""
    if per_unit <= 0 or default * per_unit <= max(seconds, NEVER_SHRINK_S):
        return default
    return max(minimum, min(default, int(seconds / per_unit)))


def mlp_step_seconds(ctx: Any, dim: int, hidden: int, classes: int, batch_size: int = 256) -> float:
    """Seconds of one Adam step of :func:`sanitycheck.probing.probes.fit_mlp`'s classifier (``dim`` inputs,
    ``hidden`` units, ``classes`` outputs, ``batch_size`` rows) on the configured device, on the threads of
    :func:`mlp_threads`; timed once per shape."""
    return _mlp_cost(ctx, dim, hidden, classes, batch_size)[0]


def mlp_threads(ctx: Any, dim: int, hidden: int, classes: int, batch_size: int = 256) -> int:
    """torch threads for :func:`~sanitycheck.probing.probes.fit_mlp`'s classifiers of this shape: 1 when their
    step, timed both ways, is ONE_THREAD_GAIN faster on one thread than on the run's threads, else 0 (the run's
    policy). Use with :func:`torch_threads`."""
    return _mlp_cost(ctx, dim, hidden, classes, batch_size)[1]


def _mlp_cost(ctx: Any, dim: int, hidden: int, classes: int, batch_size: int) -> tuple[float, int]:
    def compute() -> tuple[float, int]:
        import numpy as np

        from sanitycheck.probing.probes import fit_mlp

        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch_size * 4, dim)).astype(np.float32)
        y = rng.integers(0, classes, len(x))
        fit_mlp(x[:batch_size], y[:batch_size], classes, epochs=1, hidden=hidden, seed=0, device=ctx.device)

        def timed() -> float:
            best = math.inf
            for _ in range(2):
                start = time.perf_counter()
                fit_mlp(x, y, classes, epochs=2, hidden=hidden, seed=0, batch_size=batch_size, device=ctx.device)
                _sync(ctx)
                best = min(best, (time.perf_counter() - start) / 8)
            return best

        return _one_thread_if_faster(ctx, timed)

    return ctx.shared(f"budget:mlp:{dim}:{hidden}:{classes}:{batch_size}", compute)


def _one_thread_if_faster(ctx: Any, timed: Any) -> tuple[float, int]:
    """``(seconds, threads)`` of the work ``timed()`` times: on one thread (threads 1) when, on a CPU, it is
    ONE_THREAD_GAIN faster there than on the run's threads, else on the run's threads (threads 0)."""
    import torch

    many = timed()
    if torch.get_num_threads() > 1 and getattr(ctx.device, "type", "cpu") == "cpu":
        with torch_threads(1):
            one = timed()
        if one < ONE_THREAD_GAIN * many:
            return one, 1
    return many, 0


__all__ = ["StepCost", "step_cost", "measure_step_cost", "training_threads", "epoch_seconds", "budget_seconds",
           "time_cap", "step_seconds", "fit_budget", "mlp_step_seconds", "mlp_threads"]
