"""``batch-independence``: a model's output for one sample must not depend on the other samples of its batch.

Karpathy's backprop probe ("A Recipe for Training Neural Networks"): make the inputs of a batch require a
gradient, backpropagate the output of sample i alone, and look at the gradient of every other sample's
input: it must be exactly zero. A non-zero gradient means samples mix (a reshape or transpose across the
batch dimension, a reduction over dim 0, a ``view`` with the wrong order). Forward hooks then find the first
module whose output already mixes samples.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.numerics import flush_denormal
from sanitycheck.probing.trainer import rounded

#: Layers that legitimately mix samples in train mode (they use batch statistics).
BATCH_STAT_LAYERS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d",
                     "LazyBatchNorm2d", "LazyBatchNorm3d")


class Settings(CheckSettings):
    batch_size: int = Field(8, ge=2, description="Samples in the probe batch.")
    probes: int = Field(3, ge=1, description="How many samples' outputs are backpropagated (first, middle, last ...).")
    tolerance: float = Field(1e-6, ge=0, description="A cross-sample gradient counts when its largest magnitude "
                             "exceeds this fraction of the sample's own input gradient.")


CODES = (
    CodeDoc(
        code="SC1101", title="Samples mix across the batch in eval mode", severity="error",
        what="In eval mode, backpropagates the summed output of one sample (the first, middle and last of a "
        "batch of 8) to the inputs (token ids: to the output of the nn.Embedding applied to "
        "them; inputs of several tensors (a tuple or a dict), such as an image and its metadata: to the first "
        "floating-point one) and "
        "measures the gradient on the other samples' inputs. Decision rule: "
        "error when its largest magnitude exceeds 1e-6 times that of the sample's own input gradient. The "
        "first module (in execution order) whose output mixes samples is named, found with forward hooks.",
        why="A prediction that depends on which other samples share its batch is wrong at inference (batch "
        "size 1, different batch mates) and leaks information between samples in training. It is almost "
        "always a reshape/view/transpose across the batch dimension or a reduction over dim 0.",
        example="x.view(-1, batch_size) where x.view(batch_size, -1) was meant; x.transpose(0, 1) before a "
        "flatten; x - x.mean(0) inside forward().",
        fix="Keep dim 0 as the batch dimension: x.flatten(1) or x.reshape(x.size(0), -1), permute only "
        "non-batch dimensions, and reduce over dim=1 or later.",
    ),
    CodeDoc(
        code="SC1102", title="Samples mix across the batch in train mode", severity="warning",
        what="The same probe in train mode. Decision rule: info when every module where samples first mix is a "
        "batch-statistics layer (BatchNorm: legitimate), warning when another module mixes samples only in "
        "train mode.",
        why="BatchNorm normalizes with the batch's statistics in training by design (its eval mode uses running "
        "statistics). Any other layer that mixes samples only in training makes training and inference "
        "disagree.",
        example="BatchNorm (info); a custom layer that subtracts the batch mean when self.training is True.",
        fix="Nothing for BatchNorm (use GroupNorm/LayerNorm if tiny batches are a problem); otherwise make "
        "the layer per-sample.",
    ),
)


class BatchIndependence(Check):
    name = "batch-independence"
    summary = "a model whose output for one sample depends on other samples of the batch (backprop probe)"
    cost = "well under 1 s: a few backward passes of a fresh model on 8 samples, in eval and train mode"
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        import torch

        from sanitycheck.probing.inputgrad import InputGradUnavailable, input_grad_pass

        indices = ctx.sample_indices(ctx.train, settings.batch_size, "batch-independence")
        if len(indices) < 2:
            self.skip(f"needs at least 2 usable training samples (has {len(indices)})")
        batch = ctx.batch(ctx.train, indices)
        inputs, _ = ctx.train.unpack(batch)
        several = isinstance(inputs, (tuple, list, dict))  # an image and its metadata: the first float one
        if not several and not (isinstance(inputs, torch.Tensor) and inputs.dtype.is_floating_point) \
                and ctx.token_embedding() is None:
            self.skip(f"the inputs are {type(inputs).__name__}"
                      f"{' of dtype ' + str(inputs.dtype) if isinstance(inputs, torch.Tensor) else ''}, "
                      "not a floating-point tensor that can carry a gradient, nor token ids an nn.Embedding of the "
                      "model reads (those are probed through its output)")
        model = ctx.make_model("batch-independence")
        try:
            with torch.no_grad():
                source = input_grad_pass(ctx, model.eval(), batch, several=True).source
        except InputGradUnavailable as exc:
            self.skip(f"{exc}: there is nothing to take a gradient with respect to")
        probes = sorted({0, len(indices) // 2, len(indices) - 1}) if settings.probes >= 3 else \
            list(range(min(settings.probes, len(indices))))
        evidence = {"batch_size": len(indices), "probed_samples": probes, "gradient_with_respect_to": source}

        with flush_denormal():
            yield from self._probe(ctx, model, batch, indices, probes, settings, evidence)

    def _probe(self, ctx: Any, model: Any, batch: Any, indices: Any, probes: list[int], settings: Settings,
               evidence: dict):
        eval_mix = _mixing(ctx, model.eval(), batch, probes, settings.tolerance)
        if eval_mix is None:
            self.skip("the model's output is not a tensor with the batch as its first dimension")
        if eval_mix["ratio"] > settings.tolerance:
            culprit = _first_mixing_module(ctx, model.eval(), batch, probes[0], settings.tolerance)
            yield self.finding(
                "SC1101", f"In eval mode the output of sample {eval_mix['sample']} depends on the inputs of other "
                f"samples of its batch ({_ratio_text(eval_mix['ratio'])})"
                + (f"; samples first mix in module {culprit}." if culprit else "."),
                evidence={**evidence, "ratio": rounded(eval_mix["ratio"]) if eval_mix["ratio"] != float("inf") else "inf", "first_mixing_module": culprit,
                          "mixed_with": eval_mix["others"][:20]},
                samples={"train": [int(indices[eval_mix["sample"]])]},
            )
            return
        train_mix = _mixing(ctx, model.train(), batch, probes, settings.tolerance)
        if train_mix is not None and train_mix["ratio"] > settings.tolerance:
            culprit = _first_mixing_module(ctx, model.train(), batch, probes[0], settings.tolerance, kinds=True)
            name, kind = culprit if culprit else (None, None)
            legit = kind in BATCH_STAT_LAYERS or (kind is None and _has_batch_stat_layer(model))
            yield self.finding(
                "SC1102", f"In train mode samples of a batch mix ({_ratio_text(train_mix['ratio'])}){f', first in module {name} ({kind})' if name else ''}"
                + (": batch statistics of BatchNorm, which is expected (eval mode is per-sample)." if legit else
                   "; in eval mode they do not, so training and inference disagree."),
                severity="info" if legit else "warning",
                evidence={**evidence, "ratio": rounded(train_mix["ratio"]), "first_mixing_module": name,
                          "module_type": kind},
            )


def _ratio_text(ratio: float) -> str:
    if ratio == float("inf"):
        return "it depends only on other samples' inputs, not on its own"
    return f"the gradient from other samples' inputs is {ratio:.3g}x that from its own"


def _mixing(ctx: Any, model: Any, batch: Any, probes: list[int], tolerance: float) -> dict | None:
    """The largest cross-sample gradient ratio over the probed samples (and where), or None if not applicable."""
    import torch

    from sanitycheck.probing.inputgrad import first_tensor, input_grad_pass

    worst = {"ratio": 0.0, "sample": probes[0], "others": []}
    run = input_grad_pass(ctx, model, batch, several=True)
    x, out = run.inputs, first_tensor(run.outputs)
    if out is None or out.ndim == 0 or out.shape[0] != x.shape[0] or not out.requires_grad:
        return None
    for i in probes:
        (grad,) = torch.autograd.grad(out[i].float().sum(), x, retain_graph=True, allow_unused=True)
        if grad is None:
            continue
        per_sample = grad.detach().abs().reshape(len(x), -1).amax(1)
        own = float(per_sample[i])
        others = per_sample.clone()
        others[i] = 0
        ratio = float(others.max()) / own if own > 0 else (float("inf") if float(others.max()) > 0 else 0.0)
        if ratio > worst["ratio"]:
            worst = {"ratio": ratio, "sample": i,
                     "others": [int(j) for j in torch.nonzero(others > tolerance * max(own, 1e-30)).flatten()]}
    return worst


def _first_mixing_module(ctx: Any, model: Any, batch: Any, i: int, tolerance: float, kinds: bool = False) -> Any:
    """The first module, in execution order, whose output row ``i`` depends on other rows of the input."""
    import torch

    from sanitycheck.probing.inputgrad import first_tensor, input_grad_pass

    run = input_grad_pass(ctx, model, batch, record=True, several=True)
    x = run.inputs
    types = {n: type(m).__name__ for n, m in model.named_modules()}
    for name, _, out in run.calls:
        out = first_tensor(out)
        if out is None or out.ndim == 0 or out.shape[0] != x.shape[0] or not out.requires_grad:
            continue
        (grad,) = torch.autograd.grad(out[i].float().sum(), x, retain_graph=True, allow_unused=True)
        if grad is None:
            continue
        per_sample = grad.abs().reshape(len(x), -1).amax(1)
        own = float(per_sample[i])
        per_sample[i] = 0
        if float(per_sample.max()) > tolerance * max(own, 1e-30):
            # Hooks fire when a module finishes, so children come before their container: the first hit is the
            # innermost module where samples mix.
            return (name, types.get(name)) if kinds else f"{name} ({types.get(name)})"
    return None


def _has_batch_stat_layer(model: Any) -> bool:
    return any(type(m).__name__ in BATCH_STAT_LAYERS for m in model.modules())


@hookimpl
def sanitycheck_checks():
    return [BatchIndependence()]
