"""The memorization probe (Zhang et al. 2017): how many steps the model needs to fit a small training subset
with its real labels, and with the labels randomly permuted.

Computed once per run and shared (``ctx.shared``): ``label-shuffle`` reports the ratio (SC203) and
``generalization`` reads it as one sign of overfitting risk; whichever runs first trains, the other reuses it.
The subset size and budget belong to ``label-shuffle``'s settings (``checks.label-shuffle.memorize_*``,
``fit_accuracy``, ``fit_r2``); :func:`plan_from` reads them, so both checks ask for the same plan and hit
the same cached result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sanitycheck.pipeline.context import PipelineContext


#: The probe is not run when its time cap affords fewer steps than this at the measured step cost: a ratio needs
#: the random labels fit as well, and they take several times the real labels' steps (PyTorch's MNIST example:
#: 20 and 45; Zhang et al. 2017), so fewer steps could only time data fit in a dozen. A CIFAR-sized conv net at
#: 0.14 s a step afforded 33 in its 4.7 s cap and spent them fitting nothing (SC203 with no ratio, either way).
MIN_AFFORDABLE_STEPS = 50
#: A ratio on a subset with fewer samples than this outside its most common class says nothing about capacity:
#: permuted labels put as many samples outside it, and fitting either is memorizing a handful of points (breast
#: cancer cut to 3% malignant, 4 of 128 in the subset: real labels 425 steps, random ones 345 on a clean pipeline).
MIN_OTHER_CLASS = 10
#: Classification: the real labels are noise to the model when the shared reference run's held-out accuracy is
#: less than this share of the way from the best constant's (always its most common class) to 1. Fitting the
#: subset is then memorization with real labels too and the ratio says nothing about capacity (a mean-pooled
#: text classifier on 89%-majority real text lines: held-out 0.891 against the constant's 0.891, ratio 0.97-1.19,
#: which read as a memorization warning on a clean pipeline).
MIN_HELD_OUT_SKILL = 0.1


@dataclass(frozen=True)
class MemorizationPlan:
    """Subset size and budget of the probe, before the profile's scaling (``label-shuffle``'s defaults)."""

    memorize_samples: int = 128
    memorize_steps: int = 600
    memorize_seconds: float = 5.0
    fit_accuracy: float = 0.95
    fit_r2: float = 0.9
    #: label-shuffle's warning ratio: the random-label run decides it within this many times the real labels' steps.
    memorize_warn_ratio: float = 1.25


def plan_from(settings: Any) -> MemorizationPlan:
    """The plan from ``label-shuffle``'s settings: a settings object, or the raw ``checks.label-shuffle`` mapping
    (keys it does not set keep their defaults)."""
    fields = MemorizationPlan.__dataclass_fields__
    if isinstance(settings, Mapping):
        values = {k: settings[k] for k in fields if k in settings}
    else:
        values = {k: getattr(settings, k) for k in fields if hasattr(settings, k)}
    return MemorizationPlan(**values)


@dataclass(frozen=True)
class Memorization:
    """What the probe measured. ``steps_random`` is ``None`` when random labels were not fit within the budget
    (then the ratio is a lower bound), or when the real labels were not fit (then there is no ratio). With task:
    sequence nothing is trained (``stopped_real`` is ``not-run``): a text's next tokens cannot be fit."""

    samples: int
    max_steps: int
    fit_threshold: float
    steps_real: int | None
    stopped_real: str
    steps_random: int | None = None
    random_steps_done: int | None = None
    stopped_random: str | None = None
    #: With ``stopped_real`` or ``stopped_random`` "budget" (that run not trained): the steps the time cap affords,
    #: and the cap.
    affordable_steps: int | None = None
    cap_s: float | None = None
    #: Regression: the shared reference model's R^2 on held-out samples (how much of the targets is signal to it).
    held_out_r2: float | None = None
    #: Classification: the subset's samples outside its most common class.
    other_class: int | None = None
    #: Classification: the shared reference model's held-out accuracy, and that of always predicting the held-out
    #: samples' most common class.
    held_out_accuracy: float | None = None
    constant_accuracy: float | None = None

    @property
    def too_few_other_class(self) -> bool:
        """Fewer than MIN_OTHER_CLASS subset samples outside the most common class: the ratio says nothing."""
        return self.other_class is not None and self.other_class < MIN_OTHER_CLASS

    @property
    def noise_either_way(self) -> bool:
        """The real targets are mostly noise to the model, so fitting them is memorization too and a ratio near 1
        says nothing about capacity. Regression: the reference model explains them less than half as well, held
        out, as the probe fits them (R^2 0.9; a 2-hidden-layer MLP on diabetes, held-out R^2 about 0.45: ratio
        1.1-1.2). Classification: its held-out accuracy is less than MIN_HELD_OUT_SKILL of the way from the best
        constant's to 1 (labels permuted, or a model that learns nothing general from them in its run)."""
        if self.held_out_r2 is not None:
            return self.held_out_r2 < self.fit_threshold / 2
        if self.held_out_accuracy is None or self.constant_accuracy is None or self.constant_accuracy >= 1:
            return False
        return self.held_out_skill < MIN_HELD_OUT_SKILL

    @property
    def held_out_skill(self) -> float | None:
        """Classification: the held-out accuracy's share of the way from the best constant's to 1."""
        if self.held_out_accuracy is None or self.constant_accuracy is None or self.constant_accuracy >= 1:
            return None
        return (self.held_out_accuracy - self.constant_accuracy) / (1 - self.constant_accuracy)

    @property
    def ratio(self) -> float | None:
        """Steps to fit random labels / steps to fit real ones (a lower bound when random ones were not fit)."""
        if self.steps_real is None or self.random_steps_done is None:
            return None
        return (self.steps_random or self.random_steps_done) / self.steps_real

    @property
    def ratio_is_lower_bound(self) -> bool:
        return self.steps_random is None

    def as_evidence(self) -> dict[str, Any]:
        return asdict(self)


