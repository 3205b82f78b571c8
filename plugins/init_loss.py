"""``init-loss``: the loss of a fresh model against the value an untrained model should have.

Karpathy's "verify loss @ init": with C classes and near-uniform outputs, cross-entropy starts at ln C;
MSE starts near the targets' variance when the outputs start near their mean (near the middle of the range, when a
sigmoid or tanh squashes them into one that holds the targets). Far off means the output
scale or initialization is wrong, or the outputs are not what the loss expects.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.pipeline.losses import ELEMENTWISE, logits_of, loss_kind, reduction


#: SC901 compares a mean over at least this many training samples with its expected value (fewer: not judged).
MIN_SAMPLES = 16
#: Regression targets whose mean is at most this far from 0 are on the unit scale a fresh model's outputs start on:
#: MSE (L1) is then expected at the loss of predicting 0 rather than at the targets' variance (mean deviation).
UNIT_MEAN = 1.0


class Settings(CheckSettings):
    samples: int = Field(256, ge=8, description="Training samples the initial loss is averaged over (scaled by the profile).")
    high_ratio: float = Field(
        1.5, gt=1, description="Warn when loss > max(high_ratio x expected, expected + 0.5) (classification losses)."
    )
    high_ratio_regression: float = Field(
        2.0, gt=1, description="Warn when loss > this x the target variance (MSE) or mean absolute deviation (L1)."
    )
    low_ratio: float = Field(0.5, gt=0, lt=1, description="Warn when loss < low_ratio x the lowest plausible value.")


CODES = (
    CodeDoc(
        code="SC901", title="Loss at initialization far from its expected value", severity="warning",
        what="Averages the loss of a fresh model (train mode, no update) over 256 training samples and compares "
        "it with what an untrained model should score: ln C for cross-entropy/NLL on C outputs (the label-prior "
        "entropy H(p) is the lowest a constant prediction reaches when classes are skewed); for task: sequence ln C per "
        "counted token, C the output width at each position (the vocabulary), positions whose target is ignored "
        "(negative, e.g. ignore_index -100) left out of the loss and of the target-token entropy; ln 2 for binary "
        "cross-entropy (ln 2 x (1 + (w - 1) p) with BCEWithLogitsLoss(pos_weight=w), p the share of positives), "
        "the targets' variance for MSE and their mean absolute deviation for L1 (the loss of predicting 0, where "
        "a fresh model's outputs start, when that is higher and the targets' mean is within 1 of 0: pixels in [0, 1]; "
        "when the outputs are squashed "
        "into a range that holds the targets, confirmed by scaling the last layer 100x: a sigmoid over [0, 1] or a "
        "tanh over [-1, 1], the loss of predicting the range's middle, 0.5 or 0, where such a model starts). "
        "Decision rule: "
        "warning when the loss is above max(1.5x expected, expected + 0.5 nats) for classification or 2x the "
        "expected value for regression, or below 0.5x the lowest plausible value. Needs at least 16 training "
        "samples (fewer: not judged). With loss: model the model's own loss is measured, and compared when the "
        "preflight matched it with the cross-entropy of its outputs.",
        why="A model that starts far from the expected loss spends its first epochs undoing a bad start (the "
        "'hockey stick' loss curve), or its outputs are not on the scale the loss assumes.",
        example="A final layer whose weights are scaled up (confident random predictions, loss 10+ instead of "
        "2.3); regression targets around 150 with the model's outputs starting at 0 (MSE 25000 vs variance 6000); "
        "reduction='sum' (loss times the batch size).",
        fix="Initialize the last layer small and set its bias to the log class priors (classification) or the "
        "target mean (regression); standardize regression targets; use reduction='mean'.",
        explained_by=("SC902", "SC903"),
    ),
    CodeDoc(
        code="SC902", title="Outputs are not what the loss expects", severity="warning",
        what="Looks at a fresh model's outputs: probabilities (every row in [0,1] summing to 1) fed to "
        "CrossEntropyLoss, probabilities in [0,1] fed to BCEWithLogitsLoss, or raw scores (not log-probabilities: "
        "a row's logsumexp is not 0) fed to NLLLoss. Severity: error for raw scores fed to NLLLoss (the loss is "
        "then unbounded below) and for outputs squashed into [0,1] before BCEWithLogitsLoss when a probe confirms "
        "the squashing (the model's outputs stay in [0,1] with the weights and bias of its last nn.Linear scaled "
        "100x, so a sigmoid follows it); warning for a softmax before CrossEntropyLoss (overfit-batch's SC301 is "
        "the error there, naming the cap the softmax puts on the loss) and for outputs in [0,1] the probe cannot "
        "confirm.",
        why="CrossEntropyLoss applies log_softmax itself: a softmax before it squashes the gradients and caps how "
        "low the loss can go (about 1.46 on 10 classes), so the model learns slowly and never becomes confident.",
        example="model = nn.Sequential(..., nn.Linear(64, 10), nn.Softmax(dim=1)) with nn.CrossEntropyLoss().",
        fix="Return raw logits from the model (drop the final Softmax/Sigmoid) and let the loss apply it; with "
        "NLLLoss, end the model with log_softmax.",
    ),
    CodeDoc(
        code="SC903", title="Outputs and targets have different shapes: the loss broadcasts", severity="error",
        what="For element-wise losses (MSE, L1, Huber, BCE) compares the shape of the outputs with the targets'.",
        why="MSELoss on outputs (N, 1) and targets (N,) broadcasts to an (N, N) matrix: every prediction is "
        "compared with every target, the loss is wrong and the model learns to predict the mean.",
        example="nn.Linear(d, 1) with nn.MSELoss() and a target tensor of shape (batch,).",
        fix="Make the shapes match: outputs.squeeze(-1), or targets.unsqueeze(-1) (view(-1, 1)) in the dataset.",
    ),
    CodeDoc(
        code="SC904", title="Loss at initialization is NaN or Inf", severity="error",
        what="Reported when the loss of a fresh, untrained model is not finite on some training batch.",
        why="Training cannot start from a non-finite loss; every update would be NaN.",
        example="log() of a probability that is exactly 0; BCELoss on outputs outside [0, 1]; NaN inputs.",
        fix="Use numerically stable losses on logits (CrossEntropyLoss, BCEWithLogitsLoss) and clean the inputs.",
    ),
)


class InitLoss(Check):
    name = "init-loss"
    summary = ("the loss at initialization far from its expected value (ln C for C classes, the target variance "
               "for MSE); a softmax fed to CrossEntropyLoss; outputs and targets that broadcast")
    cost = "well under 1 s: forward passes of a fresh model on 256 samples"
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        import torch

        kind = loss_kind(ctx.loss_fn)
        indices = ctx.sample_indices(ctx.train, ctx.budget(settings.samples, minimum=8), "init-loss")
        model = ctx.make_model("init-loss")
        model.train()  # what the first training step sees (BatchNorm normalizes with batch statistics)
        losses, outputs, targets = [], [], []
        with torch.no_grad():
            for start in range(0, len(indices), ctx.config.batch_size):
                chunk = indices[start:start + ctx.config.batch_size]
                batch = ctx.batch(ctx.train, chunk)
                _, y = ctx.train.unpack(batch)
                out, loss = ctx.forward(model, batch)
                out = logits_of(out)  # a dict of named outputs: its logits
                losses.append((float(loss), len(chunk)))
                if isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor):
                    outputs.append(out.detach().float().cpu())
                    targets.append(y.detach().cpu())
        measured = sum(v * n for v, n in losses) / sum(n for _, n in losses)
        name = kind if kind != "unknown" else type(ctx.loss_fn).__name__
        if ctx.model_computes_loss:
            name = "the model's own loss" + (f" ({kind})" if kind != "unknown" else "")
        base = {"loss": name,
                "reduction": reduction(ctx.loss_fn), "measured": _r(measured), "samples": len(indices)}

        if not math.isfinite(measured):
            yield self.finding("SC904", f"The loss of a fresh model is {measured} on training samples.",
                               evidence=base, samples={"train": [int(i) for i in indices]})
            return
        if not outputs:
            self.skip("the model's outputs or the targets are not tensors; no expectation to compare with")
        out, tgt = torch.cat(outputs), torch.cat(targets)
        mismatch = kind in ELEMENTWISE and tuple(out.shape) != tuple(tgt.shape)
        if mismatch:
            yield self.finding(
                "SC903", f"{base['loss']} gets outputs of shape {tuple(out.shape[1:])} per sample and targets of shape "
                f"{tuple(tgt.shape[1:])}: PyTorch broadcasts them and the loss compares the wrong pairs.",
                evidence={**base, "output_shape": list(out.shape[1:]), "target_shape": list(tgt.shape[1:])},
            )
        wrong = self._outputs_mismatch(kind, out, -1 if ctx.task == "sequence" else 1)
        if wrong:
            severity = "error" if kind == "nll" else "warning"
            squashed = None
            if kind == "bce_logits":
                squashed = _squashed_into(ctx, model, indices)
                if squashed:
                    severity = "error"
                    wrong += (" Confirmed: with the weights and bias of the last layer scaled 100x the outputs "
                              "still lie in [0, 1], so a sigmoid follows it. The loss cannot go below ln(1 + e^-1) = "
                              "0.313 for a positive label or ln 2 = 0.693 for a negative one, and the gradients "
                              "vanish as the model becomes confident.")
            yield self.finding("SC902", wrong, severity=severity,
                               evidence={**base, "output_min": _r(float(out.min())), "output_max": _r(float(out.max())),
                                         "squashing_confirmed": squashed})
        if mismatch:
            return
        if len(indices) < MIN_SAMPLES:  # the measured mean loss and the targets' statistics are too noisy
            return
        squashed = _start_of_squashed(ctx, model, indices, out, tgt.float()) if kind in ("mse", "l1") else None
        expected = self._expected(kind, out, tgt, settings, ctx.task, getattr(ctx.loss_fn, "shift", 0),
                                  _pos_weight(ctx.loss_fn) if kind == "bce_logits" else None, squashed)
        if expected is None:
            return
        low, high, label, ceiling = expected
        evidence = {**base, "expected": _r(high), "lowest_plausible": _r(low), "warn_above": _r(ceiling),
                    "warn_below": _r(settings.low_ratio * low), "ratio": _r(measured / high) if high else None}
        if measured > ceiling or measured < settings.low_ratio * low:
            direction = "above" if measured > high else "below"
            causes = ("the output scale or initialization (a large final layer, unnormalized inputs), "
                      "reduction='sum', or regression targets far from zero" if direction == "above" else
                      "a loss that is not the one training optimizes (NLLLoss on raw scores?), or labels that leak "
                      "into the inputs")
            if reduction(ctx.loss_fn) == "sum":
                causes = "reduction='sum' (the loss grows with the batch size)"
            yield self.finding(
                "SC901", f"The loss of a fresh model is {measured:.4g}, {direction} {label}. Likely cause: {causes}.",
                evidence=evidence,
            )

    @staticmethod
    def _expected(kind: str, out: Any, tgt: Any, settings: Settings, task: str = "classification",
                  shift: int = 0, pos_weight: float | None = None,
                  squashed: tuple[float, float, float] | None = None) -> tuple[float, float, str, float] | None:
        """(lowest plausible, expected, how it was derived, warn-above) for a fresh model, or None if unknown.
        ``squashed``: ``(low, high, start)`` when a regression model's outputs are squashed into a range that holds
        the targets (:func:`_start_of_squashed`): MSE and L1 are then expected at the output it starts near."""
        from sanitycheck.pipeline.losses import class_scores, shifted

        def ceiling_c(expected: float) -> float:  # an absolute allowance keeps small ln C (binary) from flagging noise
            return max(settings.high_ratio * expected, expected + 0.5)

        high_r = settings.high_ratio_regression
        if kind in ("cross_entropy", "nll") and task == "sequence":
            # one class per position: ln C per counted token, C the output width; ignored targets (< 0) left out
            pair = class_scores(*shifted(out, tgt, shift))
            if pair is None:
                return None
            classes = int(pair[0].shape[1])
            prior = _entropy(pair[1].long().numpy(), classes)
            return prior, math.log(classes), f"the expected ln {classes} = {math.log(classes):.4g} per token for " \
                f"{classes} outputs per position (target-token entropy {prior:.4g})", ceiling_c(math.log(classes))
        if kind in ("cross_entropy", "nll") and out.ndim >= 2:
            classes = out.shape[1]
            labels = tgt.long().reshape(-1).numpy() if tgt.ndim == out.ndim - 1 else None
            prior = _entropy(labels, classes) if labels is not None else math.log(classes)
            return prior, math.log(classes), f"the expected ln {classes} = {math.log(classes):.4g} for {classes} outputs " \
                f"(label-prior entropy {prior:.4g})", ceiling_c(math.log(classes))
        if kind in ("bce_logits", "bce"):
            t = tgt.float().numpy().reshape(-1)
            p = float(np.clip(t.mean(), 1e-6, 1 - 1e-6))
            if pos_weight is not None and pos_weight != 1:
                # BCEWithLogitsLoss(pos_weight=w) weighs each positive's term w times and still averages over all
                # targets: ln 2 (1 + (w - 1) p) at probability 1/2, and the best constant predicts w p / (w p + 1 - p)
                w = pos_weight
                expected = math.log(2) * (1 + (w - 1) * p)
                q = w * p / (w * p + 1 - p)
                prior = -(w * p * math.log(q) + (1 - p) * math.log(1 - q))
                label = (f"the expected ln 2 x (1 + (pos_weight - 1) x positives) = {expected:.4g} (pos_weight "
                         f"{w:.3g}, {p:.1%} positives; the best constant's loss {prior:.4g})")
                return prior, expected, label, ceiling_c(expected)
            prior = -(p * math.log(p) + (1 - p) * math.log(1 - p))
            return prior, math.log(2), f"the expected ln 2 = 0.6931 (label-prior entropy {prior:.4g})", ceiling_c(math.log(2))
        if kind in ("mse", "l1"):
            t = tgt.float().numpy()
            spread = float(t.var()) if kind == "mse" else float(np.abs(t - np.median(t, axis=0)).mean())
            if spread <= 0:
                return None
            name = "variance" if kind == "mse" else "mean absolute deviation"

            def loss_at(value: float) -> float:  # of predicting one value for every target
                return float(((t - value) ** 2).mean() if kind == "mse" else np.abs(t - value).mean())

            if squashed is not None:
                # a sigmoid (tanh) output starts near 0.5 (0) whatever the targets' mean: an autoencoder over pixels
                # in [0, 1] that are mostly dark starts at 2.4-2.7x their variance (real MNIST), and that is no fault
                low, high, start = squashed
                at_start = loss_at(start)
                return spread, at_start, (f"{at_start:.4g}, the loss of predicting {start:g} where outputs squashed "
                                          f"into [{low:g}, {high:g}] start (the targets' {name} {spread:.4g})"), \
                    high_r * at_start
            mean = float(t.mean())
            if abs(mean) <= UNIT_MEAN:
                # outputs start near 0 (default init), not at the targets' mean: on targets of the unit scale
                # (pixels in [0, 1]) the loss of predicting 0 is where a fresh model starts, and its bias reaches
                # their mean in a few dozen steps (PyTorch's super-resolution example: 0.30 against a variance of
                # 0.055 and a loss at 0 of 0.26). Targets around 150 are another matter: the case SC901 is for
                at_zero = loss_at(0.0)
                if at_zero > spread:
                    return spread, at_zero, (f"{at_zero:.4g}, the loss of predicting 0 where a fresh model's outputs "
                                             f"start (the targets' mean {mean:.3g}, {name} {spread:.4g})"), \
                        high_r * at_zero
            return spread, spread, f"the targets' {name} {spread:.4g}", high_r * spread
        return None

    @staticmethod
    def _outputs_mismatch(kind: str, out: Any, axis: int = 1) -> str | None:
        """What is wrong with a fresh model's outputs for this loss (``axis``: the class axis), or None."""
        import torch

        if out.numel() < 8:
            return None
        in_unit = bool(((out >= 0) & (out <= 1)).all())
        if kind == "cross_entropy" and out.ndim >= 2 and in_unit and torch.allclose(out.sum(axis), torch.ones(()), atol=1e-3):
            return ("The model's outputs are probabilities (every row sums to 1) but CrossEntropyLoss expects raw "
                    "logits: a softmax is applied twice, squashing gradients and capping how low the loss can go.")
        if kind == "bce_logits" and in_unit:
            return ("Every output lies in [0, 1], as after a sigmoid, but BCEWithLogitsLoss applies the sigmoid "
                    "itself: the model's confidence is squashed and the loss cannot approach 0.")
        if kind == "nll" and out.ndim >= 2:
            lse = torch.logsumexp(out, dim=axis)
            if float(lse.abs().max()) > 1e-3:
                return ("NLLLoss expects log-probabilities (rows whose exp sums to 1), but the model's outputs are raw "
                        f"scores (logsumexp up to {float(lse.abs().max()):.3g}): the loss is -output[target], unbounded "
                        "below, and the model lowers it by growing its scores instead of learning.")
        return None


