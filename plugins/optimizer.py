"""``optimizer``: the configured optimizer against the standard advice, read from its instance.

Adam-family optimizers with L2 ``weight_decay`` (coupled into the adaptive step) where decoupled weight decay
(AdamW) was meant (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), and weight decay on
normalization and bias parameters. Learning-rate schedules and warm-up are out of scope: the config names
none.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.trainer import rounded


class Settings(CheckSettings):
    probe_steps: int = Field(4, ge=1, description="Steps at learning rate 0 whose gradient statistics give the "
                             "decoupled equivalent of Adam's L2 weight decay (SC1501).")


CODES = (
    CodeDoc(
        code="SC1501", title="Adam with L2 weight_decay: AdamW (decoupled) was probably meant", severity="warning",
        what="Builds the configured optimizer over a fresh model and reads its param_groups. Decision rule: "
        "warning when it is Adam, Adamax, NAdam or RAdam (not AdamW, and not decoupled_weight_decay=True) and a "
        "group has weight_decay > 0. To suggest an AdamW value it runs 4 steps of your train_step at learning "
        "rate 0 and reads the optimizer's own second-moment estimate v (Adamax: its infinity norm u): Adam's L2 "
        "term shrinks a weight by lr * wd / sqrt(v) per step, AdamW by lr * wd', so wd' = wd / sqrt(v), "
        "different for every weight. The finding gives the median and the 10th-90th percentile of wd / sqrt(v) "
        "over the entries of weight tensors (2+ dimensions) with v > 0, measured at initialization (entries whose "
        "gradient is ~0, e.g. weights of always-blank pixels, have sqrt(v) ~ wd * |w| and set the upper end).",
        why="In Adam, weight_decay adds wd * w to the gradient, which is then divided by the gradient's running "
        "RMS: weights with large gradients are barely decayed and weights with small gradients are decayed "
        "hard, so it is neither weight decay nor a well-behaved L2 penalty. AdamW applies the decay directly "
        "to the weights, which regularizes as intended and lets learning rate and decay be tuned separately "
        "(Loshchilov & Hutter 2019).",
        example="optimizer: {target: torch.optim:Adam, lr: 0.001, weight_decay: 0.0001}",
        fix="Use torch.optim.AdamW. There is no exact conversion (the coupled decay depends on each weight's "
        "gradient scale, which changes during training): start from the measured median wd / sqrt(v), or "
        "from AdamW's default 0.01, and tune it on the validation split.",
    ),
    CodeDoc(
        code="SC1502", title="Weight decay on normalization and bias parameters", severity="info",
        what="Reads the optimizer's param_groups: the parameters of normalization layers (BatchNorm, "
        "InstanceNorm, LayerNorm, GroupNorm, RMSNorm) and every bias, in groups with weight_decay > 0. "
        "Decision rule: info when there are any, with their names and how many there are.",
        why="Decay pulls a norm layer's gain towards 0 and its shift and the biases towards 0, which they have "
        "no reason to be; they hold few parameters and do not overfit. Common recipes (BERT, nanoGPT, timm) "
        "exclude them; the effect is usually small, so this is information.",
        example="optimizer: {target: torch.optim:AdamW, weight_decay: 0.05} over a model with BatchNorm.",
        fix="Give the optimizer two parameter groups: weight_decay 0 for parameters with p.ndim < 2 (norm "
        "gains, shifts, biases), your value for the rest. In sanitycheck.yaml, point optimizer.target at a "
        "function (params, **kwargs) that builds those groups and returns the optimizer.",
    ),
)

#: Optimizers whose weight_decay is an L2 term coupled into an adaptive step (AdamW excluded below).
ADAM_FAMILY = ("Adam", "Adamax", "NAdam", "RAdam")


class Optimizer(Check):
    name = "optimizer"
    summary = ("Adam-family optimizers with coupled L2 weight_decay (AdamW intended), with the measured "
               "decoupled equivalent; weight decay on normalization and bias parameters")
    cost = "instant: builds the optimizer; 4 steps at learning rate 0 when Adam has weight_decay"
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        from sanitycheck.probing.structure import norm_and_bias_parameters

        model = ctx.make_model("optimizer")
        optimizer = ctx.make_optimizer(model)
        kind = type(optimizer).__name__
        groups = optimizer.param_groups
        coupled = [g for g in groups if _coupled_adam(optimizer, g) and float(g.get("weight_decay") or 0) > 0]
        if coupled:
            yield self._coupled(ctx, settings, model, optimizer, coupled)

        special = norm_and_bias_parameters(model)
        decayed = [special[id(p)] for g in groups if float(g.get("weight_decay") or 0) > 0
                   for p in g["params"] if id(p) in special]
        if decayed:
            count = sum(p.numel() for g in groups if float(g.get("weight_decay") or 0) > 0
                        for p in g["params"] if id(p) in special)
            decays = sorted({float(g["weight_decay"]) for g in groups if float(g.get("weight_decay") or 0) > 0})
            yield self.finding(
                "SC1502", f"{kind} applies weight_decay {', '.join(f'{d:g}' for d in decays)} to {len(decayed)} "
                f"normalization/bias parameter tensors ({count} values), e.g. {', '.join(decayed[:4])}"
                f"{' ...' if len(decayed) > 4 else ''}. Usual recipes exempt them.",
                evidence={"optimizer": kind, "weight_decay": decays, "tensors": len(decayed), "values": count,
                          "parameters": decayed[:50]},
            )

    def _coupled(self, ctx: Any, settings: Settings, model: Any, optimizer: Any, groups: list[dict]):
        kind = type(optimizer).__name__
        wd = max(float(g["weight_decay"]) for g in groups)
        lr = float(groups[0].get("lr", ctx.learning_rate))
        scale = _gradient_scale(ctx, settings.probe_steps)
        evidence: dict[str, Any] = {"optimizer": kind, "weight_decay": wd, "lr": lr}
        if scale is not None:
            q10, q50, q90 = (wd / s for s in (scale[2], scale[1], scale[0]))  # small sqrt(v): strong decay
            evidence.update({"equivalent_adamw_weight_decay": {"median": rounded(q50), "p10": rounded(q10),
                                                               "p90": rounded(q90)},
                             "sqrt_v_median": rounded(scale[1]), "weights_measured": scale[3],
                             "probe_steps": settings.probe_steps})
            conversion = (f" Measured at initialization ({settings.probe_steps} steps at learning rate 0), the "
                          f"gradient RMS sqrt(v) that Adam divides by has median {scale[1]:.2g}, so your L2 term "
                          f"acts like a decoupled (AdamW) weight_decay of about {q50:.2g} on a typical weight, "
                          f"from {q10:.2g} to {q90:.2g} across the middle 80% of weights.")
            fix = (f"Use torch.optim.AdamW (weight_decay={_nice(q50)} is the measured equivalent at "
                   "initialization, a starting point: the gradient scale changes as training goes, so tune it "
                   "on the validation split; AdamW's default is 0.01).")
        else:
            conversion = ""
            fix = None
        message = (f"{kind} with weight_decay={wd:g} adds an L2 term to the gradient, which the adaptive step "
                   "then divides by each weight's gradient RMS: weights with small gradients are decayed much "
                   "more than others. Decoupled weight decay (AdamW) was probably meant." + conversion)
        return self.finding("SC1501", message, evidence=evidence, fix=fix)


def _coupled_adam(optimizer: Any, group: dict) -> bool:
    """Whether ``group``'s weight decay is an L2 term coupled into an Adam-family step."""
    import torch

    if isinstance(optimizer, torch.optim.AdamW) or group.get("decoupled_weight_decay"):
        return False
    return any(cls.__name__ in ADAM_FAMILY and cls.__module__.startswith("torch.optim")
               for cls in type(optimizer).__mro__)


