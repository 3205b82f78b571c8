"""``learning-rate``: an LR range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks";
the "LR finder" of fastai and Lightning) with a verdict on the configured learning rate.

A fresh model is trained with the configured optimizer class and the user's ``train_step`` while the learning
rate grows exponentially, one step at each value, until the loss blows up. The loss-vs-LR curve shows the
steepest-descent region (the LRs at which the loss falls fastest) and the divergence onset (the LR past which
it climbs). The configured LR is compared with both; a verdict needs the shared reference run (300 steps at
the configured LR, see :mod:`sanitycheck.probing.trainer`) to agree, so an LR that merely sits near the edge
of the range test but trains well is not called wrong.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.budget import time_cap
from sanitycheck.probing.trainer import rounded


class Settings(CheckSettings):
    min_lr: float = Field(1e-7, gt=0, description="Learning rate of the range test's first step.")
    max_lr: float = Field(10.0, gt=0, description="Learning rate of its last step (if the loss has not blown up).")
    steps: int = Field(100, ge=20, description="Steps of the range test (scaled by the profile, at least 50).")
    seconds: float = Field(5.0, gt=0, description="Time cap of the range test (scaled by the profile; shorter when "
                           "one epoch of your training is estimated under a minute: sanitycheck.probing.budget).")
    diverge_factor: float = Field(4.0, gt=1, description="The range test stops once the loss's running average "
                                  "exceeds this many times its lowest value (or the loss is NaN/Inf).")
    high_factor: float = Field(1.0, gt=0, description="Too high: the configured LR is above onset / high_factor ...")
    overshoot: float = Field(1.5, gt=1, description="... and the reference run's loss (3-step mean) rose above this "
                             "many times the initial loss, or it ended with no progress, or it became NaN/Inf.")
    low_factor: float = Field(100.0, gt=1, description="Too low: the configured LR is below the steepest-descent "
                              "LR / low_factor ...")
    low_progress: float = Field(0.5, gt=0, lt=1, description="... and the reference run covered less than this "
                                "fraction of the drop the range test achieved.")


CODES = (
    CodeDoc(
        code="SC1301", title="Learning rate above the divergence onset", severity="warning",
        what="LR range test: a fresh model, the configured optimizer class and your train_step, on the shared "
        "training subset (up to 1024 samples); the learning rate grows exponentially from 1e-7 to 10 over 100 "
        "steps (one batch per value; fewer, down to 50, when 100 steps at your measured step cost do not fit 80% of "
        "the time cap, which is raised to fit 50 when they cost at most a fifth of an epoch), stopping once a "
        "running average of the loss (EMA, weight 0.2 on each new step) exceeds 4x its lowest value, or the loss "
        "is NaN/Inf. The curve is then smoothed with a centered "
        "7-step mean; the divergence onset is the LR at its minimum, past which the loss climbs. Decision rule: warning when the configured LR is above the onset "
        "(`high_factor` 1) and the shared reference run at the configured LR (300 steps) confirms it: its "
        "loss became NaN/Inf, or its 3-step mean rose above 1.5x the initial loss (the mean of the range test's "
        "first 10% of steps, when the LR is too small to move anything), or its last 10% of steps average 0.9x "
        "the initial loss or more (no progress). Above the onset without that confirmation is SC1303.",
        why="Past the onset each step overshoots: the loss oscillates or climbs, the model settles in a poor "
        "region or dies (dead ReLUs, a collapsed output), and a long run wastes its budget recovering from "
        "its first steps.",
        example="Adam at lr=0.1 on a small CNN: the loss jumps from 2.3 to 8-20 in the first steps, then limps "
        "back or stays at ln C.",
        fix="Lower the learning rate to the steepest-descent region the finding names (or a few times below the "
        "onset), or add warm-up; gradient clipping hides the symptom, not the cause.",
    ),
    CodeDoc(
        code="SC1302", title="Learning rate far below the steepest-descent region", severity="warning",
        what="The range test of SC1301. The steepest-descent region is the one-decade LR window over which the "
        "smoothed loss falls the most (before its minimum); its geometric center is reported. Decision rule: "
        "warning when the configured LR is below that center / 100 (`low_factor`) and the shared reference "
        "run at the configured LR (300 steps) confirms it: its lowest 3-step-mean loss covered less than half "
        "(`low_progress`) of the drop from the initial loss to the range test's minimum. Below without that "
        "confirmation is SC1303.",
        why="Two orders of magnitude below where the loss falls fastest, training crawls: a budget of epochs "
        "buys what a few would at a sensible rate, and a run that looks converged has barely started.",
        example="Adam at lr=1e-6 on an MLP whose loss falls fastest around 1e-2: 300 steps leave the loss at ln C.",
        fix="Raise the learning rate to the steepest-descent region the finding names (for Adam-like optimizers "
        "usually a few times below it), then check overfit-batch still passes.",
    ),
    CodeDoc(
        code="SC1303", title="LR range test", severity="info",
        what="The range test of SC1301 with its steepest-descent region, divergence onset and the configured "
        "learning rate, as a curve (drawn in the HTML report). Reported when neither warning applies, "
        "including when the configured LR is outside the range but the reference run trains well at it; and "
        "with no verdict when the loss did not fall by 10% of its initial value anywhere in the test, or when "
        "the test's time cap (5 s at the default profile) stopped it first.",
        why="The curve shows how much room the configured learning rate has on either side.",
        example="Adam at lr=1e-3 on a small MLP: steepest descent around 2e-2, onset around 7e-2.",
        fix="Nothing to fix; for speed, a rate near the steepest-descent region (below the onset) is a common "
        "choice, e.g. with a one-cycle schedule.",
    ),
)


@dataclass
class RangeTest:
    lrs: np.ndarray
    losses: np.ndarray  # raw, per step (NaN/Inf kept)
    smoothed: np.ndarray
    initial: float  # mean loss over the first 10% of steps (the model has barely moved)
    minimum: float
    onset: float  # LR at the smoothed minimum
    steepest: float | None  # geometric center of the steepest one-decade window
    steepest_window: tuple[float, float] | None
    stopped: str  # "diverged", "nonfinite", "max_lr", "seconds", "error: ..."
    cap: float = math.nan  # the time cap it ran under (seconds)

    @property
    def drop(self) -> float:
        return self.initial - self.minimum


class LearningRate(Check):
    name = "learning-rate"
    summary = ("the configured learning rate far above the divergence onset or far below the steepest-descent "
               "region of an LR range test, confirmed by a run at the configured rate")
    cost = ("about 0.1-0.5 s for a small model: 100 training steps; plus the shared reference run (300 steps) "
            "when the configured rate is outside the range")
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        if settings.max_lr <= settings.min_lr:
            self.skip(f"max_lr {settings.max_lr:g} is not above min_lr {settings.min_lr:g}")
        test = self._range_test(ctx, settings)
        lr = ctx.learning_rate
        evidence = {
            "configured_lr": lr, "steepest_lr": rounded(test.steepest), "onset_lr": rounded(test.onset),
            "steepest_window": [rounded(v) for v in test.steepest_window] if test.steepest_window else None,
            "initial_loss": rounded(test.initial), "min_loss": rounded(test.minimum), "steps": len(test.lrs),
            "stopped_by": test.stopped, "optimizer": _optimizer_name(ctx), "user_train_step": ctx.has_user_step,
            **_curve_evidence(test, lr),
        }
        if test.stopped == "seconds" and (test.steepest is None or lr > test.lrs[-1]):
            yield self.finding(
                "SC1303", f"The LR range test reached only lr {test.lrs[-1]:.2g} in {len(test.lrs)} step"
                f"{'s' if len(test.lrs) > 1 else ''} before its "
                f"time cap ({test.cap:.3g} s): no verdict on the learning rate {lr:g}.",
                evidence=evidence, fix="Raise checks.learning-rate.seconds, run with --profile thorough, or on a GPU.")
            return
        if not math.isfinite(test.drop) or test.drop < 0.1 * abs(test.initial) or test.steepest is None:
            yield self.finding(
                "SC1303", f"In the LR range test ({test.lrs[0]:.0e} to {test.lrs[-1]:.2g}) the loss never fell by "
                f"10% of its initial {test.initial:.4g} (lowest {test.minimum:.4g}): no verdict on the learning "
                "rate (overfit-batch and gradients say whether the model can learn at all).", evidence=evidence)
            return

        if lr > test.onset / settings.high_factor:
            ref = self._reference(ctx, test, settings)
            evidence.update(ref)
            factor = lr / test.onset
            if ref["reference_unstable"]:
                yield self.finding(
                    "SC1301", f"The configured learning rate {lr:g} is {factor:.3g}x the divergence onset of the LR "
                    f"range test ({test.onset:.2g}: past it the loss climbs; it falls fastest around "
                    f"{test.steepest:.2g}). Trained at {lr:g}, the reference run {ref['reference_verdict']}.",
                    evidence=evidence,
                    fix=f"Lower the learning rate to about {_nice(test.steepest)} (the steepest-descent region; "
                    f"at most {_nice(test.onset / 3)}, a third of the onset), or add warm-up.",
                )
                return
            note = (f"The configured {lr:g} is {factor:.3g}x the onset, but the reference run at {lr:g} trained "
                    f"without overshooting: it {ref['reference_verdict']}.")
        elif lr < test.steepest / settings.low_factor:
            ref = self._reference(ctx, test, settings)
            evidence.update(ref)
            factor = test.steepest / lr
            if ref["reference_progress"] is not None and ref["reference_progress"] < settings.low_progress:
                yield self.finding(
                    "SC1302", f"The configured learning rate {lr:g} is {factor:.3g}x below the steepest-descent "
                    f"region of the LR range test (centered at {test.steepest:.2g}, onset {test.onset:.2g}). "
                    f"Trained at {lr:g}, the reference run {ref['reference_verdict']}.",
                    evidence=evidence,
                    fix=f"Raise the learning rate towards {_nice(test.steepest)} (the steepest-descent region), "
                    f"staying below the onset {test.onset:.2g}.",
                )
                return
            note = (f"The configured {lr:g} is {factor:.3g}x below the steepest-descent region, but the reference "
                    f"run at {lr:g} {ref['reference_verdict']}.")
        else:
            note = (f"The configured {lr:g} is {test.steepest / lr:.2g}x below the steepest-descent region and "
                    f"{test.onset / lr:.2g}x below the onset." if lr <= test.steepest else
                    f"The configured {lr:g} is between the steepest-descent region and the onset "
                    f"({test.onset / lr:.2g}x below it).")
        yield self.finding(
            "SC1303", f"LR range test ({_optimizer_name(ctx)}, {len(test.lrs)} steps): the loss falls fastest "
            f"around {test.steepest:.2g} and starts to climb past {test.onset:.2g}. {note}", evidence=evidence)

    # ------------------------------------------------------------------------------------- the test

    def _range_test(self, ctx: Any, settings: Settings) -> RangeTest:
        import time

        from sanitycheck.probing.numerics import flush_denormal
        from sanitycheck.probing.trainer import reference_plan

        indices = reference_plan(ctx).train_indices
        size = max(1, min(ctx.config.batch_size, len(indices)))
        steps, cap = _steps_and_cap(ctx, settings, size)
        lrs = settings.min_lr * (settings.max_lr / settings.min_lr) ** (np.arange(steps) / (steps - 1))
        model = ctx.make_model("learning-rate")
        if not any(p.requires_grad for p in model.parameters()):
            self.skip("the model has no trainable parameters (see gradients, SC1002)")
        optimizer = ctx.make_optimizer(model, lr=float(lrs[0]))
        if not all("lr" in g for g in optimizer.param_groups):
            self.skip(f"{type(optimizer).__name__} has no 'lr' in its param_groups to vary")
        order = ctx.rng("learning-rate:batches")
        queue = np.array([], dtype=np.int64)
        losses: list[float] = []
        stopped, ema, best = "max_lr", None, math.inf
        start = time.perf_counter()
        with flush_denormal():
            for i, lr in enumerate(lrs):
                for group in optimizer.param_groups:
                    group["lr"] = float(lr)
                if len(queue) < size:
                    queue = np.concatenate([queue, order.permutation(len(indices))])
                positions, queue = queue[:size], queue[size:]
                try:
                    loss = ctx.step(model, optimizer, ctx.batch(ctx.train, indices[positions]))
                except Exception as exc:  # a step that checks for NaN and raises, at an absurd rate
                    if i < 10:
                        raise
                    stopped = f"error: the step raised {type(exc).__name__} at lr {lr:.2g}"
                    break
                losses.append(loss)
                if not math.isfinite(loss):
                    stopped = "nonfinite"
                    break
                ema = loss if ema is None else 0.8 * ema + 0.2 * loss
                best = min(best, ema)
                if i >= 10 and ema > settings.diverge_factor * best:
                    stopped = "diverged"
                    break
                if time.perf_counter() - start > cap and i + 1 < steps:
                    stopped = "seconds"
                    break
        return dataclasses.replace(_analyze(lrs[:len(losses)], np.array(losses, dtype=np.float64), stopped), cap=cap)

    def _reference(self, ctx: Any, test: RangeTest, settings: Settings) -> dict[str, Any]:
        """How the shared reference run (the configured LR) went, measured against the range test's losses."""
        from sanitycheck.probing.trainer import reference_model

        ref = reference_model(ctx)
        losses = np.array(ref.losses, dtype=np.float64)
        finite = losses[np.isfinite(losses)]
        out: dict[str, Any] = {"reference_steps": ref.steps, "reference_peak": None, "reference_final": None,
                               "reference_progress": None, "overshoot": settings.overshoot}
        if ref.stopped == "nonfinite" or len(finite) == 0:
            out.update(reference_unstable=True, reference_verdict=f"reached a NaN/Inf loss at step {ref.steps}")
            return out
        means = np.convolve(finite, np.ones(3) / 3, mode="valid") if len(finite) >= 3 else finite
        peak, low = float(means.max()), float(means.min())
        tail = float(finite[-max(1, len(finite) // 10):].mean())
        progress = (test.initial - low) / test.drop if test.drop > 0 else None
        out.update(reference_peak=rounded(peak), reference_final=rounded(tail),
                   reference_progress=rounded(progress) if progress is not None else None)
        if peak > settings.overshoot * test.initial:
            out.update(reference_unstable=True, reference_verdict=f"overshot: its loss rose to {peak:.3g} "
                       f"(3-step mean), {peak / test.initial:.2g}x the initial {test.initial:.3g}, and ended at {tail:.3g}")
        elif tail >= 0.9 * test.initial:
            out.update(reference_unstable=True, reference_verdict=f"made little progress: {ref.steps} steps ended at "
                       f"{tail:.3g} against an initial {test.initial:.3g}")
        else:
            out.update(reference_unstable=False, reference_verdict=f"went from {test.initial:.3g} to {tail:.3g} in "
                       f"{ref.steps} steps, lowest 3-step mean {low:.3g} ({progress:.0%} of the range test's drop)")
        return out


#: The range test's fewest steps. Sized to its time cap at the measured step cost, it sweeps the same 1e-7 to 10
#: in fewer, larger steps rather than stop part-way with no verdict (a CIFAR-sized conv net at 0.14 s a step
#: reached lr 3e-5 in its 4.7 s cap). Not fewer than 50: each step's loss lags its LR, so larger steps place the
#: onset later. Measured on a small CNN with Adam: onset 0.022 in 100 steps, 0.036 in 50, 0.12 in 30 (its LR
#: of 0.1, 100x too high, then looks fine).
MIN_STEPS = 50
#: Steps are planned to fill this share of the cap: the cap stays a guard against a slower step than measured.
CAP_SHARE = 0.8
#: The cap is raised to fit MIN_STEPS when that costs at most this share of an estimated epoch.
EPOCH_SHARE = 0.2


def _steps_and_cap(ctx: Any, settings: Settings, size: int) -> tuple[int, float]:
    """The range test's steps and time cap. Its default steps (scaled by the profile, at least MIN_STEPS) when
    they fit CAP_SHARE of its cap at the user's measured step cost (:func:`sanitycheck.probing.budget.step_cost`);
    else as many as fit, at least MIN_STEPS, the cap raised to fit those when that costs at most EPOCH_SHARE of an
    estimated epoch (a slower step: the cap stops the test, with no verdict)."""
    from sanitycheck.probing.budget import epoch_seconds, step_seconds

    steps = max(MIN_STEPS, ctx.budget(settings.steps))
    cap = time_cap(ctx, settings.seconds * ctx.scale, steps, size)
    per_step = step_seconds(ctx, size)
    if per_step is None:  # nothing to time (an untrainable model): the range test itself says why
        return steps, cap
    fit = int(CAP_SHARE * cap / per_step)
    if fit >= steps:
        return steps, cap
    needed = MIN_STEPS * per_step / CAP_SHARE
    if needed <= EPOCH_SHARE * epoch_seconds(ctx):
        cap = max(cap, needed)
    return max(MIN_STEPS, fit), cap


def _analyze(lrs: np.ndarray, losses: np.ndarray, stopped: str, half_window: int = 3) -> RangeTest:
    finite = np.where(np.isfinite(losses), losses, np.nan)
    n = len(losses)
    smoothed = np.array([np.nanmean(finite[max(0, i - half_window):i + half_window + 1])
                         if np.isfinite(finite[max(0, i - half_window):i + half_window + 1]).any() else np.nan
                         for i in range(n)])
    head = finite[:max(3, n // 10)]
    initial = float(np.nanmean(head)) if np.isfinite(head).any() else math.nan
    if not np.isfinite(smoothed).any():
        return RangeTest(lrs, losses, smoothed, initial, math.nan, float(lrs[0]) if n else math.nan, None, None, stopped)
    i_min = int(np.nanargmin(smoothed))
    log = np.log10(lrs)
    best, window = -math.inf, None
    for i in range(i_min):  # the one-decade window (ending by the minimum) over which the loss falls most
        j = min(int(np.searchsorted(log, log[i] + 1.0)), i_min)
        if j <= i:
            continue
        fall = smoothed[i] - smoothed[j]
        if np.isfinite(fall) and fall > best:
            best, window = fall, (i, j)
    steepest = float(10 ** ((log[window[0]] + log[window[1]]) / 2)) if window and best > 0 else None
    return RangeTest(lrs, losses, smoothed, initial, float(smoothed[i_min]), float(lrs[i_min]), steepest,
                     (float(lrs[window[0]]), float(lrs[window[1]])) if steepest else None, stopped)


def _curve_evidence(test: RangeTest, lr: float, points: int = 100) -> dict[str, Any]:
    """The curve in the form the HTML report draws: ``curves`` over ``curve_x`` (log axis) with ``markers``."""
    stride = max(1, math.ceil(len(test.lrs) / points))
    keep = list(range(0, len(test.lrs), stride))
    if keep and keep[-1] != len(test.lrs) - 1:
        keep.append(len(test.lrs) - 1)
    markers = {"configured": lr, "onset": rounded(test.onset)}
    if test.steepest is not None:
        markers["steepest"] = rounded(test.steepest)
    return {
        "curves": {"loss": [rounded(float(test.losses[i])) for i in keep],
                   "smoothed": [rounded(float(test.smoothed[i])) for i in keep]},
        "curve_x": [rounded(float(test.lrs[i])) for i in keep], "curve_x_label": "learning rate",
        "markers": markers,
    }


def _optimizer_name(ctx: Any) -> str:
    target = ctx.config.optimizer.target
    return target.rsplit(":", 1)[-1] if isinstance(target, str) else getattr(target, "__name__", str(target))


def _nice(value: float) -> str:
    return f"{float(f'{value:.1g}'):g}"


@hookimpl
def sanitycheck_checks():
    return [LearningRate()]
