"""``augmentation``: augmentations that change what a label means, erase the signal, or look nothing like real
data; and random augmentation left on the validation split.

The augmentation under test is ``data.augment`` (a callable on one input: a function, a torchvision transform)
or, without it, the training dataset's own randomness (the same index read twice differs).

Why not the obvious rule ("a model trained on clean inputs does badly on augmented ones")? A clean-trained model
is a poor judge: on small centred digits even a benign one-pixel shift halves its accuracy. Instead the same
model is trained twice on the same subset, once with and once without the augmentation (the augmented run gets
more steps: it is harder to fit), and both are scored on *clean* validation data: a label-preserving augmentation costs little there, one that
changes what a label means (6 turned upside down is a 9) costs a lot, on the classes it confuses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.augment import BatchAugment
from sanitycheck.probing.trainer import rounded as _r

#: Below this many usable training samples the check is skipped (with-vs-without trainings and AUC have no power).
MIN_TRAIN_SAMPLES = 32

#: Original/augmented pairs drawn in a finding's thumbnail grid.
PAIRS = 8


class Settings(CheckSettings):
    drop: float = Field(0.1, gt=0, lt=1, description="SC401: the smallest clean-validation accuracy drop "
                                                      "(trained with vs without the augmentation) that is reported.")
    alpha: float = Field(0.01, gt=0, lt=1, description="SC401: significance of the paired (McNemar) test.")
    erased: float = Field(0.25, gt=0, lt=1, description="SC402: augmented inputs keep at most this share of the "
                                                         "clean model's accuracy above chance.")
    auc: float = Field(0.99, gt=0.5, le=1, description="SC403: the real-vs-augmented AUC that is reported.")
    realism_samples: int = Field(512, ge=32, description="Samples (and as many augmented ones) for the AUC.")


CODES = (
    CodeDoc(
        code="SC401", title="Augmentation changes what the label means", severity="error",
        what="Trains the model on the same training subset without the augmentation (the shared reference "
        "training: 1024 samples, 300 steps at the default profile) and with it (drawn afresh for every batch, "
        "for 3x the steps: augmented data takes longer to fit, and a model that merely lags is not a label "
        "problem; measured on digits, a benign +-1-pixel shift cost 0.11-0.13 accuracy at equal steps, "
        "0.02-0.07 at 3x; when 3x the steps would exceed this check's share of the run's budget, measured on "
        "this pipeline, it trains for that share, at least 1.5x the clean run's time, and SC401 is not "
        "reported if it got fewer steps than the clean run), and scores both on the same clean validation samples. Decision rule: the "
        "augmented model's accuracy is at least 0.1 lower (setting `drop`) and a one-sided paired McNemar test on "
        "the samples one model gets right and the other wrong gives p < 0.01 (`alpha`). The finding lists the "
        "per-class accuracies and the confusions that appear. A model trained on clean inputs only is never "
        "used as the judge (it flags benign shifts too). The check needs at least 32 usable training samples "
        "(fewer: skipped).",
        why="If augmented inputs of class A look like real inputs of class B, the model is taught that B-looking "
        "inputs are A: accuracy on real data drops on exactly those classes.",
        example="Random vertical flips / 180-degree rotations of digits (6 becomes 9); hue shifts when colour "
        "defines the class; a crop that cuts the object out but keeps its label.",
        fix="Use only transformations that keep the label true (small shifts, crops that keep the object); drop "
        "flips/rotations for orientation-sensitive classes, or relabel the transformed sample.",
    ),
    CodeDoc(
        code="SC402", title="Augmentation erases the signal", severity="error",
        what="The model trained with the augmentation (see SC401) is scored on augmented validation inputs. "
        "Decision rule: its accuracy above chance (chance = the most common class's share) is at most a quarter "
        "(setting `erased`) of the clean model's accuracy above chance on clean validation inputs, and the clean "
        "model itself is at least 0.2 above chance.",
        why="When augmented inputs can barely be classified even by a model trained on them, the augmentation has "
        "destroyed what the label depends on: training mostly fits noise.",
        example="Gaussian noise with a standard deviation several times the pixel range; a crop so small it "
        "misses the object; a mask covering most of the image.",
        fix="Weaken the augmentation (smaller noise, larger crops, lower probability) until augmented inputs stay "
        "recognisable; check its parameters' units (pixels vs fraction, 0-255 vs 0-1).",
    ),
    CodeDoc(
        code="SC403", title="Augmented inputs look nothing like real data", severity="warning",
        what="A small classifier (2-fold, on the shared embedding) tries to tell up to 512 augmented training "
        "inputs from their originals (or, for the dataset's own randomness, training reads from validation "
        "inputs). Decision rule: ROC AUC >= 0.99 (setting `auc`). The evidence also gives the value range and "
        "mean/std of augmented vs original inputs, and the AUC is always in the summary (SC405).",
        why="A model spends capacity on a distribution it never meets at test time; normalization statistics "
        "computed on real data no longer fit.",
        example="An augmentation that rescales 0-1 pixels to 0-255, inverts colours, or adds heavy noise.",
        fix="Look at the original vs augmented grid; keep augmented inputs in the range and look of real data.",
    ),
    CodeDoc(
        code="SC404", title="Random augmentation on the validation split", severity="warning",
        what="Reads up to 64 validation samples a second time (the shared re-read probe). Decision rule: any input "
        "that differs between two reads is a finding.",
        why="Validation scores then change from run to run and measure the augmented task, not the real one: model "
        "selection and early stopping become noisy and biased.",
        example="The same Dataset class with the training transforms used for the validation split.",
        fix="Give the validation split deterministic transforms only (resize, centre crop, normalize).",
    ),
    CodeDoc(
        code="SC406", title="Augmentation moves inputs and their masks apart", severity="error",
        what="For targets that are masks (one value per pixel of the input: segmentation, heatmaps), compares the "
        "two reads of the shared re-read probe (up to 64 training samples). A read pair is 'apart' when the mask "
        "of the second read is exactly the first one flipped (horizontally, vertically or both) while the input "
        "is not (it stays closer to the first read unflipped: under half the distance of every flip), or when the "
        "input is flipped (under half the distance of leaving it) and the mask, which that flip would change, "
        "stayed as it was; 'together' when both moved by the same flip. Other transforms (crops, rotations, "
        "colour) give no evidence either way. Decision rule: at least 2 read pairs apart, and at least a quarter "
        "of the pairs that moved.",
        why="The model is trained on images paired with the masks of their mirror images: the pixels it learns to "
        "label are not the ones it sees, so its masks come out blurred and its validation scores are capped, "
        "whatever the training time.",
        example="`if random.random() < 0.5: image = TF.hflip(image)` and, separately, `if random.random() < 0.5: "
        "mask = TF.hflip(mask)`; or torchvision's RandomHorizontalFlip in the image transforms but not in the "
        "mask's.",
        fix="Draw the random parameters once and apply them to the image and the mask (torchvision.transforms.v2 "
        "with tv_tensors.Mask, albumentations with mask=, or one coin for both).",
    ),
    CodeDoc(
        code="SC405", title="Augmentation summary", severity="info",
        what="Always reported when an augmentation was tested: clean-validation accuracy trained without and with "
        "it, accuracy on augmented validation inputs (of the augmentation-trained and of the clean-trained "
        "model, the latter for reference only), the real-vs-augmented AUC, and a grid of original vs augmented "
        "samples (thumbnails).",
        why="What the augmentation does to the data should be looked at, not assumed.",
        example="Any pipeline with data.augment set.",
        fix="Nothing to fix; look at the grid.",
    ),
)


class Augmentation(Check):
    name = "augmentation"
    summary = ("augmentations that change what a label means or erase the signal (trained with vs without, "
               "scored on clean val), augmented inputs unlike real data, random augmentation on the val split, "
               "flips that move inputs and their masks apart")
    cost = "one extra short training (3x the shared reference steps) with the augmentation, plus a small AUC probe"
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        from sanitycheck.pipeline.rereads import rereads

        usable = len(ctx.usable_indices(ctx.train))
        if usable < MIN_TRAIN_SAMPLES:  # the trainings and the real-vs-augmented AUC mean nothing on fewer
            self.skip(f"needs at least {MIN_TRAIN_SAMPLES} usable training samples (has {usable})")
        tested = False
        train_reads = rereads(ctx, ctx.train)
        if train_reads.inputs_random or train_reads.targets_random:
            apart = self._masks_apart(ctx, train_reads)
            if apart is not None:
                yield apart
        if ctx.val is not None:
            probe = rereads(ctx, ctx.val)
            if probe.inputs_random:
                yield self._val_random(ctx, probe)
        if ctx.augment is not None:
            tested = True
            yield from self._callable(ctx, settings)
        elif rereads(ctx, ctx.train).inputs_random:
            tested = True
            yield from self._dataset_randomness(ctx, settings)
        if not tested and not (ctx.val is not None and rereads(ctx, ctx.val).inputs_random):
            self.skip("no augmentation: data.augment is not set and the training dataset returns the same input "
                      "on every read")

    # ------------------------------------------------------------------------------ val randomness

    def _val_random(self, ctx: Any, probe: Any):
        from sanitycheck.probing.thumbnails import png_data_uri

        changed = probe.indices[probe.input_changed]
        thumbs = []
        for g, pos in enumerate(np.flatnonzero(probe.input_changed)[:PAIRS]):
            i = int(probe.indices[pos])
            thumbs += _pair(png_data_uri, "val", i, ctx.val.inputs([i])[0], probe.second[pos], g, "first read",
                            "second read")
        return self.finding(
            "SC404", f"{len(changed)} of {len(probe.indices)} validation samples read twice gave different inputs: "
            "the validation split is randomly augmented.",
            samples={"val": [int(i) for i in changed]},
            evidence={"probed": len(probe.indices), "changed": len(changed), "thumbnails": thumbs},
        )

    # ------------------------------------------------------------------------- inputs and masks apart

    def _masks_apart(self, ctx: Any, probe: Any):
        """SC406 when the training dataset's random flips move inputs and their masks apart (see the code doc)."""
        from sanitycheck.pipeline.features import layout

        data = ctx.train.data_pass()
        if data.inputs is None or data.targets is None or data.targets.ndim != 3:
            return None
        kind = layout(tuple(data.inputs.shape[1:]))
        if kind not in ("hw", "chw", "hwc"):
            return None
        together, apart = [], []
        for pos, i in enumerate(probe.indices):
            moved = _moved(data.inputs[i], np.asarray(data.targets[i]), probe.second[pos],
                           np.asarray(probe.second_targets[pos]), kind)
            (together if moved == "together" else apart if moved == "apart" else []).append(int(i))
        if len(apart) < MIN_APART or len(apart) < 0.25 * (len(apart) + len(together)):
            return None
        return self.finding(
            "SC406", f"In {len(apart)} of {len(probe.indices)} training samples read twice, the random flips moved "
            f"the input and its mask apart (the mask flipped and the input not, or the reverse); in "
            f"{len(together)} they moved together. The model is trained on masks of mirrored images.",
            samples={"train": apart},
            evidence={"probed": len(probe.indices), "apart": len(apart), "together": len(together),
                      "rule": f"at least {MIN_APART} read pairs apart and at least 25% of those that moved"},
        )

    # --------------------------------------------------------------------------- data.augment given

    def _callable(self, ctx: Any, settings: Settings):
        from sanitycheck.probing.trainer import eval_split_of, evaluate, reference_model, reference_plan, train

        if ctx.task != "classification":
            self.skip("the with/without comparison scores accuracy: task is not classification")
        plan = reference_plan(ctx)
        eval_split = eval_split_of(ctx, plan)
        transform = BatchAugment(ctx, ctx.augment, ctx.derived_seed("augmentation:apply"))
        # the originals and their augmentations, for realism and the thumbnail grid
        real_idx = ctx.sample_indices(ctx.train, ctx.budget(settings.realism_samples, minimum=32),
                                      "augmentation:realism")
        originals = [ctx.train.sample(int(i))[0] for i in real_idx]
        augmented = [transform.one(x) for x in originals]
        realism = _realism(ctx, originals, augmented, settings)

        clean = reference_model(ctx)
        if clean.eval is None or clean.eval.correct is None:
            self.skip("the model's outputs are not class scores: accuracy cannot be compared")
        # 3x the steps: see SC401 (a lagging model is not a label problem); fewer when they exceed this check's
        # share of the run's budget (measured cost), but never a time cap below the clean run's own time
        cap = _with_seconds(ctx, clean)
        with_aug = train(ctx, ctx.train, clean.indices, steps=max(clean.steps, 1) * 3, seconds=cap,
                         inputs_transform=transform, tag="augmentation:with", evaluate_train=False)
        cut = with_aug.stopped == "seconds" and with_aug.steps < clean.steps  # a lagging model: no SC401 verdict
        with_aug.eval = evaluate(ctx, with_aug.model, eval_split, plan.eval_indices)  # clean val: no transform
        transform.reseed(ctx.derived_seed("augmentation:val"))
        aug_on_aug = evaluate(ctx, with_aug.model, eval_split, plan.eval_indices, inputs_transform=transform)
        transform.reseed(ctx.derived_seed("augmentation:val"))
        clean_on_aug = evaluate(ctx, clean.model, eval_split, plan.eval_indices, inputs_transform=transform)

        c, a = clean.eval, with_aug.eval
        targets = c.targets.astype(np.int64)
        chance = float(np.bincount(targets).max() / len(targets))
        acc_c, acc_a, acc_aa = c.accuracy, a.accuracy, aug_on_aug.accuracy
        worse, better = int((c.correct & ~a.correct).sum()), int((~c.correct & a.correct).sum())
        p_value = _binomial_tail(worse, worse + better)
        thumbs = _grid(ctx, real_idx, originals, augmented)
        evidence = {
            "clean_val_accuracy_without": _r(acc_c), "clean_val_accuracy_with": _r(acc_a),
            "augmented_val_accuracy_with": _r(acc_aa), "augmented_val_accuracy_clean_model": _r(clean_on_aug.accuracy),
            "chance": _r(chance), "mcnemar": {"only_without_right": worse, "only_with_right": better,
                                              "p_value": _r(p_value)},
            "train_samples": len(clean.indices), "steps": clean.steps, "steps_with": with_aug.steps,
            **({"budget_s": _r(cap), "stopped_with": with_aug.stopped} if cap is not None else {}),
            "val_samples": len(plan.eval_indices),
            "eval_split": plan.eval_split, **realism,
        }
        per_class = _per_class(targets, c, a)
        confusions = _new_confusions(targets, c.predictions, a.predictions)
        samples = {plan.eval_split: [int(i) for i in plan.eval_indices[c.correct & ~a.correct]]}

        erased = acc_c - chance >= 0.2 and acc_aa - chance <= settings.erased * (acc_c - chance)
        if erased:
            yield self.finding(
                "SC402", f"A model trained with the augmentation classifies augmented validation inputs with "
                f"accuracy {acc_aa:.1%} (chance {chance:.1%}), while without it the model reaches {acc_c:.1%} on "
                f"clean inputs: the augmentation destroys what the labels depend on.",
                samples=samples, evidence={**evidence, "per_class": per_class, "thumbnails": thumbs},
            )
        elif acc_c - acc_a >= settings.drop and p_value < settings.alpha and not cut:
            hit = [pc for pc in per_class if pc["drop"] is not None and pc["drop"] >= settings.drop]
            yield self.finding(
                "SC401", f"Trained with the augmentation, the model's accuracy on clean validation data is "
                f"{acc_a:.1%} instead of {acc_c:.1%} without it (same samples and budget; McNemar p = {p_value:.2g})."
                + (" Classes that lose most: " + ", ".join(f"{pc['class']} ({pc['without']:.0%} -> "
                                                            f"{pc['with']:.0%})" for pc in hit[:4]) + "."
                   if hit else "")
                + (" New confusions: " + ", ".join(f"{k['true']} read as {k['predicted']} ({k['added']})"
                                                   for k in confusions[:4]) + "." if confusions else ""),
                samples=samples,
                evidence={**evidence, "per_class": per_class, "new_confusions": confusions, "thumbnails": thumbs},
            )
        if realism.get("real_vs_augmented_auc") is not None and realism["real_vs_augmented_auc"] >= settings.auc:
            yield self.finding(
                "SC403", f"A small classifier tells augmented training inputs from their originals with AUC "
                f"{realism['real_vs_augmented_auc']:.3f}: they look nothing like real data.",
                evidence={**realism, "thumbnails": thumbs},
                samples={"train": [int(i) for i in real_idx[:PAIRS]]},
            )
        yield self.finding(
            "SC405", f"With the augmentation: clean-val accuracy {acc_a:.1%} (without: {acc_c:.1%}), augmented-val "
            f"accuracy {acc_aa:.1%}; real vs augmented AUC "
            + (f"{realism['real_vs_augmented_auc']:.2f}." if realism.get("real_vs_augmented_auc") is not None
               else "n/a."),
            evidence={**evidence, "per_class": per_class, "thumbnails": thumbs},
        )

    # ----------------------------------------------------------------------- dataset's own randomness

    def _dataset_randomness(self, ctx: Any, settings: Settings):
        """Without data.augment the un-augmented originals are unknown: compare two reads for the grid, and the
        training reads with the (clean) validation inputs for realism. SC401/SC402 need originals: not run."""
        from sanitycheck.pipeline.rereads import rereads

        probe = rereads(ctx, ctx.train)
        firsts = [ctx.train.inputs([i])[0] for i in probe.indices]
        thumbs = _grid(ctx, probe.indices, firsts, probe.second)
        realism: dict[str, Any] = {}
        if ctx.inputs_are_token_ids():  # e.g. random windows of a text: ids are categorical, no embedding to compare
            realism["compared"] = "not compared: the inputs are token ids"
        elif ctx.val is not None:
            val_idx = ctx.sample_indices(ctx.val, ctx.budget(settings.realism_samples, minimum=32),
                                         "augmentation:realism-val")
            train_idx = ctx.sample_indices(ctx.train, ctx.budget(settings.realism_samples, minimum=32),
                                           "augmentation:realism")
            realism = _realism(ctx, [ctx.val.sample(int(i))[0] for i in val_idx],
                               [ctx.train.sample(int(i))[0] for i in train_idx], settings)
            realism["compared"] = "training reads (augmented) vs validation inputs"
        auc = realism.get("real_vs_augmented_auc")
        if auc is not None and auc >= settings.auc:
            yield self.finding(
                "SC403", f"A small classifier tells the (randomly augmented) training inputs from validation inputs "
                f"with AUC {auc:.3f}: the training data looks nothing like the data the model is evaluated on.",
                evidence={**realism, "thumbnails": thumbs}, samples={"train": [int(i) for i in probe.indices[:PAIRS]]},
            )
        yield self.finding(
            "SC405", f"The training dataset is random ({int(probe.input_changed.sum())} of {len(probe.indices)} "
            "samples differ between two reads); without data.augment the un-augmented originals are unknown, so the "
            "with/without comparison (SC401, SC402) is not run. Set data.augment to test it.",
            evidence={**realism, "mode": "dataset randomness", "thumbnails": thumbs},
        )