def memorization(ctx: PipelineContext, plan: MemorizationPlan | None = None) -> Memorization:
    """Run the probe once per run and plan (cached in ``ctx.shared``); see the module docstring."""
    plan = plan or MemorizationPlan()
    key = "memorization:" + ",".join(f"{k}={v}" for k, v in asdict(plan).items())
    return ctx.shared(key, lambda: _measure(ctx, plan))


def _measure(ctx: PipelineContext, plan: MemorizationPlan) -> Memorization:
    from sanitycheck.probing.budget import step_seconds, time_cap
    from sanitycheck.probing.trainer import train

    subset = ctx.sample_indices(ctx.train, plan.memorize_samples, "label-shuffle:memorize")
    steps = ctx.budget(plan.memorize_steps, minimum=20)
    threshold, other_class = _fit_accuracy(ctx, subset, plan.fit_accuracy) if ctx.task == "classification" \
        else (plan.fit_r2, None)
    if ctx.task == "sequence":  # a text's next tokens cannot be fit (one context has several continuations)
        return Memorization(samples=len(subset), max_steps=steps, fit_threshold=threshold, steps_real=None,
                            stopped_real="not-run")
    cap = time_cap(ctx, plan.memorize_seconds * ctx.scale, steps)
    per_step = step_seconds(ctx, min(ctx.config.batch_size, len(subset)))  # the probe's batch: at most the subset
    affordable = None if per_step is None else int(cap / per_step)
    if affordable is not None and affordable < min(steps, MIN_AFFORDABLE_STEPS):
        return Memorization(samples=len(subset), max_steps=steps, fit_threshold=threshold, steps_real=None,
                            stopped_real="budget", affordable_steps=affordable, cap_s=round(cap, 2))
    common = dict(steps=steps, seconds=cap, tag="label-shuffle:memorize", fit_threshold=threshold, fit_every=5,
                  evaluate_train=False)
    real = train(ctx, ctx.train, subset, **common)
    base = dict(samples=len(subset), max_steps=steps, fit_threshold=threshold, steps_real=real.steps_to_fit,
                stopped_real=real.stopped, other_class=other_class)
    if real.steps_to_fit is None:  # no ratio to give
        return Memorization(**base)
    # random labels decide the warning within warn ratio x the real labels' steps: a cap that cannot afford those
    # would stop the run undecided (a transformer on MNIST rows: real labels fit in 80 steps, then 88 random-label
    # steps in its 2 s cap, "more than 1.1")
    need = math.ceil(plan.memorize_warn_ratio * real.steps_to_fit)
    if affordable is not None and affordable < min(steps, need):
        return Memorization(**base, stopped_random="budget", affordable_steps=affordable, cap_s=round(cap, 2))
    targets = ctx.train.data_pass().targets
    noise = train(ctx, ctx.train, subset, labels=ctx.rng("label-shuffle:noise").permutation(targets[subset]),
                  **common)
    return Memorization(**base, steps_random=noise.steps_to_fit, random_steps_done=noise.steps,
                        stopped_random=noise.stopped, **_held_out(ctx))


def _fit_accuracy(ctx: PipelineContext, subset: np.ndarray, share: float) -> tuple[float, int | None]:
    """The training accuracy that counts as fitting ``subset``: ``share`` of the way from what always predicting its
    most common class scores to 1 (at least ``share``). A subset that is 94% one class is otherwise "fit" by that
    constant in a few steps, with real labels and random ones alike (a ratio of 1: SC203 and SC1602 warnings on a
    clean imbalanced pipeline); on balanced classes it is ``share`` + 0.05 x the majority share (0.955 for 10).
    Also the subset's samples outside its most common class (None without class labels)."""
    labels = ctx.class_labels(ctx.train)
    if labels is None:
        return share, None
    ids = labels[subset]
    ids = ids[ids >= 0]
    if not len(ids):
        return share, None
    counts = np.bincount(ids)
    majority = counts.max() / len(ids)
    return float(majority + share * (1 - majority)), int(len(ids) - counts.max())


def _held_out(ctx: PipelineContext) -> dict[str, float]:
    """How much of the real targets is signal to the model: the shared reference model's held-out R^2
    (regression), or its held-out accuracy and the best constant's (classification: the held-out samples' most
    common class id, from :meth:`class_labels`); empty for other targets. Both readers of this probe train the
    reference model anyway."""
    if ctx.task not in ("regression", "classification"):
        return {}
    from sanitycheck.probing.trainer import eval_split_of, reference_model, reference_plan

    evaluation = reference_model(ctx).eval
    if evaluation is None:
        return {}
    if ctx.task == "regression":
        return {"held_out_r2": float(evaluation.score)} if evaluation.metric == "r2" else {}
    labels = ctx.class_labels(eval_split_of(ctx, reference_plan(ctx)))
    if evaluation.correct is None or labels is None:
        return {}  # not one class per sample (per pixel or token, multi-label)
    ids = labels[evaluation.indices]
    ids = ids[ids >= 0]
    if not len(ids):
        return {}
    return {"held_out_accuracy": float(evaluation.accuracy),
            "constant_accuracy": float(np.bincount(ids).max() / len(ids))}
