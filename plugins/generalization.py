"""``generalization``: the overfitting / underfitting outlook of a short run, and the remedies that apply.

The standard answer to "my network does not generalize" is a list of remedies: augmentation, dropout, weight
decay, early stopping, a smaller model, more data. This check measures whether the pipeline shows the
problem within a short budget and lists only the remedies this pipeline does not use yet:

- the shared reference run (:func:`sanitycheck.probing.trainer.reference_model`, 300 steps on up to 1024
  training samples) tracks the held-out loss every 15 steps: validation stops improving while the training
  loss keeps falling = overfitting, with the early-stopping point; with ``data.augment`` set, a run of the
  same plan that applies the augmentation is used instead, since that is how the pipeline trains;
- the memorization ratio of ``label-shuffle`` (shared, trained once per run): random labels memorized about
  as fast as real ones;
- parameters per training sample.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.trainer import rounded


class Settings(CheckSettings):
    best_tolerance: float = Field(0.02, ge=0, lt=1, description="The early-stopping point is the first checkpoint "
                                  "whose held-out loss is within this fraction of the lowest one.")
    best_before: float = Field(0.75, gt=0, lt=1, description="Overfitting: the validation loss was lowest at or "
                               "before this fraction of the run's steps ...")
    train_fall: float = Field(2.0, gt=1, description="... and the training loss fell by at least this factor "
                              "after that point.")
    subset_fraction: float = Field(0.5, gt=0, le=1, description="Report overfitting as a warning only when the run "
                                   "trained on at least this fraction of the training split (else info: a subset "
                                   "overfits sooner than the whole split).")
    memorize_ratio: float = Field(1.25, gt=0, description="Warn when random labels are memorized in fewer than this "
                                  "many times the steps real labels take (label-shuffle's memorization probe).")
    underfit_level: float = Field(0.7, gt=0, lt=1, description="Underfitting: the training loss ends above this "
                                  "fraction of its initial value ...")
    underfit_plateau: float = Field(0.02, gt=0, lt=1, description="... and the last quarter of the run lowered it by "
                                    "less than this fraction of the initial value.")
    params_per_sample: float = Field(1000.0, gt=0, description="List 'a smaller model' as a remedy from this many "
                                     "trainable parameters per training sample.")


CODES = (
    CodeDoc(
        code="SC1601", title="Overfitting within a short run: validation loss stops improving as training loss falls",
        severity="warning",
        what="The shared reference run (the configured model, optimizer and train_step; 300 steps on up to 1024 "
        "training samples at the default profile) records the held-out loss (up to 256 validation samples, 64 "
        "sequences with task: sequence; eval mode) every 1/20 of the run, and the mean training loss in between. "
        "With data.augment set, a run of the same plan with the augmentation applied to each training batch is "
        "used instead. The early-stopping "
        "point is the first checkpoint whose held-out loss is within 2% of the lowest (`best_tolerance`). Decision "
        "rule: warning when that point is at or before 75% of the run (`best_before`) and the training loss fell "
        "at least 2x (`train_fall`) after it, i.e. validation stopped improving (or rose) while training kept "
        "fitting; info instead when the run trained on less than half of the training split "
        "(`subset_fraction`). The finding lists the remedies this pipeline does not use yet (see Fix).",
        why="From that point on the model fits its training samples, not the task: longer training makes the "
        "validation loss worse, and a long run ends with a model worse than one from its first epochs.",
        example="A 300k-parameter MLP trained on 150 digit images with Adam, no dropout, no weight decay, no "
        "augmentation: the validation loss bottoms out after about 100 steps while the training loss keeps "
        "falling towards 0.",
        fix="In order of promise, those that apply: data augmentation (if data.augment is not set), dropout (if "
        "the model has none), weight decay (if it is 0; AdamW with an Adam optimizer), early stopping at the "
        "measured point, a smaller model (1000+ parameters per training sample), more training data.",
    ),
    CodeDoc(
        code="SC1602", title="Random labels are memorized about as fast as real ones", severity="warning",
        what="Reads label-shuffle's memorization probe (shared: trained once per run by whichever check asks "
        "first): steps to fit 128 training samples (95% training accuracy, or R² 0.9) with their real labels and "
        "with permuted labels. Decision rule: warning when the ratio random/real is below 1.25 "
        "(`memorize_ratio`) and the overfitting rule (SC1601) did not fire; not for targets that are mostly "
        "noise to the model, where a ratio near 1 is expected (regression: the reference run's held-out R² below "
        "0.45; classification: its held-out accuracy less than 10% of the way from always predicting the most "
        "common class to 1, as with permuted labels, which label-shuffle reports as SC201), nor when "
        "fewer than 10 of the probe's samples are outside their most common class (fitting either labels is "
        "memorizing those few). Lists the "
        "same remedies as SC1601.",
        why="A model that fits noise as fast as signal has the capacity to memorize its training set; what it "
        "learns then depends on regularization, not on the data.",
        example="A wide MLP on a few hundred noisy samples.",
        fix="The remedies of SC1601 that apply to this pipeline (the finding lists them).",
    ),
    CodeDoc(
        code="SC1603", title="Underfitting: training loss plateaus high", severity="info",
        what="The run of SC1601. Decision rule: info when the training loss (mean over the last 1/20 of the run) "
        "is above 70% of the untrained model's held-out loss (`underfit_level`) and the last quarter of the run "
        "lowered it by less than 2% of that value (`underfit_plateau`), and SC1601 did not fire.",
        why="A model that cannot lower its training loss will not do better on validation data; regularization "
        "makes it worse. It needs capacity, a better learning rate or longer training first.",
        example="A linear model on images; heavy dropout and weight decay on a small network; a learning rate "
        "far too low (see learning-rate).",
        fix="Train longer or with a better learning rate (see learning-rate), use a larger model, and remove "
        "regularization until the training loss falls; check overfit-batch passes.",
    ),
)


class Generalization(Check):
    name = "generalization"
    summary = ("the overfitting/underfitting outlook of a short run (validation loss turning while training "
               "loss falls, the early-stopping point, memorization of random labels), with the remedies that "
               "apply to this pipeline")
    cost = ("reuses the shared reference run and label-shuffle's memorization probe (each trained once per run); "
            "one extra 300-step run when data.augment is set")
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        from sanitycheck.probing.memorization import memorization, plan_from
        from sanitycheck.probing.structure import dropouts
        from sanitycheck.probing.trainer import reference_draw, reference_plan, tracked_indices

        model = ctx.make_model("generalization")
        if not any(p.requires_grad for p in model.parameters()):
            self.skip("the model has no trainable parameters (see gradients, SC1002)")
        drawn = reference_draw(ctx).eval_indices  # known before the step is timed (fitting keeps at least 10 of them)
        if len(drawn) < 10:
            self.skip(f"only {len(drawn)} held-out samples to track the validation loss on")
        plan = reference_plan(ctx)
        run, augmented = self._run(ctx, plan)
        if run.stopped == "nonfinite":
            self.skip(f"the loss became non-finite at step {run.steps} (see learning-rate, overfit-batch, gradients)")
        points = run.tracked
        if len(points) < 4:
            self.skip(f"the run stopped after {run.steps} steps, too few to track the validation loss")

        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        optimizer = ctx.make_optimizer(model)
        decay = max((float(g.get("weight_decay") or 0) for g in optimizer.param_groups), default=0.0)
        has_dropout = [n for n, _ in dropouts(model)]
        per_sample = trainable / max(1, len(ctx.train))
        memo = memorization(ctx, plan_from(ctx.config.checks.get("label-shuffle", {})))

        steps = [p.step for p in points]
        val = np.array([p.held_out_loss for p in points], dtype=np.float64)
        train = np.array([math.nan if p.train_loss is None else p.train_loss for p in points], dtype=np.float64)
        lowest = float(np.nanmin(val)) if np.isfinite(val).any() else math.nan
        # the first checkpoint (nearly) as good as the lowest: on a flat stretch the exact minimum is noise
        best = int(np.flatnonzero(val <= lowest + settings.best_tolerance * abs(lowest))[0]) \
            if math.isfinite(lowest) else len(val) - 1
        subset = len(run.indices) / max(1, len(ctx.train))
        size = max(1, min(ctx.config.batch_size, len(run.indices)))
        epochs = steps[best] * size / max(1, len(run.indices))
        train_end = train[-1]
        overfit = (best >= 1 and steps[best] <= settings.best_before * steps[-1]
                   and np.isfinite(train[best]) and np.isfinite(train_end)
                   and train_end * settings.train_fall <= train[best])
        fast = (memo.ratio is not None and not memo.ratio_is_lower_bound and memo.ratio < settings.memorize_ratio
                and not memo.noise_either_way and not memo.too_few_other_class)

        uses = {"augmentation": ctx.augment is not None, "dropout": has_dropout[:10], "weight_decay": decay}
        evidence = {
            "curves": {"train": [rounded(v) for v in train], "validation": [rounded(v) for v in val]},
            "curve_x": steps, "curve_x_label": "step",
            "best_step": steps[best], "best_val_loss": rounded(val[best]), "lowest_val_loss": rounded(lowest),
            "final_val_loss": rounded(val[-1]),
            "val_rise": rounded(val[-1] / lowest - 1) if lowest > 0 else None,
            "train_loss_at_best": rounded(train[best]), "final_train_loss": rounded(train_end),
            "epochs_at_best": rounded(epochs), "train_samples": len(run.indices), "train_split": len(ctx.train),
            "held_out_samples": len(tracked_indices(ctx, plan)), "eval_split": plan.eval_split,
            "steps": run.steps, "batch_size": size, "with_augmentation": augmented,
            "trainable_parameters": trainable, "parameters_per_sample": rounded(per_sample),
            "memorization": {**memo.as_evidence(), "ratio": rounded(memo.ratio)}, "uses": uses,
        }
        if overfit or fast:
            remedies = _remedies(ctx, settings, uses, optimizer, trainable, per_sample,
                                 (steps[best], epochs, len(run.indices)) if overfit else None)
            evidence["remedies"] = [name for name, _ in remedies]
            if overfit:
                evidence["markers"] = {"early stopping": steps[best]}
            listed = ", ".join(f"early stopping at step {steps[best]}" if name == "early_stopping" and overfit
                               else _SHORT[name] for name, _ in remedies)
            memo_note = (f" It also memorizes random labels about as fast as real ones (ratio {memo.ratio:.2g})."
                         if fast else "")
            if overfit:
                where = (f"{len(run.indices)} training samples" if subset >= 1 else
                         f"a subset of {len(run.indices)} of the {len(ctx.train)} training samples")
                small = subset < settings.subset_fraction
                yield self.finding(
                    "SC1601", f"Trained on {where}, the validation loss stopped improving at step {steps[best]} of "
                    f"{run.steps} (~{epochs:.2g} epochs, loss {val[best]:.3g}) and ended at {val[-1]:.3g}, while the "
                    f"training loss kept falling from {train[best]:.3g} to {train_end:.3g}: the model overfits."
                    + memo_note + (" Measured on a subset, which overfits sooner than the whole split." if small else "")
                    + f" Remedies that apply, most promising first: {listed} (see fix).",
                    severity="info" if small else "warning", evidence=evidence, fix=_fix(remedies),
                )
            else:
                yield self.finding(
                    "SC1602", f"The model fits {memo.samples} training samples with random labels in "
                    f"{memo.steps_random} steps, against {memo.steps_real} with the real ones (ratio "
                    f"{memo.ratio:.2g}): it can memorize its training set. Remedies that apply, most promising first: "
                    f"{listed} (see fix). A ratio near 1 also means the real labels look like noise to the model: "
                    "if label-shuffle reports SC201, fix the labels first.",
                    evidence=evidence, fix=_fix(remedies),
                )
            return

        initial = val[0]  # the held-out loss before the first step: the untrained model's level
        quarter = train[int(len(train) * 3 / 4):]
        finite_quarter = quarter[np.isfinite(quarter)]
        if np.isfinite(initial) and initial > 0 and np.isfinite(train_end) and len(finite_quarter) >= 2:
            fell = float(finite_quarter[0] - finite_quarter.min())
            if train_end > settings.underfit_level * initial and fell < settings.underfit_plateau * initial:
                yield self.finding(
                    "SC1603", f"After {run.steps} steps the training loss is {train_end:.3g}, "
                    f"{train_end / initial:.0%} of the untrained model's {initial:.3g}, and the last quarter of the "
                    f"run lowered it by only {fell:.2g}: the model underfits (dropout: "
                    f"{'yes' if has_dropout else 'no'}, weight decay {decay:g}).",
                    evidence={**evidence, "last_quarter_fall": rounded(fell)},
                )

    def _run(self, ctx: Any, plan: Any) -> tuple[Any, bool]:
        """The tracked run: the shared reference, or with data.augment a run of the same plan that applies it."""
        from sanitycheck.probing.augment import BatchAugment
        from sanitycheck.probing.trainer import (REFERENCE_TRACK_POINTS, eval_split_of, reference_model,
                                                 tracked_indices, train)

        if ctx.augment is None:
            return reference_model(ctx), False
        held_out = eval_split_of(ctx, plan)

        def compute() -> Any:
            return train(ctx, ctx.train, plan.train_indices, steps=plan.steps, seconds=plan.seconds,
                         tag="trainer:reference", evaluate_train=False,
                         inputs_transform=BatchAugment(ctx, ctx.augment, ctx.derived_seed("generalization:augment")),
                         track_split=held_out, track_indices=tracked_indices(ctx, plan),
                         track_every=max(1, plan.steps // REFERENCE_TRACK_POINTS))

        return ctx.shared("generalization:augmented", compute), True


#: Each remedy's name in a finding's message (the fix has the details).
_SHORT = {"augmentation": "data augmentation", "dropout": "dropout", "weight_decay": "weight decay",
          "early_stopping": "early stopping", "smaller_model": "a smaller model", "more_data": "more data"}


def _fix(remedies: list[tuple[str, str]]) -> str:
    return " ".join(f"({k + 1}) {text[0].upper()}{text[1:]}." for k, (_, text) in enumerate(remedies))


def _remedies(ctx: Any, settings: Settings, uses: dict, optimizer: Any, trainable: int, per_sample: float,
              stop: tuple[int, float, int] | None) -> list[tuple[str, str]]:
    """(name, advice) of each remedy this pipeline does not use yet, most promising first."""
    out = []
    if not uses["augmentation"]:
        out.append(("augmentation", "data augmentation (none is configured: set data.augment to a label-preserving "
                    "transform such as small shifts or crops)"))
    if not uses["dropout"]:
        out.append(("dropout", "dropout (the model has none): e.g. nn.Dropout(0.2-0.5) before the last layers, "
                    "after any BatchNorm"))
    if not uses["weight_decay"]:
        kind = type(optimizer).__name__
        how = ("AdamW(weight_decay=0.01-0.1) instead of Adam" if kind in ("Adam", "NAdam", "RAdam", "Adamax")
               else f"{kind}(weight_decay=1e-4-5e-4)" if kind == "SGD" else f"weight_decay in {kind}'s settings")
        out.append(("weight_decay", f"weight decay (it is 0): {how}"))
    if stop is not None:
        step, epochs, n = stop
        out.append(("early_stopping", f"early stopping: the validation loss stopped improving at step {step} "
                    f"(~{epochs:.2g} epochs over {n} samples); keep the checkpoint with the best validation loss"))
    else:
        out.append(("early_stopping", "early stopping on the validation loss (keep the best checkpoint)"))
    if per_sample >= settings.params_per_sample:
        out.append(("smaller_model", f"a smaller model: {trainable:,} trainable parameters, {per_sample:.0f} per "
                    "training sample"))
    out.append(("more_data", f"more training data ({len(ctx.train)} samples now)"))
    return out


@hookimpl
def sanitycheck_checks():
    return [Generalization()]