# ----------------------------------------------------------------------------------------- augmenting


# ------------------------------------------------------------------------------------------- measures

#: SC406 needs at least this many read pairs where the input and its mask moved apart.
MIN_APART = 2


def _moved(x1: np.ndarray, t1: np.ndarray, x2: np.ndarray, t2: np.ndarray, kind: str) -> str | None:
    """How two reads of one sample moved: ``together`` (the input and its mask by the same flip), ``apart`` (one
    flipped, the other not) or None (no flip seen, a symmetric picture, or a transform that is not a flip)."""
    x1, x2 = np.asarray(x1, dtype=np.float32), np.asarray(x2, dtype=np.float32)
    axes = (-2, -1) if kind == "chw" else (0, 1)
    if x1.shape != x2.shape or t1.shape != t2.shape or t1.shape != tuple(x1.shape[a] for a in axes):
        return None
    flips = ((axes[1],), (axes[0],), axes)  # horizontal, vertical, both
    mask_flips = ((1,), (0,), (0, 1))
    still = float(np.linalg.norm(x1 - x2))
    flipped = [float(np.linalg.norm(np.flip(x1, f) - x2)) for f in flips]
    best = int(np.argmin(flipped))
    input_flip = best if flipped[best] < 0.5 * still else None
    input_still = still < 0.5 * min(flipped)
    if not np.array_equal(t1, t2):
        mask_flip = next((j for j, f in enumerate(mask_flips) if np.array_equal(np.flip(t1, f), t2)), None)
        if mask_flip is None:
            return None
        return "together" if input_flip == mask_flip else "apart" if input_still else None
    if input_flip is not None and not np.array_equal(np.flip(t1, mask_flips[input_flip]), t1):
        return "apart"  # the input flipped, and its mask, which that flip would change, did not
    return None