def _gradient_scale(ctx: Any, steps: int) -> tuple[float, float, float, int] | None:
    """(10th, 50th, 90th percentile of sqrt(v), entries counted): the denominator of the configured Adam-family
    optimizer after ``steps`` of the user's step at learning rate 0 (so nothing moves), over the entries of
    weight tensors (2+ dimensions) with v > 0. ``None`` when it cannot be read."""

    from sanitycheck.probing.numerics import flush_denormal

    model = ctx.make_model("optimizer:probe")
    try:
        optimizer = ctx.make_optimizer(model, lr=0.0)
    except Exception:
        return None
    indices = ctx.sample_indices(ctx.train, ctx.config.batch_size * steps, "optimizer:probe")
    size = max(1, len(indices) // steps)
    with flush_denormal():
        for k in range(steps):
            chunk = indices[k * size:(k + 1) * size]
            if len(chunk):
                ctx.step(model, optimizer, ctx.batch(ctx.train, chunk))
    values = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if p.ndim < 2 or not state:
                continue
            step = float(state.get("step", steps))
            if "exp_avg_sq" in state:  # Adam, NAdam, RAdam: bias-corrected second moment
                beta2 = group.get("betas", (0.9, 0.999))[1]
                denom = (state["exp_avg_sq"] / (1 - beta2 ** max(step, 1))).sqrt()
            elif "exp_inf" in state:  # Adamax: the infinity norm, no bias correction
                denom = state["exp_inf"]
            else:
                continue
            denom = denom.detach().float().flatten()
            values.append(denom[denom > 0].cpu().numpy())
    if not values:
        return None
    flat = np.concatenate(values)
    if len(flat) == 0:
        return None
    q10, q50, q90 = (float(np.quantile(flat, q)) for q in (0.1, 0.5, 0.9))
    return (q10, q50, q90, len(flat)) if all(math.isfinite(v) and v > 0 for v in (q10, q50, q90)) else None


def _nice(value: float) -> str:
    """A value rounded to one significant digit, for a suggestion."""
    return f"{float(f'{value:.1g}'):g}"


@hookimpl
def sanitycheck_checks():
    return [Optimizer()]
