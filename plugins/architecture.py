"""``architecture``: what the model's structure says, from a module walk and one traced forward pass.

Dropout whose output reaches a BatchNorm (the variance shift of Li et al. 2019, "Understanding the
Disharmony between Dropout and Batch Normalization by Variance Shift"), BatchNorm trained on batches too
small for its statistics (Wu & He 2018, "Group Normalization"), and a convolution or linear bias that the
next BatchNorm cancels. A final activation that the loss applies again is ``init-loss``'s (SC902), and a
tiny last batch feeding BatchNorm is ``dataloader``'s (SC1205): neither is repeated here.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl


class Settings(CheckSettings):
    min_batch: int = Field(8, ge=2, description="Warn when BatchNorm trains on batches of fewer samples than this.")
    trace_samples: int = Field(8, ge=2, description="Training samples in the traced forward pass.")


CODES = (
    CodeDoc(
        code="SC1401", title="Dropout feeds a BatchNorm layer (variance shift)", severity="warning",
        what="Traces one forward pass of a fresh model in training mode (forward hooks on every leaf module, "
        "linking each module to the one whose output tensor it receives; views and in-place modules keep the "
        "link, functional operations such as `x + residual` end it). Decision rule: warning when a Dropout "
        "(any `nn.Dropout*` with p > 0) lies on the module chain that leads into a BatchNorm layer, directly or "
        "through other layers; every pair is named with the number of layers between them.",
        why="In training, dropout scales the surviving activations by 1/(1-p), which changes their variance; "
        "BatchNorm's running variance is accumulated on those training-time activations. At test time dropout "
        "is off, the variance is different, and BatchNorm normalizes with the wrong statistics: the 'variance "
        "shift' (Li et al. 2019) that makes networks combining the two score worse than with either alone.",
        example="nn.Sequential(nn.Linear(64, 256), nn.Dropout(0.5), nn.BatchNorm1d(256), nn.ReLU(), ...); a "
        "conv block Conv-BN-ReLU-Dropout2d-Conv-BN.",
        fix="Move dropout after the last BatchNorm (e.g. only before the classifier), drop one of the two, or "
        "re-estimate BatchNorm's statistics with dropout off before evaluating.",
    ),
    CodeDoc(
        code="SC1402", title="BatchNorm trained on small batches", severity="warning",
        what="Reads the training batch size: the training DataLoader's batch_size (or the first batch of its "
        "batch_sampler), else `batch_size` from the config. Decision rule: when the model has BatchNorm layers, "
        "warning when the batch size is below 8 (`min_batch`); error when a BatchNorm layer would see one value "
        "per channel (batch size 1 on (N, C) inputs: BatchNorm raises in training). A small last batch "
        "(dataset size modulo batch size) is reported by `dataloader` (SC1205).",
        why="BatchNorm normalizes each batch with that batch's own mean and variance. With a few samples those "
        "estimates are noisy, every output depends on the other samples of the batch, and the running "
        "statistics used at test time disagree with what training saw: accuracy drops fast below 8 samples "
        "per batch (Wu & He 2018).",
        example="DataLoader(train, batch_size=2) for a CNN with nn.BatchNorm2d (large images that do not fit "
        "in memory otherwise).",
        fix="Use a larger batch (gradient accumulation does not help BatchNorm), or replace BatchNorm with "
        "GroupNorm or LayerNorm, which do not depend on the batch; or freeze BatchNorm (eval mode) when "
        "fine-tuning a pretrained model.",
    ),
    CodeDoc(
        code="SC1403", title="Bias directly before BatchNorm (redundant)", severity="info",
        what="From the traced forward pass (see SC1401): a Conv*/Linear layer with a bias whose output goes "
        "straight into a BatchNorm layer (reshapes in between allowed). Decision rule: info, listing the pairs.",
        why="BatchNorm subtracts the per-channel mean, which removes any constant bias added before it; its own "
        "shift (beta) takes that role. The bias is a wasted parameter that receives zero gradient on average: "
        "harmless, so this is information, not a problem.",
        example="nn.Conv2d(3, 64, 3) followed by nn.BatchNorm2d(64).",
        fix="Optionally pass bias=False to the layer before BatchNorm (as torchvision's ResNets do).",
    ),
)


class Architecture(Check):
    name = "architecture"
    summary = ("what the model's structure says: dropout feeding BatchNorm (variance shift), BatchNorm trained "
               "on small batches, a bias directly before BatchNorm")
    cost = "instant: a module walk and one forward pass of 8 samples"
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        from sanitycheck.probing.structure import batchnorm_types, dropout_types, trace_forward, training_batches

        model = ctx.make_model("architecture")
        norms = [n for n, m in model.named_modules() if isinstance(m, batchnorm_types())]
        if not norms:
            return  # every rule of this check is about BatchNorm
        indices = ctx.sample_indices(ctx.train, settings.trace_samples, "architecture")
        inputs = ctx.train.unpack(ctx.batch(ctx.train, indices))[0]
        trace = trace_forward(model, inputs)
        bn_calls = [c for c in trace.calls if isinstance(c.module, batchnorm_types())]

        pairs = []  # (dropout call, batchnorm call, layers between)
        for bn in bn_calls:
            for source, hops in trace.upstream(bn):
                if isinstance(source.module, dropout_types()) and float(source.module.p) > 0:
                    pairs.append((source, bn, hops - 1))
        if pairs:
            listed = "; ".join(f"{d.kind}(p={float(d.module.p):g}) '{d.name}' -> {b.kind} '{b.name}'"
                               + (" directly" if k == 0 else f" through {k} layer{'s' if k > 1 else ''}")
                               for d, b, k in pairs[:6])
            yield self.finding(
                "SC1401", f"Dropout's output reaches BatchNorm in the traced forward pass: {listed}"
                f"{' ...' if len(pairs) > 6 else ''}. BatchNorm's running variance is then measured with dropout "
                "on and used with it off: a train/test variance shift.",
                evidence={"pairs": [{"dropout": d.name, "p": float(d.module.p), "batchnorm": b.name, "layers_between": k}
                                    for d, b, k in pairs[:50]], "count": len(pairs)},
            )

        yield from self._small_batches(ctx, settings, training_batches(ctx), bn_calls, norms)

        biased = []
        for bn in bn_calls:
            source = trace.producer(bn)
            if source is not None and _is_biased_affine(source.module):
                biased.append((source, bn))
        if biased:
            yield self.finding(
                "SC1403", f"{len(biased)} layer{'s' if len(biased) > 1 else ''} with a bias feed{'' if len(biased) > 1 else 's'} "
                f"BatchNorm directly ({', '.join(f'{s.name} -> {b.name}' for s, b in biased[:4])}"
                f"{' ...' if len(biased) > 4 else ''}): BatchNorm subtracts the mean, so the bias has no effect. "
                "Harmless; bias=False saves the parameters.",
                evidence={"pairs": [{"layer": s.name, "kind": s.kind, "batchnorm": b.name} for s, b in biased[:50]]},
            )

    def _small_batches(self, ctx: Any, settings: Settings, batches: Any, bn_calls: list, norms: list[str]):
        size = batches.batch_size
        if size is None or size >= settings.min_batch:
            return
        per_sample = {b.name: math.prod(b.input_shape[2:]) if b.input_shape and len(b.input_shape) > 2 else 1
                      for b in bn_calls}
        single = [name for name, n in per_sample.items() if n * size == 1]
        last = batches.last_batch(ctx.train.n)
        evidence = {"batch_size": size, "source": batches.source, "min_batch": settings.min_batch,
                    "last_batch": last, "batchnorm_layers": norms[:20],
                    "values_per_channel": {name: n * size for name, n in list(per_sample.items())[:20]}}
        if single:
            message = (f"The model trains with batches of {size} ({batches.source}), and BatchNorm "
                       f"{', '.join(single[:3])} gets one value per channel: BatchNorm raises on it in training "
                       "('Expected more than 1 value per channel').")
        else:
            message = (f"The model has {len(norms)} BatchNorm layer{'s' if len(norms) > 1 else ''} "
                       f"({', '.join(norms[:3])}{' ...' if len(norms) > 3 else ''}) and trains with batches of {size} "
                       f"({batches.source}), below {settings.min_batch}: each batch's mean and variance are "
                       "noisy estimates and the test-time running statistics will not match training.")
        yield self.finding("SC1402", message, severity="error" if single else None, evidence=evidence)


def _is_biased_affine(module: Any) -> bool:
    from torch import nn

    return isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and getattr(module, "bias", None) is not None


@hookimpl
def sanitycheck_checks():
    return [Architecture()]