def _realism(ctx: Any, real: list[Any], augmented: list[Any], settings: Settings) -> dict[str, Any]:
    """AUC of telling augmented from real on the shared embedding, and range / mean / std of both."""
    from sanitycheck.pipeline.tensors import to_numpy
    from sanitycheck.probing.embedding import EmbeddingUnavailable, embed
    from sanitycheck.engine.threads import torch_threads
    from sanitycheck.probing.budget import mlp_threads
    from sanitycheck.probing.probes import AUC_HIDDEN, cross_validated_auc

    r = np.stack([to_numpy(x).astype(np.float32) for x in real])
    try:
        a = np.stack([to_numpy(x).astype(np.float32) for x in augmented])
    except ValueError:
        return {"real_vs_augmented_auc": None, "note": "augmented inputs have varying shapes"}
    stats = {
        "real_range": [_r(float(np.nanmin(r))), _r(float(np.nanmax(r)))],
        "augmented_range": [_r(float(np.nanmin(a))), _r(float(np.nanmax(a)))],
        "real_mean_std": [_r(float(np.nanmean(r))), _r(float(np.nanstd(r)))],
        "augmented_mean_std": [_r(float(np.nanmean(a))), _r(float(np.nanstd(a)))],
    }
    try:
        er, ea = embed(ctx, r), embed(ctx, a)
    except (EmbeddingUnavailable, ValueError) as exc:
        return {**stats, "real_vs_augmented_auc": None, "note": f"not embeddable: {exc}"}
    with torch_threads(mlp_threads(ctx, er.shape[1], AUC_HIDDEN, 2)):
        auc = cross_validated_auc(er, ea, seed=ctx.derived_seed("augmentation:auc"), device=ctx.device)
    return {**stats, "real_vs_augmented_auc": _r(auc)}


