"""``data-integrity``: NaN/Inf, empty or constant inputs, inconsistent shapes or dtypes, bad labels, scale.

Reads the cached data pass (per-sample statistics of every sample), so it costs nothing extra; only the padding
rule (SC812) reads a few batches of 64 training samples, for their attention_mask.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.pipeline.losses import ignored_label, loss_kind


class Settings(CheckSettings):
    max_abs: float = Field(10.0, gt=0, description="Warn when the median over samples of max|x| is above this.")
    min_abs: float = Field(0.01, gt=0, description="Warn when the median over samples of max|x| is below this.")
    constant_error_fraction: float = Field(0.5, gt=0, le=1, description="Constant inputs become an error from this fraction up.")
    # the defaults are sanitycheck.pipeline.data's SPLIT_STD_RATIO and SPLIT_MEAN_SHIFT (label-shuffle's SC206 reads
    # the same rule; literals here, so that listing the checks does not import torch)
    split_std_ratio: float = Field(1.5, gt=1, description="Warn when the validation inputs' std is more than this many "
                                   "times the training inputs' std, or less than its inverse ...")
    split_mean_shift: float = Field(2.0, gt=0, description="... or their means differ by more than this many training "
                                    "stds.")


CODES = (
    CodeDoc(
        code="SC801", title="NaN or Inf in inputs", severity="error",
        what="Counts NaN and infinite values in every input of both splits during the one data pass; every "
        "sample that has one is listed.",
        why="One NaN input makes the loss NaN, and the NaN spreads into every weight at the next step.",
        example="Missing values in a CSV read as NaN; a division by a zero standard deviation in normalization.",
        fix="Impute or drop those samples; guard normalization against zero std (x / (std + eps)).",
    ),
    CodeDoc(
        code="SC802", title="NaN or Inf in targets", severity="error",
        what="Reported when a target (label or regression value) is NaN or infinite; the samples are listed.",
        why="A NaN target makes the loss NaN: training silently produces a NaN model.",
        example="Regression targets with missing measurements.",
        fix="Drop or impute the samples with missing targets before building the dataset.",
    ),
    CodeDoc(
        code="SC803", title="Empty inputs", severity="error",
        what="Reported when an input has zero elements.",
        why="An empty tensor breaks collation or makes the model see nothing for that sample.",
        example="A crop whose box falls outside the image; an empty text after filtering.",
        fix="Filter empty samples out of the dataset, or fix the transform that empties them.",
    ),
    CodeDoc(
        code="SC804", title="Constant inputs", severity="warning",
        what="Reported when an input of more than one element has the same value everywhere (std 0). Decision "
        "rule: warning when any sample is constant; error when half or more of a split is.",
        why="A constant input carries no information: if many are constant, a decode or normalization step "
        "is broken (all-black images, a feature column overwritten).",
        example="Images decoded as all zeros after a failed read; x = (x - x.mean()) / x.std() applied to a batch of one.",
        fix="Look at the listed samples; fix the loading or transform that blanks them.",
    ),
    CodeDoc(
        code="SC805", title="Inconsistent input shapes", severity="warning",
        what="Reported when inputs within a split, or between train and validation, have different shapes. "
        "Info, not a warning, when only their lengths differ and that is expected: task: sequence, or a training "
        "DataLoader with its own collate_fn (which pads them) and shapes that differ along one dimension only (a "
        "sequence's length; the length of named inputs read side by side, such as input_ids and attention_mask).",
        why="Batches cannot be stacked without padding or resizing; a validation set of another shape means the "
        "model is evaluated on differently prepared data.",
        example="A few grayscale images (1 x H x W) among RGB ones (3 x H x W); validation resized to 224, train to 256.",
        fix="Resize/convert every input the same way in both splits (or pad in a collate_fn on purpose).",
    ),
    CodeDoc(
        code="SC806", title="Inconsistent input dtypes", severity="warning",
        what="Reported when inputs within a split, or between train and validation, have different dtypes.",
        why="Mixed dtypes usually mean two code paths prepare the data differently (uint8 0-255 vs float 0-1).",
        example="Train images converted with ToTensor (float32 in [0,1]) while validation stays uint8.",
        fix="Apply the same conversion in both splits.",
    ),
    CodeDoc(
        code="SC807", title="Labels outside [0, C)", severity="error",
        what="For classification, reported when a label is negative or not below the number of classes the "
        "model outputs (its output width for cross-entropy/NLL). A label equal to the cross-entropy/NLL loss's "
        "ignore_index (-100 by default; e.g. -1 for unlabeled samples with CrossEntropyLoss(ignore_index=-1)) is "
        "skipped by the loss, not outside.",
        why="CrossEntropyLoss with an out-of-range label crashes on a GPU with a device-side assert, or on "
        "some paths silently trains the wrong class.",
        example="Labels 1..10 (one-based) with a 10-output model; -1 used as 'unknown' label with a loss that does "
        "not ignore it.",
        fix="Map labels to 0..C-1 (e.g. subtract 1 from one-based labels) and drop or re-label unknowns.",
    ),
    CodeDoc(
        code="SC808", title="Classification labels are not integer class ids", severity="error",
        what="For task: classification, reported when a label is not a whole number (e.g. 0.5) or has a shape "
        "the engine cannot read as a class.",
        why="A classification loss cannot use fractional labels as class ids: this is usually the wrong target "
        "column, or the task should be regression.",
        example="A dataset returning the normalized regression target while the config says classification.",
        fix="Return integer class ids (torch.long) as targets, or set task: regression.",
    ),
    CodeDoc(
        code="SC809", title="Inputs far from a normalized scale", severity="warning",
        what="Decision rule: the median over samples of each input's largest absolute value must lie between "
        "0.01 and 10; mean and std of the inputs are in the evidence. Outside that range, what the model's first "
        "weight layer (Linear, convolution, recurrent) reads on 64 samples of a fresh model in training mode is "
        "measured the same way: a model that scales its inputs itself (uint8 images and x / 255 in forward, a "
        "BatchNorm before the first layer) passes when that is in range. Token ids (integer inputs that the model "
        "feeds to an nn.Embedding, or integer inputs with task: sequence) are indices, not magnitudes: they are "
        "checked against the vocabulary instead (SC810).",
        why="Networks are initialized for inputs of roughly unit scale: raw pixel values (0-255) or raw sensor "
        "units saturate activations, blow up the initial loss and slow or stall training.",
        example="Images fed as uint8 0-255 without ToTensor/Normalize; sklearn digits (0-16) fed unscaled.",
        fix="Normalize inputs: divide by 255 for images, or standardize with the training set's mean and std "
        "(transforms.Normalize, sklearn StandardScaler fitted on train only).",
    ),
    CodeDoc(
        code="SC811", title="Validation inputs on another scale than the training inputs", severity="warning",
        what="Compares the mean and std of all input values of the validation split with the training split's "
        "(from the data pass: every sample, augmentation included as the training loader applies it). Decision "
        "rule: warning when the std ratio val/train is above split_std_ratio = 1.5 or below 1/1.5, or the "
        "means differ by more than split_mean_shift = 2 training stds (a level that drifts over time, as in "
        "forecasting, moves the mean more than the spread). Not for token ids. Measured (std ratio, mean "
        "shift): sklearn digits 1.00, 0.002; MNIST train/test as PyTorch's example reads them 1.01, 0.006; the "
        "CIFAR-sized pipeline, whose training loader pads, crops and flips at random, 0.90, 0.22. The MNIST "
        "example with Normalize left out of the validation transform: 0.31, 0.13; without the division by 255: "
        "257, 109; Normalize((0.5,), (0.5,)) left out of Fashion-MNIST's: 0.50, 1.0.",
        why="The model only ever sees training inputs on their scale. Validation inputs preprocessed differently "
        "score near chance though the model is fine, so early stopping, model selection and the reported "
        "metric all read a number about the preprocessing, not the model.",
        example="transforms.Normalize in the training transform only; a val Dataset that skips the division by "
        "255; a StandardScaler fitted and applied to the training features, the validation features left raw.",
        fix="Build both splits' inputs with the same deterministic preprocessing (ToTensor, Normalize with the "
        "training statistics); only the random augmentation belongs to the training transform alone.",
    ),
    CodeDoc(
        code="SC812", title="Padding positions are counted in the loss", severity="warning",
        what="task: sequence with dict batches that carry an attention_mask (the Hugging Face layout). On up to 256 "
        "training samples, read as batches of the user's format, it counts the target positions the loss scores "
        "(labels not negative and not the loss's ignore_index) whose attention_mask is 0 and whose label is the "
        "input id there (the pad id copied into the labels). Decision rule: warning when they are at least 1% of "
        "the scored positions.",
        why="Cross-entropy ignores only the ignore_index (-100 in PyTorch and Hugging Face). Padding labelled "
        "with the pad token id is scored: the model learns to predict padding after padding, the loss looks "
        "better than the model is, and on short sequences most of the gradient goes to pads.",
        example="labels = input_ids.clone() after padding with the pad token; a custom collate_fn that pads the "
        "labels with tokenizer.pad_token_id instead of -100.",
        fix="Set the labels of padded positions to -100 (labels[attention_mask == 0] = -100), or use "
        "DataCollatorForLanguageModeling / DataCollatorForSeq2Seq, which do.",
    ),
    CodeDoc(
        code="SC810", title="Token ids outside the embedding's vocabulary", severity="error",
        what="For token-id inputs (integer inputs the model feeds to an nn.Embedding, found with forward hooks on "
        "one batch), every sample's smallest and largest id from the data pass is compared with the embedding's "
        "num_embeddings V. Decision rule: error when an id is negative or at least V; the samples are listed.",
        why="nn.Embedding raises IndexError on the CPU for an id outside [0, V), and on a GPU fails with a "
        "device-side assert that names nothing; a vocabulary built on one split and applied to another, or a "
        "padding id of -1, is the usual cause.",
        example="A character vocabulary built from the training text only, so a validation character gets id V; "
        "nn.Embedding(vocab_size - 1, d) (off by one); padding with -100 in input_ids instead of in labels.",
        fix="Build the vocabulary from all the text (or map unknown tokens to an <unk> id), size the embedding "
        "len(vocab), and pad input_ids with a real pad id (ignore_index -100 belongs in the labels only).",
    ),
)


class DataIntegrity(Check):
    name = "data-integrity"
    summary = ("NaN/Inf, constant or empty inputs, inconsistent shapes/dtypes, labels outside [0, C), "
               "inputs far from normalized scale or on another scale in val than in train, padding counted in the loss")
    cost = "instant: reads the per-sample statistics of the cached data pass"
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        passes = {split.name: split.data_pass() for split in ctx.splits()}
        tokens = ctx.inputs_are_token_ids()
        yield from self._non_finite(passes)
        yield from self._empty_and_constant(passes, settings, tokens)
        yield from self._consistency(passes, ctx.task == "sequence", _pads(ctx))
        if ctx.task in ("classification", "sequence"):
            yield from self._labels(ctx, passes)
        if tokens:
            yield from self._vocabulary(ctx, passes)
        else:
            yield from self._scale(ctx, passes, settings)
        if ctx.task == "sequence":
            yield from self._padding_in_loss(ctx)  # last: the only rule that reads batches

    def _padding_in_loss(self, ctx: Any):
        import torch

        split = ctx.train
        indices = ctx.sample_indices(split, PADDING_SAMPLES, "data-integrity:padding")
        ignore = getattr(ctx.loss_fn, "ignore_index", None)
        scored = padded = 0
        for lo in range(0, len(indices), 64):
            batch = ctx.batch(split, indices[lo:lo + 64])
            if not isinstance(batch, dict) or not isinstance(batch.get("attention_mask"), torch.Tensor):
                return
            inputs, targets = split.unpack(batch)
            mask = batch["attention_mask"]
            if not all(isinstance(t, torch.Tensor) and t.shape == mask.shape for t in (inputs, targets)):
                return
            counted = (targets >= 0) & ((targets != ignore) if ignore is not None else True)
            scored += int(counted.sum())
            # the pad id itself as the label: an encoder-decoder's decoder targets may run past the source's mask
            padded += int((counted & (mask == 0) & (targets == inputs)).sum())
        if not scored or padded < PADDING_SHARE * scored:
            return
        yield self.finding(
            "SC812", f"{padded} of the {scored} target positions the loss scores in {len(indices)} training samples "
            f"({padded / scored:.1%}) are padding (attention_mask 0) with a real label id: the loss counts them, "
            "so the model is trained to predict padding. Their labels should be -100 (the ignore_index).",
            evidence={"padding_scored": padded, "scored": scored, "samples": len(indices),
                      "share": float(f"{padded / scored:.6g}"), "ignore_index": ignore, "threshold": PADDING_SHARE},
        )

    def _vocabulary(self, ctx: Any, passes: dict[str, Any]):
        found = ctx.token_embedding()
        if found is None:
            return  # integer inputs the model does not embed itself (one-hot in forward?): no vocabulary to compare
        size = found.num_embeddings
        bad = {n: np.flatnonzero((p.minimum < 0) | (p.maximum >= size)).tolist() for n, p in passes.items()}
        if any(bad.values()):
            low = min(float(np.nanmin(p.minimum)) for p in passes.values())
            high = max(float(np.nanmax(p.maximum)) for p in passes.values())
            yield self.finding(
                "SC810", f"Token ids outside [0, {size}) ({found.name}: nn.Embedding({size}, ...)) in "
                + _per_split(bad, passes) + f"; ids range from {low:.0f} to {high:.0f}.",
                samples=bad, evidence={"num_embeddings": size, "embedding": found.name, "min_id": low,
                                       "max_id": high, "samples": {n: len(v) for n, v in bad.items()}},
            )

    def _non_finite(self, passes: dict[str, Any]):
        bad_x = {n: np.flatnonzero((p.nan_count > 0) | (p.inf_count > 0)).tolist() for n, p in passes.items()}
        if any(bad_x.values()):
            counts = {n: int(p.nan_count.sum()) for n, p in passes.items()}
            infs = {n: int(p.inf_count.sum()) for n, p in passes.items()}
            yield self.finding(
                "SC801", "NaN/Inf inputs in " + _per_split(bad_x, passes) + ".",
                samples=bad_x, evidence={"samples": {n: len(v) for n, v in bad_x.items()}, "nan_values": counts,
                                         "inf_values": infs},
            )
        bad_y = {n: np.flatnonzero(p.target_nonfinite).tolist() for n, p in passes.items()}
        if any(bad_y.values()):
            yield self.finding("SC802", "NaN/Inf targets in " + _per_split(bad_y, passes) + ".", samples=bad_y,
                               evidence={"samples": {n: len(v) for n, v in bad_y.items()}})

    def _empty_and_constant(self, passes: dict[str, Any], settings: Settings, tokens: bool = False):
        empty = {n: np.flatnonzero(p.numel == 0).tolist() for n, p in passes.items()}
        if any(empty.values()):
            yield self.finding("SC803", "Empty inputs in " + _per_split(empty, passes) + ".", samples=empty,
                               evidence={"samples": {n: len(v) for n, v in empty.items()}})
        constant = {n: np.flatnonzero((p.numel > 1) & (p.std == 0)).tolist() for n, p in passes.items()}
        if any(constant.values()):
            fractions = {n: len(v) / passes[n].n for n, v in constant.items()}
            severe = max(fractions.values()) >= settings.constant_error_fraction
            # a window of one repeated token is text (a run of spaces, padding), not a blank decode
            yield self.finding(
                "SC804", "Inputs with one value everywhere in " + _per_split(constant, passes)
                + (": the inputs carry no signal." if severe else
                   ": windows of one repeated token (runs of spaces, padding), ordinary in text." if tokens else "."),
                severity="error" if severe else "info" if tokens else "warning", samples=constant,
                evidence={"samples": {n: len(v) for n, v in constant.items()},
                          "fraction": {n: round(f, 4) for n, f in fractions.items()}},
            )

    def _consistency(self, passes: dict[str, Any], sequences: bool = False, padded: bool = False):
        for code, attr in (("SC805", "input_shapes"), ("SC806", "input_dtypes")):
            per_split = {n: Counter(getattr(p, attr)) for n, p in passes.items()}
            overall = Counter()
            for counter in per_split.values():
                overall.update(counter)
            if len(overall) <= 1:
                continue
            usual = overall.most_common(1)[0][0]
            odd = {n: [i for i, v in enumerate(getattr(p, attr)) if v != usual] for n, p in passes.items()}
            kinds = {n: {str(k): v for k, v in c.items()} for n, c in per_split.items()}
            what = "shapes" if code == "SC805" else "dtypes"
            # sequences of different lengths are the norm (a collate_fn pads them): only the rank must agree; so are
            # inputs of different lengths (one dimension differs: a sequence's, or the length of named inputs read
            # side by side, Hugging Face's input_ids and attention_mask) that the training loader's own collate_fn
            # batches (an RNN over padded, packed sequences; DataCollatorWithPadding)
            lengths = sequences and code == "SC805" and len({len(k) for k in overall}) == 1
            collated = padded and code == "SC805" and _one_axis_varies(list(overall))
            yield self.finding(
                code, f"Inputs have {len(overall)} different {what}; the most common is {usual}. "
                + "; ".join(f"{n}: {_most_common(c)}" for n, c in per_split.items())
                + (": sequences of different lengths, which is ordinary for task: sequence." if lengths else
                   ": different lengths, which the training DataLoader's collate_fn batches." if collated else "."),
                samples=odd, evidence={what: kinds, "most_common": str(usual),
                                       "other": {n: len(v) for n, v in odd.items()}},
                severity="info" if lengths or collated else None,
            )

    def _labels(self, ctx: Any, passes: dict[str, Any]):
        if ctx.task == "sequence":
            yield from self._position_labels(ctx, passes)
            return
        width = ignored = None
        if loss_kind(ctx.loss_fn) in ("cross_entropy", "nll"):
            width = ctx.output_shape[0] if ctx.output_shape else None
            ignored = ignored_label(ctx.loss_fn)  # -1 for unlabeled samples in semi-supervised pipelines
        limit = width or ctx.num_classes
        not_int, outside = {}, {}
        for n, p in passes.items():
            t = p.targets
            if p.structured_targets:
                continue  # a dict per sample (multi-task heads) and a loss of the user's that reads it: no class ids
            if t is None or not np.issubdtype(t.dtype, np.number):
                not_int[n] = list(range(p.n))
                continue
            t = t.astype(np.float64)
            if t.ndim == 2 and t.shape[1] == 1:
                t = t[:, 0]
            if t.ndim != 1:
                continue  # one-hot, multi-label or dense targets: not class ids
            finite = np.isfinite(t)
            not_int[n] = np.flatnonzero(finite & (t != np.round(t))).tolist()
            bad = finite & ((t < 0) | ((t >= limit) if limit else False)) & (t != ignored)
            outside[n] = np.flatnonzero(bad & (t == np.round(t))).tolist()
        if any(not_int.values()):
            examples = {n: passes[n].targets[v[:3]].tolist() if passes[n].targets is not None else "unreadable"
                        for n, v in not_int.items() if v}
            yield self.finding("SC808", "Targets that are not whole-number class ids in " + _per_split(not_int, passes)
                               + f" (e.g. {examples}).", samples=not_int,
                               evidence={"samples": {n: len(v) for n, v in not_int.items()}})
        if any(outside.values()):
            values = sorted({int(passes[n].targets.reshape(len(passes[n].targets), -1)[i, 0])
                             for n, v in outside.items() for i in v[:1000]})
            source = f"the model's {width} outputs" if width else f"num_classes={limit}"
            yield self.finding(
                "SC807", f"Labels {values[:10]} fall outside [0, {limit}) ({source}) in " + _per_split(outside, passes) + ".",
                samples=outside, evidence={"labels_outside": values[:50], "num_classes": limit,
                                           "samples": {n: len(v) for n, v in outside.items()}},
            )

    def _position_labels(self, ctx: Any, passes: dict[str, Any]):
        """task: sequence: every target is a class id below the output width; negative ids are ignored positions."""
        limit = ctx.class_limit
        not_int, outside, seen = {}, {}, set()
        for n, p in passes.items():
            t = p.targets
            if t is None or not np.issubdtype(t.dtype, np.number):
                continue  # targets of different lengths: the loss sees them padded
            flat = t.reshape(len(t), -1).astype(np.float64)
            finite = np.isfinite(flat)
            not_int[n] = np.flatnonzero((finite & (flat != np.round(flat))).any(1)).tolist()
            if limit:
                over = finite & (flat >= limit) & (flat == np.round(flat))
                outside[n] = np.flatnonzero(over.any(1)).tolist()
                seen |= {int(v) for v in np.unique(flat[over])[:50]}
        if any(not_int.values()):
            yield self.finding("SC808", "Per-position targets that are not whole-number class ids in "
                               + _per_split(not_int, passes) + ".", samples=not_int,
                               evidence={"samples": {n: len(v) for n, v in not_int.items()}})
        if any(outside.values()):
            yield self.finding(
                "SC807", f"Per-position targets {sorted(seen)[:10]} fall outside [0, {limit}) (the model's {limit} "
                "outputs per position) in " + _per_split(outside, passes) + "; negative targets count as ignored.",
                samples=outside, evidence={"labels_outside": sorted(seen)[:50], "num_classes": limit,
                                           "samples": {n: len(v) for n, v in outside.items()}},
            )

    def _scale(self, ctx: Any, passes: dict[str, Any], settings: Settings):
        scales = {n: p.input_scale() for n, p in passes.items()}
        within = lambda level: settings.min_abs <= level <= settings.max_abs  # noqa: E731
        for n, s in scales.items():
            level = s["median_abs_max"]
            if not np.isfinite(level) or within(level):
                continue
            first = first_layer_scale(ctx, ctx.train if n == "train" else ctx.val)
            if first is not None and within(first[1]):
                continue  # the model scales its inputs itself (x / 255 in forward, a BatchNorm first)
            p = passes[n]
            too = "large" if level > settings.max_abs else "small"
            seen = f"; the model's first layer ({first[0]}) reads them at {first[1]:.4g}" if first is not None else ""
            yield self.finding(
                "SC809", f"{n} inputs are far from a normalized scale: a typical sample's largest |value| is {level:.4g} "
                f"(mean {s['mean']:.4g}, std {s['std']:.4g}, range {np.nanmin(p.minimum):.4g} to "
                f"{np.nanmax(p.maximum):.4g}){seen}; too {too} for a network initialized for unit-scale inputs.",
                evidence={"split": n, **{k: float(f"{v:.6g}") for k, v in s.items()},
                          "min": float(np.nanmin(p.minimum)), "max": float(np.nanmax(p.maximum)),
                          "first_layer": None if first is None else {"module": first[0], "median_abs_max":
                                                                     float(f"{first[1]:.6g}")},
                          "rule": f"{settings.min_abs} <= median max|x| <= {settings.max_abs}, of the inputs or of "
                                  "what the model's first weight layer reads"},
            )
            break  # one finding: the fix is the same for both splits
        yield from self._split_scale(scales, settings)

    def _split_scale(self, scales: dict[str, dict], settings: Settings):
        from sanitycheck.pipeline.data import scale_shift, within_scale

        train, val = scales.get("train"), scales.get("val")
        apart = scale_shift(train, val) if train is not None and val is not None else None
        if apart is None:
            return  # nothing to compare (constant inputs: SC804)
        ratio, shift = apart
        if within_scale(apart, settings.split_std_ratio, settings.split_mean_shift):
            return
        yield self.finding(
            "SC811", f"The validation inputs are on another scale than the training inputs: mean {val['mean']:.4g} "
            f"and std {val['std']:.4g} against {train['mean']:.4g} and {train['std']:.4g} (std ratio {ratio:.3g}, "
            f"means {shift:.3g} training stds apart). The two splits are not preprocessed the same way (or hold very "
            "different data): either way the validation scores say little about the model.",
            evidence={"train": {k: float(f"{train[k]:.6g}") for k in ("mean", "std")},
                      "val": {k: float(f"{val[k]:.6g}") for k in ("mean", "std")},
                      "std_ratio": float(f"{ratio:.6g}"), "mean_shift_in_train_stds": float(f"{shift:.6g}"),
                      "rule": f"1/{settings.split_std_ratio:g} <= std ratio <= {settings.split_std_ratio:g} and "
                              f"mean shift <= {settings.split_mean_shift:g} training stds"},
        )


#: Samples SC809's look at the model's first weight layer reads.
FIRST_LAYER_SAMPLES = 64


def first_layer_scale(ctx: Any, split: Any) -> tuple[str, float] | None:
    """``(module name, median over samples of the largest |value|)`` of what the model's first weight layer (Linear,
    convolution, recurrent) reads on up to FIRST_LAYER_SAMPLES samples of ``split``, from one traced forward pass of
    a fresh model in training mode, as the first step sees it (:func:`~sanitycheck.probing.structure.trace_forward`):
    a model that scales its inputs itself (``x / 255`` in ``forward``, a BatchNorm first) shows it there. None when
    no such layer reads a floating-point tensor or the forward pass fails."""
    from sanitycheck.probing.structure import trace_forward, weight_layer_types

    indices = ctx.usable_indices(split)[:FIRST_LAYER_SAMPLES]
    if not len(indices):
        return None
    try:
        trace = trace_forward(ctx.make_model("data-integrity:first-layer"), split.unpack(ctx.batch(split, indices))[0])
    except Exception:
        return None  # a val split the model cannot read is the preflight's or another check's to report
    first = next((c for c in trace.calls if isinstance(c.module, weight_layer_types()) and c.input_level is not None),
                 None)
    return None if first is None else (first.name, first.input_level)


#: Training samples SC812 reads, and the share of scored target positions that must be padding to report it.
PADDING_SAMPLES = 256
PADDING_SHARE = 0.01


#: The message names this many of a split's shapes (dtypes), the most common first; the evidence has them all.
LISTED_KINDS = 4


def _most_common(counts: Counter) -> str:
    """``"(18,) x163, (16,) x161, ... and 77 more (lengths 12 to 96)"``: a text dataset has a shape per length."""
    text = ", ".join(f"{k} x{v}" for k, v in counts.most_common(LISTED_KINDS))
    if len(counts) <= LISTED_KINDS:
        return text
    text += f" and {len(counts) - LISTED_KINDS} more"
    if all(isinstance(k, tuple) and len(k) for k in counts) and len({k[1:] for k in counts}) == 1:
        text += f" (lengths {min(k[0] for k in counts)} to {max(k[0] for k in counts)})"
    return text


def _per_split(indices: dict[str, list[int]], passes: dict[str, Any]) -> str:
    return ", ".join(f"{len(v)} of {passes[n].n} {n} samples" for n, v in indices.items() if v)


def _pads(ctx: Any) -> bool:
    """Whether the training split is a DataLoader with its own collate_fn (torch's default one stacks, and fails
    on inputs of different shapes)."""
    from torch.utils.data import default_collate

    collate = getattr(ctx.train.loader, "collate_fn", None)
    return collate is not None and collate is not default_collate


def _one_axis_varies(shapes: list[tuple]) -> bool:
    """Whether shapes of one rank (at least 1) differ along a single axis only (lengths that a collate_fn pads)."""
    if not shapes or len({len(s) for s in shapes}) != 1 or not shapes[0]:
        return False
    return sum(len({s[axis] for s in shapes}) > 1 for axis in range(len(shapes[0]))) <= 1


@hookimpl
def sanitycheck_checks():
    return [DataIntegrity()]
