"""``causality``: in a next-token model, the output at position t must not depend on the inputs after t.

A causal language model is trained to predict token t+1 from tokens 0..t. If position t can see later positions
(a causal mask left out, ``is_causal=False``, a mask off by one), it reads the very token it is asked to predict:
the training loss falls fast, and at generation time, when no future exists, the model is useless.

The probe backpropagates the output at a few positions t of a fresh model to its inputs (token ids: to the output
of the ``nn.Embedding`` applied to them; see :mod:`sanitycheck.probing.inputgrad`) and measures the gradient at
positions after t: in a causal model it is exactly zero. Forward hooks then find the module where positions
first mix: the first one, in execution order, whose output depends on later positions while its input does not.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.trainer import rounded


class Settings(CheckSettings):
    batch_size: int = Field(3, ge=1, description="Sequences in the probe batch.")
    positions: int = Field(6, ge=1, description="Positions t whose output is backpropagated (spread from the first "
                           "to the second-to-last).")
    tolerance: float = Field(1e-4, ge=0, description="A later position counts when its largest input-gradient "
                             "magnitude exceeds this fraction of the largest at positions up to t.")
    causal: Literal["auto", True, False] = Field(
        "auto", description="auto: probe when the targets are the inputs shifted by one position (or equal to them, "
        "Hugging Face's labels), i.e. next-token prediction; true: always (e.g. forecasting from float inputs); "
        "false: never (a bidirectional tagger reads later positions on purpose).")
    match: float = Field(0.9, gt=0, le=1, description="auto: the share of counted target positions that must equal "
                         "the next (or the same) input token.")


RULE = ("for each probed position t, g(s) = the largest |d output[:, t] / d input[:, s]| over the batch and the "
        "features (token ids: the embedding's output at s); a leak when max over s > t of g(s) > {tol:g} x max over "
        "s <= t of g(s). The module named is the first, in the order calls finish, whose output leaks while its "
        "input does not")

CODES = (
    CodeDoc(
        code="SC1701", title="Outputs depend on later positions (future leakage)", severity="error",
        what="For task: sequence when the targets are the next tokens (the inputs shifted by one position, or equal "
        "to them as Hugging Face labels; checks.causality.causal: true forces the probe), a fresh model in eval mode "
        "runs on 3 training sequences; the output at 6 positions t (spread over the sequence) is backpropagated to the "
        "inputs (token ids: to the output of the nn.Embedding applied to them). Decision rule: error when at some t "
        "the largest gradient magnitude at a later position exceeds 1e-4 times the largest at positions up to t "
        "(a causal model gives exactly 0 there; the relative tolerance absorbs rounding). Forward hooks on every "
        "submodule then name where positions first mix: the first module, in the order calls finish, whose output at "
        "t depends on later inputs while its own input does not. Skipped for other tasks, and for targets that are "
        "not next tokens (tagging: a bidirectional model may read later positions on purpose).",
        why="A next-token model that sees later positions reads the token it is asked to predict: the training "
        "loss drops towards 0 and validation looks excellent, but at generation time there is no future to read "
        "and the model produces garbage.",
        example="nanoGPT's CausalSelfAttention without `att.masked_fill(self.bias[:, :, :T, :T] == 0, "
        "float('-inf'))`; F.scaled_dot_product_attention(q, k, v) without is_causal=True; nn.TransformerEncoder "
        "called without mask=nn.Transformer.generate_square_subsequent_mask(T); a mask built with "
        "torch.tril(..., diagonal=1) (off by one).",
        fix="Mask attention to positions <= t: register_buffer('bias', torch.tril(torch.ones(T, T))) and "
        "masked_fill(bias == 0, -inf) before the softmax, or scaled_dot_product_attention(..., is_causal=True); "
        "pass the causal mask (and is_causal=True) to nn.Transformer layers; pad convolutions on the left only.",
    ),
)


class Causality(Check):
    name = "causality"
    summary = "future leakage in sequence models: an output at position t that depends on inputs after t"
    cost = "well under 1 s: a few backward passes of a fresh model on 3 sequences (more to name the module)"
    trains = False
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        import torch

        from sanitycheck.probing.inputgrad import InputGradUnavailable, first_tensor, input_grad_pass
        from sanitycheck.probing.numerics import flush_denormal

        if ctx.task != "sequence":
            self.skip(f"task: {ctx.task}: outputs have no positions (the probe runs for task: sequence)")
        if settings.causal is False:
            self.skip("checks.causality.causal is false: later positions may be read on purpose")
        indices = ctx.sample_indices(ctx.train, settings.batch_size, "causality")
        batch = ctx.batch(ctx.train, indices)
        inputs, targets = ctx.train.unpack(batch)
        if not isinstance(inputs, torch.Tensor) or inputs.ndim < 2:
            self.skip("the inputs are not a tensor of shape (batch, positions, ...)")
        length = int(inputs.shape[1])
        if length < 2:
            self.skip("the sequences have a single position")
        evidence: dict[str, Any] = {"batch_size": len(indices), "positions": length}
        if settings.causal == "auto":
            share, how = _next_token_share(ctx)
            evidence.update({"next_token_share": rounded(share), "targets": how})
            if share < settings.match:
                self.skip(f"the targets are not the next tokens of the inputs ({share:.0%} of the counted positions "
                          f"match, {settings.match:.0%} needed): per-position tagging, where a bidirectional model "
                          "may read later positions on purpose; set checks.causality.causal: true to probe anyway")
        model = ctx.make_model("causality").eval()
        with flush_denormal():
            try:
                run = input_grad_pass(ctx, model, batch)
            except InputGradUnavailable as exc:
                self.skip(str(exc))
            out = first_tensor(run.outputs)
            if out is None or out.ndim < 2 or out.shape[0] != len(indices) or out.shape[1] != length:
                self.skip(f"the model's outputs ({_shape(out)}) do not have one row per position of the inputs "
                          f"(batch {len(indices)}, {length} positions)" +
                          (": it returns its loss alone" if out is None and ctx.model_computes_loss else ""))
            if not out.requires_grad:
                self.skip("the model's outputs do not depend on its inputs through a gradient")
            evidence["gradient_with_respect_to"] = run.source
            probes = sorted({int(t) for t in np.linspace(0, length - 2, min(settings.positions, length - 1))})
            results = [_leak(out.select(1, t), run.inputs, t, 1, settings.tolerance) for t in probes]
            evidence.update({"probed_positions": probes, "rule": RULE.format(tol=settings.tolerance),
                             "tolerance": settings.tolerance,
                             "ratios": [None if r["ratio"] == float("inf") else rounded(r["ratio"]) for r in results]})
            leaking = [(t, r) for t, r in zip(probes, results) if r["leak"]]
            if not leaking:
                return
            t, worst = leaking[0]
            culprit = _first_mixing_module(ctx, model, batch, t, length, settings.tolerance)
        reach = max(r["reach"] for _, r in leaking)
        ratio = "only on later positions" if worst["ratio"] == float("inf") else \
            f"the gradient from later positions is {worst['ratio']:.3g}x the largest from positions up to t"
        yield self.finding(
            "SC1701", f"The output at position {t} depends on the inputs at later positions, up to "
            f"{t + worst['reach']} ({ratio}); {len(leaking)} of {len(probes)} probed positions leak, reading up to "
            f"{reach} position(s) ahead. Each position can read the token it is trained to predict: training and validation loss look good, "
            "generation fails." + (f" Positions first mix in module {culprit[0]} ({culprit[1]})." if culprit else ""),
            evidence={**evidence, "first_leaking_position": t, "reach": reach,
                      "first_mixing_module": culprit[0] if culprit else None,
                      "module_type": culprit[1] if culprit else None},
            samples={"train": [int(i) for i in indices]},
        )


def _shape(value: Any) -> str:
    return f"shape {tuple(value.shape)}" if hasattr(value, "shape") else type(value).__name__


def _next_token_share(ctx: Any) -> tuple[float, str]:
    """The largest share of counted target positions (targets >= 0) equal to the next input token (nanoGPT:
    ``y = x[1:]``) or to the same one (Hugging Face: ``labels = input_ids``, shifted inside the model), over up to
    256 training sequences; and which convention it was."""
    data = ctx.train.data_pass()
    idx = ctx.sample_indices(ctx.train, 256, "causality:targets")
    targets = data.targets
    try:
        x = ctx.train.inputs(idx).astype(np.float64)
    except Exception:
        return 0.0, "unreadable"
    if targets is None or x.ndim != 2 or targets.ndim != 2 or targets.shape[1] != x.shape[1]:
        return 0.0, "not (batch, positions) token ids"
    y = targets[idx].astype(np.float64)
    best, how = 0.0, "other"
    for name, a, b in (("next tokens (inputs shifted by one)", y[:, :-1], x[:, 1:]),
                       ("the inputs themselves (shifted inside the model)", y, x)):
        counted = a >= 0
        if counted.any():
            share = float((a[counted] == b[counted]).mean())
            if share > best:
                best, how = share, name
    return best, how


def _leak(out_t: Any, x: Any, t: int, axis: int, tolerance: float) -> dict:
    """Whether ``out_t`` (an output slice at position t) depends on positions > t of ``x`` (positions on ``axis``)."""
    import torch

    (grad,) = torch.autograd.grad(out_t.float().sum(), x, retain_graph=True, allow_unused=True)
    if grad is None:
        return {"leak": False, "ratio": 0.0, "reach": 0}
    g = grad.detach().abs().movedim(axis, 0).reshape(x.shape[axis], -1).amax(1)
    own, future = float(g[:t + 1].max()), g[t + 1:]
    top = float(future.max()) if len(future) else 0.0
    ratio = top / own if own > 0 else (float("inf") if top > 0 else 0.0)
    ahead = torch.nonzero(future > tolerance * max(own, 1e-30)).flatten()
    return {"leak": ratio > tolerance, "ratio": ratio, "reach": int(ahead.max()) + 1 if len(ahead) else 0}


def _position_axis(shape: tuple[int, ...], batch_size: int, length: int) -> int | None:
    """Where the positions are in an intermediate tensor: (B, T, ...) batch first, (T, B, ...) time first
    (nn.Transformer's default), or (B, C, T) channels first (Conv1d); None for anything else."""
    if shape[0] == batch_size and shape[1] == length:
        return 1
    if shape[0] == length and shape[1] == batch_size:
        return 0
    if len(shape) == 3 and shape[0] == batch_size and shape[2] == length:
        return 2
    return None


def _first_mixing_module(ctx: Any, model: Any, batch: Any, t: int, length: int, tolerance: float) -> tuple | None:
    """``(name, type)`` of the first submodule, in the order calls finish, whose output at position ``t`` depends
    on later positions while its input does not (children finish before their parent, so it is the innermost
    module whose own computation mixes positions); else the first whose output leaks; None if none does."""
    from sanitycheck.probing.inputgrad import first_tensor, input_grad_pass

    run = input_grad_pass(ctx, model, batch, record=True)
    batch_size = run.inputs.shape[0]
    types = {n: type(m).__name__ for n, m in model.named_modules()}
    memo: dict[int, bool] = {}

    def leaks(value: Any) -> bool:
        z = first_tensor(value)
        if z is None or not z.requires_grad or z.ndim < 2:
            return False
        axis = _position_axis(tuple(z.shape), batch_size, length)
        if axis is None:
            return False  # no position axis (attention weights, flattened tensors)
        if id(z) not in memo:
            memo[id(z)] = _leak(z.select(axis, t), run.inputs, t, 1, tolerance)["leak"]
        return memo[id(z)]

    first = None
    for name, given, out in run.calls:
        if leaks(out):
            if not leaks(given):
                return name, types.get(name)
            first = first or (name, types.get(name))
    return first


@hookimpl
def sanitycheck_checks():
    return [Causality()]
