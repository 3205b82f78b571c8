"""``gradients``: does every parameter get a finite, reasonably scaled gradient, and does training move it?

A fresh model, one fixed batch: a diagnostic backward pass at initialization, a few training steps with the
configured optimizer and the user's ``train_step``, and a second diagnostic pass after them. Each finding
names the parameters or modules concerned.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.trainer import rounded

#: Activation modules whose units can die (output exactly 0 for every input).
RELU_TYPES = ("ReLU", "ReLU6")


#: SC1006 is only judged on a batch of at least this many samples.
MIN_DEAD_UNIT_SAMPLES = 8
#: Units a diagnostic pass finds never active on its batch count as dead only if they stay off on up to this many
#: more training samples as well (forward passes only, in batches of the probe's size; run only when a module
#: reaches the warning's fraction on the batch): 64 samples overstate it. A frozen conv backbone's new head on
#: Fashion-MNIST (benchmarks/pipelines/fmnist_frozen.py): 65 and 70 of 128 units off on the batch for seeds 0 and
#: 2 (a warning on a clean pipeline), 54 of them off on 576 samples for seed 0.
CONFIRM_SAMPLES = 512


class Settings(CheckSettings):
    batch_size: int = Field(64, ge=2, description="Samples in the probe batch.")
    steps: int = Field(10, ge=1, description="Training steps between the two diagnostic passes (scaled by the "
                       "profile, at least 3).")
    vanishing_ratio: float = Field(1e-4, gt=0, lt=1, description="Warn when a weight's gradient RMS is below this "
                                   "fraction of the largest weight gradient RMS in the model.")
    exploding_growth: float = Field(100.0, gt=1, description="Warn when the total gradient norm grows by this "
                                    "factor over the training steps.")
    dead_fraction: float = Field(0.5, gt=0, le=1, description="Warn when at least this fraction of a ReLU's units "
                                 "is never active on the batch.")
    accumulation_steps: int = Field(1, ge=1, description="Declares gradient accumulation: your train_step sums the "
                                    "gradients of this many calls before the optimizer uses and clears them. Above 1, "
                                    "gradients that carry over from one call to the next are expected (SC1008 is not "
                                    "checked).")


CODES = (
    CodeDoc(
        code="SC1001", title="Parameters get no gradient", severity="warning",
        what="One forward and backward pass of a fresh model on a batch of 64 training samples; lists every "
        "parameter with requires_grad=True whose .grad is still None. Decision rule: warning for some, error "
        "when none of the trainable parameters gets a gradient.",
        why="A parameter without a gradient never learns: it is unused in forward(), or its input was "
        "detached (.detach(), .data, .item(), numpy round trips, torch.no_grad()) so the graph is cut above it.",
        example="features = self.backbone(x).detach(); a layer defined in __init__ but never called; "
        "torch.tensor(other_tensor) inside forward().",
        fix="Remove the .detach()/.data/no_grad on the path to the loss, call every layer you define (or delete "
        "it), and keep computations in torch.",
    ),
    CodeDoc(
        code="SC1002", title="Frozen parameters", severity="error",
        what="Counts parameters with requires_grad=False. Decision rule: error when every parameter is frozen "
        "(nothing can train), info when some are (fine-tuning a frozen backbone is legitimate).",
        why="A model whose parameters are all frozen does not train: the loss stays where it starts.",
        example="for p in model.parameters(): p.requires_grad = False, meant for the backbone only.",
        fix="Unfreeze the layers you mean to train (requires_grad_(True)), at least the head.",
    ),
    CodeDoc(
        code="SC1003", title="NaN or Inf gradients", severity="error",
        what="Checks every gradient of the diagnostic passes (at initialization and after the training steps) "
        "and the loss of each step for NaN/Inf; names the parameters whose gradient is not finite.",
        why="One non-finite gradient turns the weights it updates into NaN, and the whole model follows.",
        example="torch.sqrt(x) or x.norm() at exactly 0 in forward(); log of a probability that underflows; "
        "a learning rate so high that activations overflow.",
        fix="Guard the operation (sqrt(x + eps), log_softmax instead of log(softmax)), lower the learning rate "
        "and clip gradients (torch.nn.utils.clip_grad_norm_).",
    ),
    CodeDoc(
        code="SC1004", title="Vanishing gradients", severity="warning",
        what="Per weight tensor (2 or more dimensions) the root-mean-square of its gradient at initialization. "
        "Decision rule: warning when a weight's gradient RMS is below 1e-4 times the largest one in the model "
        "(or exactly zero while others are not); the smallest are named.",
        why="Layers whose gradients are 10 000x smaller than others barely learn: deep stacks of saturating "
        "activations (sigmoid, tanh), a bad initialization or an activation that is zero everywhere.",
        example="20 nn.Linear + nn.Sigmoid layers; a layer initialized to all zeros between two ReLUs.",
        fix="Use ReLU-family activations with He/Kaiming initialization, normalization layers (BatchNorm, "
        "LayerNorm) or residual connections.",
    ),
    CodeDoc(
        code="SC1005", title="Exploding gradients", severity="warning",
        what="Compares the total gradient norm of the diagnostic pass after the training steps (10 at the "
        "default profile, your optimizer and train_step on the same batch) with the one at initialization. "
        "Decision rule: warning when it grew by 100x or more.",
        why="Growing gradients on a fixed batch mean the steps overshoot: the loss will oscillate or diverge, "
        "and often ends in NaN.",
        example="SGD with lr=10; Adam with lr=1 on a small MLP; a recurrent model without gradient clipping.",
        fix="Lower the learning rate (10x), add warm-up, clip gradients (clip_grad_norm_), normalize inputs.",
        explained_by=("SC305", "SC902"),
    ),
    CodeDoc(
        code="SC1006", title="Dead ReLU units", severity="warning",
        what="Forward hooks on every nn.ReLU/nn.ReLU6 record which units (features, or channels of "
        "convolutional maps; the last dimension for task: sequence, whose activations are (batch, position, "
        "features)) are active (> 0) for at least one sample of the 64-sample batch, in both "
        "diagnostic passes. A pass in which a module reaches the rule's fraction on that batch is confirmed on up "
        "to 512 more training samples (forward passes only, in the same mode, batches of the probe's size): a "
        "unit active for any of them is not dead (a frozen backbone's new head on Fashion-MNIST: 65-70 of 128 "
        "units off on the batch, 54 on 576 samples). Decision rule: warning when at least 50% of a module's "
        "units are never active on those samples in either pass (the module is named). Needs a batch of at "
        "least 8 samples (a unit inactive on fewer is not dead: about half of a fresh ReLU's units are off for "
        "any one sample).",
        why="A ReLU unit that is zero for every input gets no gradient and never recovers: the layer has "
        "fewer units than it seems, and past a point the model cannot learn.",
        example="A learning rate so high that one step pushes biases far negative; inputs that are all "
        "negative with a positive-only initialization; a large negative bias initialization.",
        fix="Lower the learning rate, normalize inputs, initialize biases at 0 (or slightly positive), or use "
        "LeakyReLU/GELU.",
    ),
    CodeDoc(
        code="SC1007", title="Parameters unchanged by training steps", severity="error",
        what="Compares every trainable parameter that had a non-zero gradient before and after the training "
        "steps (your train_step and optimizer). Decision rule: error when none of them changed, warning when "
        "some did not (they are named).",
        why="If the step never updates the weights, training does nothing while looking like it runs.",
        example="A train_step that forgets optimizer.step(); an optimizer built over a different model's "
        "parameters; learning rate 0.",
        fix="Call optimizer.step() after loss.backward(), and build the optimizer over model.parameters() "
        "after the model is final.",
    ),
    CodeDoc(
        code="SC1008", title="Gradients accumulate across steps (no zero_grad)", severity="error",
        what="Only with your train_step. A fresh model takes two steps, on two different batches of 64 training "
        "samples; an optimizer step pre-hook records the gradient the optimizer is given at each (g1, then s2). A "
        "copy of the model as it was before the second step (same parameters, the global random streams of "
        "torch, NumPy and random as they were, gradients cleared) then takes the second batch alone, through your step again (the same batch, read once: a random "
        "training transform would make another): its gradient g2 is what the second step should have seen. "
        "Decision rule: error when s2 is not g2 (relative difference above 5%) but is "
        "g1 + g2 (within 5%), or, in a least-squares fit s2 = a g1 + b g2, g1 explains at least 80% of how far "
        "s2 is from the best multiple of g2 (residual norms), with a > 0 and a g1 at least 5% of s2's norm: the "
        "sum, rescaled by in-place gradient clipping or loss scaling. Not checked with "
        "checks.gradients.accumulation_steps above 1 (declared gradient accumulation) or without a train_step (the "
        "built-in step zeroes the gradients).",
        why="loss.backward() adds to .grad. Without optimizer.zero_grad() (or model.zero_grad()) every step applies "
        "the sum of all gradients so far: the update grows and points in a stale direction. Training still seems "
        "to run, but far worse (measured on PyTorch's MNIST example: 0.38 validation accuracy after 150 steps "
        "instead of 0.94).",
        example="def train_step(model, batch, loss_fn, optimizer): loss = loss_fn(model(x), y); loss.backward(); "
        "optimizer.step()  # zero_grad() forgotten",
        fix="Call optimizer.zero_grad() before loss.backward() in every step (or after optimizer.step()). If you "
        "accumulate gradients on purpose, declare it: checks: {gradients: {accumulation_steps: N}}.",
    ),
)


class Gradients(Check):
    name = "gradients"
    summary = ("parameters that get no gradient, frozen, unchanged by training or with NaN/Inf gradients; "
               "vanishing or exploding gradients; dead ReLU units")
    cost = ("well under 1 s for a small model: 2 diagnostic passes and 10 training steps on 64 samples (and "
            "forward passes over up to 512 more when half a ReLU's units look dead)")
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        import torch

        from sanitycheck.probing.numerics import flush_denormal

        indices = ctx.sample_indices(ctx.train, settings.batch_size, "gradients")
        batch = ctx.batch(ctx.train, indices)
        model = ctx.make_model("gradients")
        params = dict(model.named_parameters())
        if not params:
            self.skip("the model has no parameters: there are no gradients to look at (overfit-batch reports SC304)")
        frozen = [n for n, p in params.items() if not p.requires_grad]
        kinds = _module_kinds(model)
        base = {"batch_size": len(indices), "parameters": len(params)}
        if params and len(frozen) == len(params):
            yield self.finding("SC1002", f"All {len(params)} parameter tensors of the model have "
                               "requires_grad=False: nothing can train.", evidence={**base, "frozen": frozen[:50]})
            return
        if frozen:
            yield self.finding(
                "SC1002", f"{len(frozen)} of {len(params)} parameter tensors are frozen (requires_grad=False), "
                f"e.g. {_names(frozen, kinds)}; fine if you froze them on purpose.", severity="info",
                evidence={**base, "frozen": frozen[:50]})

        with flush_denormal():
            init = _diagnose(ctx, model, batch)
            dead_init, seen_init = _dead_units(ctx, settings, model, init, indices)
            before = {n: p.detach().clone() for n, p in params.items()}
            optimizer = ctx.make_optimizer(model)
            steps = _steps(ctx, settings, len(indices))
            losses = []
            for _ in range(steps):
                losses.append(ctx.step(model, optimizer, batch))
                if not math.isfinite(losses[-1]):
                    break
            after = _diagnose(ctx, model, batch)
            dead_after, seen_after = _dead_units(ctx, settings, model, after, indices)
        trainable = [n for n, p in params.items() if p.requires_grad]
        base["steps"] = len(losses)
        base["losses"] = [rounded(v) for v in losses]

        # No gradient at all (graph cut or parameter unused).
        missing = [n for n in trainable if init.grads.get(n) is None]
        if missing:
            every = len(missing) == len(trainable)
            yield self.finding(
                "SC1001", f"{len(missing)} of {len(trainable)} trainable parameter tensors get no gradient from the "
                f"loss: {_names(missing, kinds)}." + (" Nothing in the model can learn." if every else ""),
                severity="error" if every else "warning", evidence={**base, "no_gradient": missing[:100]})

        # Non-finite gradients or losses.
        for label, diag in (("at initialization", init), (f"after {len(losses)} training steps", after)):
            bad = [n for n, g in diag.grads.items() if g is not None and not g["finite"]]
            if bad or not math.isfinite(diag.loss):
                yield self.finding(
                    "SC1003", f"Gradients {label} are NaN/Inf for {len(bad)} parameter tensors "
                    f"({_names(bad, kinds) if bad else 'none named'}); the loss is {diag.loss:.4g}.",
                    evidence={**base, "when": label, "nonfinite": bad[:100], "loss": rounded(diag.loss)})
                break
        else:
            if any(not math.isfinite(v) for v in losses):
                yield self.finding(
                    "SC1003", f"The loss became {losses[-1]} at training step {len(losses)} (learning rate "
                    f"{ctx.learning_rate:g}).", evidence=base)

        # Vanishing: weight gradients far below the largest one.
        rms = {n: g["rms"] for n, g in init.grads.items()
               if g is not None and g["finite"] and params[n].ndim >= 2}
        top = max(rms.values(), default=0.0)
        if top > 0 and len(rms) >= 2:
            small = sorted((n for n, v in rms.items() if v < settings.vanishing_ratio * top), key=rms.get)
            if small:
                yield self.finding(
                    "SC1004", f"{len(small)} weight tensors get gradients more than "
                    f"{1 / settings.vanishing_ratio:.0f}x smaller than the largest ({top:.3g}): "
                    + ", ".join(f"{n} ({kinds.get(_module_of(n), '?')}, {rms[n]:.3g})" for n in small[:5]) + ".",
                    evidence={**base, "gradient_rms": {n: rounded(v) for n, v in rms.items()},
                              "vanishing": small[:100], "ratio": settings.vanishing_ratio})

        # Exploding: the total gradient norm grows over the steps.
        if math.isfinite(init.norm) and init.norm > 0 and after.norm >= settings.exploding_growth * init.norm \
                and math.isfinite(after.norm):
            yield self.finding(
                "SC1005", f"The total gradient norm grew from {init.norm:.3g} to {after.norm:.3g} "
                f"({after.norm / init.norm:.3g}x) in {len(losses)} training steps on one batch at learning rate "
                f"{ctx.learning_rate:g}; the loss went from {losses[0]:.4g} to {losses[-1]:.4g}.",
                evidence={**base, "norm_initial": rounded(init.norm), "norm_after": rounded(after.norm),
                          "growth": settings.exploding_growth})

        # Dead ReLU units.
        dead = []
        relus = init.relus if len(indices) >= MIN_DEAD_UNIT_SAMPLES else {}  # too few samples to call a unit dead
        for module, active in relus.items():
            total, at_init, at_end = active.numel(), dead_init.get(module, 0), dead_after.get(module, 0)
            worst = max(at_init, at_end)
            if total and worst / total >= settings.dead_fraction:
                dead.append((module, worst, total, "after training steps" if at_end >= at_init else "at init",
                             seen_after if at_end >= at_init else seen_init))
        if dead:
            yield self.finding(
                "SC1006", "ReLU units never active on {} training samples: {}.".format(
                    max(n for *_, n in dead), ", ".join(f"{m} {d}/{t} ({when})" for m, d, t, when, _ in dead[:5])),
                evidence={**base, "dead_units": {m: {"dead": d, "units": t, "when": w, "samples": n}
                                                 for m, d, t, w, n in dead}},
            )

        # Parameters that had a gradient but did not move.
        moving = [n for n in trainable if init.grads.get(n) is not None and init.grads[n]["nonzero"]]
        unchanged = [n for n in moving if torch.equal(params[n].detach(), before[n])]
        if moving and unchanged:
            every = len(unchanged) == len(moving)
            yield self.finding(
                "SC1007", (f"After {len(losses)} training steps none of the {len(moving)} parameter tensors that "
                           "get a gradient changed: the step never updates them (is optimizer.step() called? is "
                           "the learning rate 0?)." if every else
                           f"After {len(losses)} training steps {len(unchanged)} of {len(moving)} parameter tensors "
                           f"with a non-zero gradient did not change: {_names(unchanged, kinds)} (are they in the "
                           "optimizer?)."),
                severity="error" if every else "warning", evidence={**base, "unchanged": unchanged[:100]})

        # Gradients that carry over from one step to the next (zero_grad forgotten).
        if ctx.has_user_step and settings.accumulation_steps == 1:
            with flush_denormal():
                carried = _accumulation_probe(ctx, settings.batch_size)
            if carried is not None and carried["accumulates"]:
                yield self.finding(
                    "SC1008", "The gradient your train_step hands the optimizer at its second step is the sum of the "
                    "first step's gradient and the second batch's own (relative difference from the sum "
                    f"{carried['distance_to_sum']:.2g}, from the second batch's own gradient "
                    f"{carried['distance_to_fresh']:.2g}): .grad is never cleared, so every step applies all the "
                    "gradients so far. Is optimizer.zero_grad() missing?",
                    evidence={**{k: v for k, v in base.items() if k != "losses"}, **carried,
                              "accumulation_steps": settings.accumulation_steps},
                )


#: The training steps' time cap at the default profile when an epoch is estimated at a minute or more (shorter in
#: proportion below, see :func:`~sanitycheck.probing.budget.time_cap`); never fewer than MIN_STEPS steps.
STEPS_SECONDS = 10.0
MIN_STEPS = 3


def _steps(ctx: Any, settings: Settings, batch_size: int) -> int:
    """The training steps between the diagnostic passes: ``settings.steps`` (scaled by the profile), fewer when a
    step is so slow (an LBFGS step: 10 s) that they would cost more than the time cap, never fewer than MIN_STEPS."""
    from sanitycheck.probing.budget import fit_budget, step_seconds, time_cap

    default = max(ctx.budget(settings.steps), MIN_STEPS)
    per_step = step_seconds(ctx, batch_size, scaled=True)  # not timed again at this batch size: only slow steps matter
    if per_step is None:
        return default
    return fit_budget(time_cap(ctx, ctx.scale * STEPS_SECONDS), per_step, default=default, minimum=MIN_STEPS)


#: At most this many gradient entries are compared by the accumulation probe (the first parameters in order).
ACCUMULATION_ELEMENTS = 5_000_000


def _accumulation_probe(ctx: Any, batch_size: int) -> dict | None:
    """The SC1008 measurement: the gradients the optimizer sees at two steps of the user's step, and the fresh
    gradient of the second batch (see the CodeDoc); ``None`` when the step never calls ``optimizer.step()``."""
    import copy

    from sanitycheck.pipeline.seeds import RandomStreams

    indices = ctx.sample_indices(ctx.train, 2 * batch_size, "gradients:accumulation")
    if len(indices) < 2:
        return None
    order = ctx.rng("gradients:accumulation:order").permutation(indices)
    first, second = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
    model = ctx.make_model("gradients:accumulation")
    names = [n for n, p in model.named_parameters() if p.requires_grad]

    def watch(net: Any, optimizer: Any, seen: list) -> Any:
        params = dict(net.named_parameters())

        def hook(opt: Any, args: Any, kwargs: Any) -> None:
            seen.append(_flat_grads([params[n] for n in names]))
        return optimizer.register_step_pre_hook(hook)

    seen: list = []
    optimizer = ctx.make_optimizer(model)
    handle = watch(model, optimizer, seen)
    try:
        ctx.step(model, optimizer, ctx.batch(ctx.train, first))
        if len(seen) != 1:
            return None
        before_second = copy.deepcopy(model)
        # one read of the second batch for both steps: a training transform draws a new random crop at each read
        # (and not always from torch's generator), so a second read would be another batch
        second_batch = ctx.batch(ctx.train, second)
        try:
            fresh_batch = copy.deepcopy(second_batch)  # the user's step may change its batch in place
        except Exception:  # a batch holding something that cannot be copied: read it again
            fresh_batch = None
        # the fresh step below draws what this one draws: dropout masks, and a mixup step's np.random.beta
        streams = RandomStreams()
        ctx.step(model, optimizer, second_batch)
    finally:
        handle.remove()
    if len(seen) != 2:
        return None
    for p in before_second.parameters():
        p.grad = None
    fresh: list = []
    fresh_optimizer = ctx.make_optimizer(before_second)
    handle = watch(before_second, fresh_optimizer, fresh)
    streams.restore()
    try:
        ctx.step(before_second, fresh_optimizer, ctx.batch(ctx.train, second) if fresh_batch is None else fresh_batch)
    finally:
        handle.remove()
    if len(fresh) != 1:
        return None
    return accumulation_verdict(seen[0], seen[1], fresh[0])


def _flat_grads(params: list) -> np.ndarray:
    """The gradients of ``params`` (zeros where none) as one float64 vector, at most ACCUMULATION_ELEMENTS long."""
    parts, total = [], 0
    for p in params:
        g = p.grad.detach().reshape(-1) if p.grad is not None else p.detach().new_zeros(p.numel())
        g = g[: max(0, ACCUMULATION_ELEMENTS - total)]
        parts.append(g.double().cpu().numpy())
        total += len(parts[-1])
        if total >= ACCUMULATION_ELEMENTS:
            break
    return np.concatenate(parts) if parts else np.zeros(0)


def accumulation_verdict(g1: np.ndarray, s2: np.ndarray, g2: np.ndarray) -> dict:
    """Is ``s2`` (what the optimizer saw at the second step) ``g2`` (the second batch's own gradient) or
    ``g1 + g2`` (the first step's gradient carried over)? The SC1008 rule; the distances are relative."""
    def rel(a: np.ndarray, b: np.ndarray) -> float:
        scale = float(np.linalg.norm(b))
        return float(np.linalg.norm(a - b)) / scale if scale > 0 else (0.0 if not np.any(a) else math.inf)

    to_fresh, to_sum = rel(s2, g2), rel(s2, g1 + g2)
    accumulates = to_fresh > 0.05 and to_sum <= 0.05
    a = b = explained = None
    if not accumulates and to_fresh > 0.05 and np.any(g1) and np.any(g2):
        basis = np.stack([g1, g2], axis=1)
        (a, b), *_ = np.linalg.lstsq(basis, s2, rcond=None)
        both = float(np.linalg.norm(s2 - basis @ np.array([a, b])))
        alone = float(np.linalg.norm(s2 - g2 * (np.dot(s2, g2) / np.dot(g2, g2))))
        explained = 1.0 - both / alone if alone > 0 else 0.0  # share of s2's departure from g2 that g1 explains
        carried = abs(float(a)) * float(np.linalg.norm(g1)) / max(float(np.linalg.norm(s2)), 1e-30)
        accumulates = a > 0 and explained >= 0.8 and carried >= 0.05
        a, b = float(a), float(b)
    return {"accumulates": bool(accumulates), "distance_to_fresh": rounded(to_fresh), "distance_to_sum": rounded(to_sum),
            "fit_a": rounded(a), "fit_b": rounded(b), "fit_explained": rounded(explained), "compared_entries": int(len(s2)),
            "norm_first": rounded(float(np.linalg.norm(g1))), "norm_second_seen": rounded(float(np.linalg.norm(s2))),
            "norm_second_fresh": rounded(float(np.linalg.norm(g2)))}


class _Diagnosis:
    """One forward/backward pass: per-parameter gradient summaries, the loss, the total norm, dead ReLUs."""

    def __init__(self, grads: dict, loss: float, norm: float, relus: dict):
        self.grads, self.loss, self.norm, self.relus = grads, loss, norm, relus


def _diagnose(ctx: Any, model: Any, batch: Any) -> _Diagnosis:
    import torch

    relus: dict[str, Any] = {}
    hooks = _hooked_relus(ctx, model, relus)
    model.train()
    for p in model.parameters():
        p.grad = None
    try:
        loss = ctx.compute_loss(model, batch)
        if loss.requires_grad:  # else the graph is cut above every parameter: SC1001 reports it
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
    grads, squares = {}, 0.0
    for name, p in model.named_parameters():
        if p.grad is None:
            grads[name] = None
            continue
        g = p.grad.detach().float()
        finite = bool(torch.isfinite(g).all())
        norm = float(g.norm()) if finite else math.inf
        squares += norm**2
        grads[name] = {"finite": finite, "rms": norm / math.sqrt(max(g.numel(), 1)), "nonzero": bool(g.abs().sum() > 0)}
        p.grad = None
    return _Diagnosis(grads, float(loss.detach()), math.sqrt(squares), relus)


def _relu_hook(name: str, store: dict, channel_last: bool = False):
    """Records which units were active (> 0) for at least one sample of the batch, per call (a module called twice
    gets two entries); a key already stored keeps the units active in either (the confirmation's batches)."""
    calls = [0]

    def hook(module, args, output):
        import torch

        if not isinstance(output, torch.Tensor) or output.ndim < 2:
            return
        calls[0] += 1
        axis = output.ndim - 1 if channel_last else 1
        active = (output.detach() > 0).movedim(axis, 0).reshape(output.shape[axis], -1).any(1)
        key = name if calls[0] == 1 else f"{name} (call {calls[0]})"
        store[key] = active | store[key] if key in store and store[key].shape == active.shape else active
    return hook


def _hooked_relus(ctx: Any, model: Any, store: dict) -> list:
    return [module.register_forward_hook(_relu_hook(name or type(module).__name__, store,
                                                    channel_last=ctx.task == "sequence"))
            for name, module in model.named_modules() if type(module).__name__ in RELU_TYPES]


def _dead_units(ctx: Any, settings: Settings, model: Any, diagnosis: _Diagnosis,
                indices: np.ndarray) -> tuple[dict[str, int], int]:
    """Per ReLU module, its units never active (``{module: count}``), and on how many training samples: the
    diagnostic batch, and when a module reaches the warning's fraction there, up to CONFIRM_SAMPLES more (forward
    passes in the same mode, batches of the probe's size; a unit active on any of them is not dead)."""
    import torch

    from sanitycheck.pipeline.seeds import same_random_streams

    dead = {k: int((~a).sum()) for k, a in diagnosis.relus.items()}
    seen = len(indices)
    if not any(a.numel() and dead[k] / a.numel() >= settings.dead_fraction for k, a in diagnosis.relus.items()):
        return dead, seen
    pool = np.setdiff1d(ctx.usable_indices(ctx.train), indices)
    size = len(indices)
    more = ctx.rng("gradients:dead-units").permutation(pool)[:min(CONFIRM_SAMPLES, len(pool)) // size * size]
    store = {k: a.clone() for k, a in diagnosis.relus.items()}
    model.train()  # the diagnostic passes' mode
    # the random streams as they were: the training steps after the first confirmation draw the same dropout masks
    # and augmentations as without it
    with same_random_streams():
        for lo in range(0, len(more), size):
            hooks = _hooked_relus(ctx, model, store)  # per forward pass: a module's calls are counted within one
            try:
                with torch.no_grad():
                    ctx.compute_loss(model, ctx.batch(ctx.train, np.sort(more[lo:lo + size])))
            except Exception:  # the diagnostic batch ran, a batch drawn here did not: judge on the batch alone
                return dead, seen
            finally:
                for h in hooks:
                    h.remove()
    return {k: int((~a).sum()) for k, a in store.items()}, seen + len(more)


def _module_of(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else ""


def _module_kinds(model: Any) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in model.named_modules()}


def _names(params: list[str], kinds: dict[str, str], limit: int = 5) -> str:
    shown = ", ".join(f"{p} ({kinds.get(_module_of(p), '?')})" for p in params[:limit])
    return shown + (f" and {len(params) - limit} more" if len(params) > limit else "")


@hookimpl
def sanitycheck_checks():
    return [Gradients()]