def _squashed_into(ctx: Any, model: Any, indices: Any, low: float = 0.0, high: float = 1.0) -> bool | None:
    """Whether the outputs stay in [low, high] with the weights and bias of the model's last linear or
    convolutional layer scaled 100x (a sigmoid or tanh follows it: raw outputs that merely start inside the range
    leave it); ``None`` when it has no such layer."""
    import copy

    import torch
    from torch import nn

    scalable = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    probe = copy.deepcopy(model)
    layers = [m for m in probe.modules() if isinstance(m, scalable)]
    if not layers:
        return None
    with torch.no_grad():
        for param in layers[-1].parameters():
            param.mul_(100.0)
        out = logits_of(ctx.outputs(probe.eval(), ctx.batch(ctx.train, indices[:64])))
    if not isinstance(out, torch.Tensor):
        return None
    out = out.float()
    return bool(((out >= low) & (out <= high)).all()) and float(out.max() - out.min()) > 0


#: Output ranges of the squashing functions a regression model ends in, with the output a fresh model starts near:
#: sigmoid (0.5 in [0, 1]) and tanh (0 in [-1, 1]).
_SQUASHES = ((0.0, 1.0, 0.5), (-1.0, 1.0, 0.0))


def _start_of_squashed(ctx: Any, model: Any, indices: Any, out: Any, tgt: Any) -> tuple[float, float, float] | None:
    """``(low, high, start)`` when a fresh regression model's outputs are squashed into a range that holds the
    targets too (an autoencoder's sigmoid over pixels in [0, 1], a tanh over [-1, 1]): it then starts near the
    middle of that range, not at the targets' mean; else None."""
    for low, high, start in _SQUASHES:
        inside = bool(((out >= low) & (out <= high)).all()) and bool(((tgt >= low) & (tgt <= high)).all())
        if inside and _squashed_into(ctx, model, indices, low, high):
            return low, high, start
    return None


def _entropy(labels: np.ndarray, classes: int) -> float:
    counts = np.bincount(labels[(labels >= 0) & (labels < classes)], minlength=classes).astype(float)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _r(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(f"{value:.6g}")


def _pos_weight(loss_fn: Any) -> float | None:
    """BCEWithLogitsLoss's ``pos_weight`` when it is one number (one output per sample), else None."""
    import torch

    weight = getattr(loss_fn, "pos_weight", None)
    return float(weight) if isinstance(weight, torch.Tensor) and weight.numel() == 1 else None


@hookimpl
def sanitycheck_checks():
    return [InitLoss()]