#: The with-augmentation training's share of the run's budget (sanitycheck.probing.budget).
SHARE = 0.35


def _with_seconds(ctx: Any, clean: Any) -> float | None:
    """The with-augmentation run's time cap: none when 3x the clean run's time is cheap, else this check's share
    of the run's budget, and at least 1.5x what the clean run took (so it gets the clean run's steps or more)."""
    from sanitycheck.probing.budget import NEVER_SHRINK_S, budget_seconds

    if 3 * clean.seconds <= NEVER_SHRINK_S:
        return None
    return max(SHARE * budget_seconds(ctx), 1.5 * clean.seconds)


def _binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): the one-sided exact McNemar test."""
    if n == 0:
        return 1.0
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, 0.5))


def _per_class(targets: np.ndarray, without: Any, with_: Any) -> list[dict[str, Any]]:
    rows = []
    for k in np.unique(targets):
        m = targets == k
        a0, a1 = float(without.correct[m].mean()), float(with_.correct[m].mean())
        rows.append({"class": int(k), "n": int(m.sum()), "without": _r(a0), "with": _r(a1), "drop": _r(a0 - a1)})
    return sorted(rows, key=lambda row: -(row["drop"] or 0))


def _new_confusions(targets: np.ndarray, before: Any, after: Any) -> list[dict[str, int]]:
    """(true, predicted) error pairs that the augmentation-trained model makes more often, most added first."""
    if before is None or after is None:
        return []
    out = []
    pairs = {(int(t), int(p)) for t, p in zip(targets, after) if t != p}
    for t, p in pairs:
        added = int(((targets == t) & (after == p)).sum() - ((targets == t) & (before == p)).sum())
        if added > 0:
            out.append({"true": t, "predicted": p, "added": added})
    return sorted(out, key=lambda row: -row["added"])[:10]


def _pair(png: Any, split: str, index: int, first: Any, second: Any, group: int, c1: str, c2: str) -> list[dict]:
    from sanitycheck.pipeline.tensors import to_numpy

    items = []
    for x, caption in ((first, c1), (second, c2)):
        uri = png(to_numpy(x))
        if uri is not None:
            items.append({"split": split, "index": index, "caption": caption, "png": uri, "group": group})
    return items


def _grid(ctx: Any, indices: Any, originals: list[Any], augmented: list[Any]) -> list[dict]:
    """Thumbnails: original and augmented side by side (``group`` pairs them), for the first PAIRS samples."""
    from sanitycheck.probing.thumbnails import png_data_uri

    out: list[dict] = []
    for g, (i, x, y) in enumerate(zip(list(indices)[:PAIRS], originals, augmented)):
        out += _pair(png_data_uri, "train", int(i), x, y, g, "original", "augmented")
    return out


@hookimpl
def sanitycheck_checks():
    return [Augmentation()]
