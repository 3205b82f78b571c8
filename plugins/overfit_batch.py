"""``overfit-batch``: the model, loss, optimizer and the user's step must drive one batch's loss to its floor.

Karpathy's "overfit one batch": a fresh model trained on one small fixed batch with the configured
optimizer (and the user's ``train_step`` when given) must fit it. If it cannot, nothing downstream matters.
"""

from __future__ import annotations

import math
import time
from typing import Any

from pydantic import Field

from sanitycheck import Check, CheckSettings, CodeDoc, hookimpl
from sanitycheck.probing.budget import epoch_seconds, time_cap
from sanitycheck.probing.trainer import rounded as _r
from sanitycheck.probing.trainer import thin_curve as _curve


class Settings(CheckSettings):
    steps: int = Field(
        200, ge=1, description="Training steps on the batch (x4 at the thorough profile; never fewer at fast)."
    )
    batch_size: int = Field(16, ge=2, description="Samples in the fixed batch.")
    target_ratio: float = Field(
        0.1, gt=0, lt=1, description="Pass when the lowest loss reaches floor + target_ratio x (initial - floor)."
    )
    floor: float = Field(0.0, description="The loss's minimum (0 for cross-entropy, MSE, L1 ...; raised to the "
                         "targets' own loss under CrossEntropyLoss label_smoothing or class-probability targets).")
    runaway: float = Field(10.0, gt=1, description="A loss of unknown kind counts as unbounded below when it falls under "
                           "-runaway x max(1, |initial loss|) (SC305).")


CODES = (
    CodeDoc(
        code="SC301", title="Loss does not approach its minimum on one batch", severity="error",
        what="Trains a fresh model on one fixed batch (16 samples, 200 steps at the default profile) with the "
        "configured optimizer and your train_step; a fit still falling at the end (its last quarter lowered the "
        "loss by at least 2% of initial - floor) goes on, up to 4x the steps. Decision rule: the lowest loss must "
        "reach floor + target_ratio x (initial - floor), i.e. 90% of the way from the initial loss to the floor "
        "(0; for CrossEntropyLoss with label_smoothing or class probabilities as targets, the loss at outputs equal "
        "to the targets: the smoothing keeps eps / C on every class, 0.50 for eps 0.1 and 10 classes). A fit that "
        "falls short, with no softmax or sigmoid cap to explain it, is tried again on a fresh model "
        "at 10x the configured learning rate: if that one reaches the target, the model, the loss and the step work "
        "and the finding is info (PyTorch's 60-minute-blitz CIFAR net at SGD lr 0.001 fell from 2.31 to 2.20 in 200 "
        "steps, and fits at lr 0.01 in 104). A loss function of your own over outputs that are not one tensor (a "
        "tuple or dict: PyTorch's VAE example returns reconstruction, mu and logvar, and its KL term never reaches "
        "0) has no known floor: its plateau is info once it has come half of the way (the VAE: 8793 -> 1204). "
        "The finding says when the loss plateaus (the last quarter of the steps lowered it by less than 2% of "
        "initial - floor) and, for CrossEntropyLoss fed probabilities (rows in [0, 1] summing to 1), the floor "
        "that softmax imposes: ln(1 + (C-1)/e), 1.46 for 10 classes.",
        why="A model that cannot memorize 16 samples cannot learn the dataset: the loss, the output layer, the "
        "optimizer or the step is broken, and a long training run would only hide it.",
        example="A softmax as the model's last layer fed to CrossEntropyLoss: the loss plateaus near 1.46 on 10 "
        "classes instead of reaching 0. Or a learning rate so small that nothing moves in 200 steps.",
        fix="Feed raw logits to CrossEntropyLoss (no softmax), check the output layer's size and the targets, "
        "raise the learning rate, and make sure train_step calls zero_grad, backward and step.",
        # SC901 (a loss at initialization far above its expected value: regression targets far from zero) and SC1302
        # (a learning rate far below the steepest descent) say why a healthy model still cannot get there
        explained_by=("SC902", "SC903", "SC904", "SC1001", "SC1002", "SC1003", "SC1008", "SC801", "SC804", "SC901",
                      "SC1302"),
    ),
    CodeDoc(
        code="SC302", title="Loss became NaN or Inf while fitting one batch", severity="error",
        what="Reported when a step of the one-batch fit returns a NaN or infinite loss (the step is named).",
        why="A non-finite loss poisons every weight it touches; training runs on, producing garbage.",
        example="A learning rate of 10 with SGD; log(0) in a hand-written loss; a division by a zero std.",
        fix="Lower the learning rate, clip gradients, and guard logs and divisions (use log_softmax, add eps).",
    ),
    CodeDoc(
        code="SC303", title="Loss diverges on one batch", severity="error",
        what="Reported when the loss ends higher than it started (mean of the last 10 steps above the initial "
        "loss) or a step's loss exceeds 10x the initial loss (a blow-up the model may then hide by killing its "
        "units and settling near the prior). A warning instead of an error when the fit still ends at or below "
        "the SC301 target (PyTorch's super-resolution example at Adam lr 0.01: up to 49x its start, then 5% of it).",
        why="On one fixed batch the loss should only go down; rising loss means steps overshoot.",
        example="Adam with lr=1.0 on a small MLP.",
        fix="Lower the learning rate (try 10x smaller), add warm-up or gradient clipping, check the loss sign.",
        explained_by=("SC1301",),  # the learning-rate test's divergence onset, below the configured rate
    ),
    CodeDoc(
        code="SC304", title="No parameter changes during training", severity="error",
        what="Compares every parameter before and after the one-batch fit; reported when none changed.",
        why="If the step never updates the weights, training does nothing while looking like it runs.",
        example="A train_step that forgets optimizer.step(); every parameter with requires_grad=False; lr=0.",
        fix="Call optimizer.step() after loss.backward(), pass model.parameters() to the optimizer, and unfreeze "
        "the layers you mean to train.",
    ),
    CodeDoc(
        code="SC305", title="Loss unbounded below", severity="error",
        what="Watches the loss of the one-batch fit (see SC301) for values no proper loss reaches. Decision rule: "
        "error when a standard loss that cannot be negative on what it expects (cross-entropy, NLL, binary "
        "cross-entropy, MSE, L1, Huber) falls below 0 (by more than 1e-4 + 1e-3 x |initial loss|), or any other "
        "loss falls below -10 x max(1, |initial loss|), or the loss becomes -inf. Such a fit never counts as "
        "reaching the target of SC301, however low the loss goes.",
        why="A loss that can go to minus infinity is minimized by growing the outputs, not by fitting the labels: "
        "the loss curve falls for ever and looks like learning, while the model learns nothing useful.",
        example="F.nll_loss on raw scores (the model has no log_softmax): the loss is -score[target], which the model "
        "drives to -1e4 and beyond; `return -criterion(outputs, targets)` (a sign error).",
        fix="Give NLLLoss log-probabilities (end the model with F.log_softmax(x, dim=1)) or use CrossEntropyLoss on "
        "raw logits; check the sign of the loss you return.",
    ),
)


class OverfitBatch(Check):
    name = "overfit-batch"
    summary = ("the model + loss + optimizer (+ your train_step) cannot drive the loss on one small batch "
               "towards its minimum; NaN/Inf or diverging loss; a step that never updates the weights")
    cost = "about 1 s for a small model: up to 200 training steps on 16 samples"
    codes = CODES
    Settings = Settings

    def run(self, ctx: Any, settings: Settings):
        import torch

        # Never fewer steps at the fast profile: "cannot fit" needs the full budget to be a fair verdict, and a
        # pipeline that does fit stops early, so the budget only costs time when something is wrong.
        steps = max(ctx.budget(settings.steps), settings.steps)
        indices = ctx.sample_indices(ctx.train, settings.batch_size, "overfit-batch")
        batch = ctx.batch(ctx.train, indices)
        model = ctx.make_model("overfit-batch")
        optimizer = ctx.make_optimizer(model)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        trainable = sum(p.requires_grad for p in model.parameters())

        if trainable == 0:  # nothing can train, and a backward pass would raise: say so directly
            yield self.finding(
                "SC304", "Every parameter of the model has requires_grad=False: no training step can change it."
                if before else "The model has no parameters at all: no training step can change it.",
                evidence={"trainable_parameters": 0, "parameters": len(before), "batch_size": len(indices)},
                samples={"train": [int(i) for i in indices]},
            )
            return
        bound = _lower_bound(ctx)
        floor = _target_floor(ctx, batch)
        if floor is not None and floor > settings.floor:  # label smoothing, soft targets: 0 is out of reach
            settings = settings.model_copy(update={"floor": floor})
        # a step of seconds (an LBFGS step, a large model on a CPU) would make 200 steps cost many epochs: the fit
        # stops at a cap that follows the estimated epoch, and a fit it cut short is no verdict (see SC301)
        seconds = time_cap(ctx, ctx.scale * FIT_SECONDS, steps=steps, batch_size=len(indices), scaled=True)
        losses, capped = _fit(ctx, model, optimizer, batch, steps, bound, settings, seconds)

        changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
        initial, final = losses[0], losses[-1]
        finite = [v for v in losses if math.isfinite(v)]
        lowest = min(finite) if finite else math.nan
        target = settings.floor + settings.target_ratio * (initial - settings.floor)
        evidence = {
            "initial_loss": _r(initial), "min_loss": _r(lowest), "final_loss": _r(final), "target_loss": _r(target),
            "floor": settings.floor, "steps": len(losses), "max_steps": steps,
            "extended_to": EXTENSION * steps if len(losses) > steps else None, "learning_rate": ctx.learning_rate,
            "time_cap_s": _r(seconds), "stopped_by_time_cap": capped,
            "optimizer": type(optimizer).__name__, "batch_size": len(indices),
            "user_train_step": ctx.has_user_step, "curve": _curve(losses),
        }
        batch_ids = {"train": [int(i) for i in indices]}

        if _unbounded(losses, bound, settings.runaway):
            yield self._unbounded_finding(ctx, model, batch, losses, bound, settings.runaway, evidence, batch_ids)
            return
        if not math.isfinite(final):
            yield self.finding(
                "SC302", f"The loss became {final} at step {len(losses)} of the one-batch fit "
                f"(initial {initial:.4g}, learning rate {ctx.learning_rate:g}).",
                samples=batch_ids, evidence=evidence,
            )
            return
        if not changed:
            cause = ("no parameter has requires_grad=True" if trainable == 0 else
                     "the step never updates them (is optimizer.step() called? is the learning rate 0?)")
            yield self.finding(
                "SC304", f"After {len(losses)} training steps not one of the model's parameters changed: {cause}.",
                evidence={**evidence, "trainable_parameters": trainable}, samples=batch_ids,
            )
            return
        tail = sum(losses[-10:]) / len(losses[-10:])
        if tail > initial or max(finite) > 10 * abs(initial):
            # a blow-up the fit then recovered from, ending at or below its target: it trains, unstably (a warning)
            recovered = final <= target
            yield self.finding(
                "SC303", f"The loss on one fixed batch went from {initial:.4g} to {final:.4g} (peak {max(finite):.4g}) "
                f"in {len(losses)} steps at learning rate {ctx.learning_rate:g}: " + (
                    f"it blew up to {max(finite) / abs(initial):.3g}x its start before reaching its target "
                    f"{target:.4g}. It trains, but a blow-up like this can kill units for good (gradients' SC1006)."
                    if recovered else "it diverges instead of falling."),
                severity="warning" if recovered else None, evidence=evidence, samples=batch_ids,
            )
            return
        if lowest > target:
            plateau = _plateau(losses, initial, settings.floor)
            cap = _softmax_cap(ctx, model, batch)
            detail = ""
            if plateau is not None:
                detail = (f" It plateaus: the last quarter of the steps lowered it by only {plateau:.2g} "
                          f"({plateau / max(initial - settings.floor, 1e-12):.1%} of the way to the floor).")
            squash = _sigmoid_cap(ctx, model, batch)
            if squash is not None:
                detail += (f" The model's outputs stay in [0, 1] (a sigmoid before BCEWithLogitsLoss, which applies "
                           f"one itself): on this batch the loss cannot go below {squash:.4g} (ln(1 + e^-1) per "
                           "positive label, ln 2 per negative one). Remove the final sigmoid.")
            if cap is not None:
                detail += (f" The model's outputs are probabilities (rows sum to 1) fed to CrossEntropyLoss, which "
                           f"applies log_softmax again: the loss cannot go below ln(1 + (C-1)/e) = {cap:.4g} for "
                           f"C = {round(1 + math.e * math.expm1(cap))} classes. Remove the final softmax.")
            if capped and cap is None and squash is None:
                yield self.finding(
                    "SC301", f"The one-batch fit reached its time cap ({seconds:.3g} s, from an epoch estimated at "
                    f"{epoch_seconds(ctx):.3g} s) after {len(losses)} of {steps} steps, the loss {initial:.4g} -> "
                    f"{lowest:.4g} short of its target {target:.4g}: no verdict on whether the model can fit one "
                    "batch (--profile thorough gives 4x the time).", severity="info", evidence=evidence,
                    samples=batch_ids)
                return
            faster = None if cap is not None or squash is not None else _fit_faster(ctx, batch, steps, bound, settings,
                                                                                  seconds)
            if faster is not None:
                detail += (f" At {FASTER}x the learning rate the same model fits the batch in {len(faster)} steps "
                           f"(loss {faster[0]:.4g} -> {min(faster):.4g}): the model, the loss and the step work, and "
                           "the configured learning rate is slow for a budget this short (learning-rate's LR range "
                           "test says how slow).")
            # a custom loss of several outputs (a VAE's reconstruction, mu and logvar) can hold terms that never
            # reach 0 (the KL term): a plateau after half the way may be its floor, which only the user knows
            open_floor = faster is None and plateau is not None and _floor_unknown(ctx) \
                and initial - lowest >= OPEN_FLOOR_WAY * (initial - settings.floor)
            if open_floor:
                detail += (" The loss is a function of your own over several outputs, whose floor need not be 0 (a "
                           f"VAE's KL term): if {lowest:.4g} is near its floor, set checks.overfit-batch.floor to it.")
            yield self.finding(
                "SC301", f"In {len(losses)} steps the loss on one batch of {len(indices)} samples only fell from "
                f"{initial:.4g} to {lowest:.4g}; it should reach {target:.4g} (90% of the way to "
                f"{settings.floor:g}).{detail}",
                severity="info" if faster is not None or open_floor else "error",
                evidence={**evidence, "plateau": plateau is not None, "plateau_drop": _r(plateau) if plateau is not None else None,
                          "softmax_cap": _r(cap) if cap is not None else None,
                          "sigmoid_cap": _r(squash) if squash is not None else None,
                          "faster_lr_steps": len(faster) if faster is not None else None, "faster_lr_factor": FASTER,
                          "floor_unknown": open_floor},
                samples=batch_ids,
            )


    def _unbounded_finding(self, ctx: Any, model: Any, batch: Any, losses: list[float], bound: float | None,
                           runaway: float, evidence: dict, batch_ids: dict):
        from sanitycheck.pipeline.losses import loss_kind

        kind = loss_kind(ctx.loss_fn)
        finite = [v for v in losses if math.isfinite(v)]
        lowest = min(finite) if finite else -math.inf
        if losses[-1] == -math.inf:
            lowest = -math.inf
        where = (f"below 0, the least {_LOSS_NAMES.get(kind, kind)} can be on what it expects" if bound is not None
                 else f"below {-runaway * max(1.0, abs(losses[0])):.4g} (-{runaway:g} x the initial loss or 1)")
        lse = _logsumexp_max(ctx, model, batch) if kind == "nll" else None
        cause = (f" The model's outputs are not log-probabilities (logsumexp of a row up to {lse:.3g}, where "
                 "log_softmax gives 0): NLLLoss is -output[target], and raw scores make it unbounded. End the model "
                 "with F.log_softmax(x, dim=1), or use CrossEntropyLoss on the raw logits."
                 if lse is not None and lse > 1e-3 else
                 " A loss that is minimized by growing the outputs: check its sign and that it gets what it expects.")
        return self.finding(
            "SC305", f"The loss on one fixed batch went from {losses[0]:.4g} to {lowest:.4g} in {len(losses)} steps, "
            f"{where}: the loss is unbounded below, and the optimizer lowers it by growing the outputs, not by fitting "
            f"the labels.{cause}",
            evidence={**evidence, "min_loss": _r(lowest) if math.isfinite(lowest) else "-inf",
                      "lower_bound": bound, "loss_kind": kind, "max_logsumexp": _r(lse) if lse is not None else None},
            samples=batch_ids,
        )


#: A plateau of a loss whose floor is unknown (:func:`_floor_unknown`) is info once it has come this share of the way.
OPEN_FLOOR_WAY = 0.5


def _floor_unknown(ctx: Any) -> bool:
    """Whether the loss is a function of the user's own over outputs that are not one tensor (a tuple or dict): no
    standard family (whose floor is known), and room for terms that cannot reach 0."""
    from sanitycheck.pipeline.losses import loss_kind

    return loss_kind(ctx.loss_fn) == "unknown" and not ctx.model_computes_loss and ctx.output_shape is None


#: How the messages name each standard loss family.
_LOSS_NAMES = {"cross_entropy": "CrossEntropyLoss", "nll": "NLLLoss", "bce_logits": "BCEWithLogitsLoss",
               "bce": "BCELoss", "mse": "MSELoss", "l1": "L1Loss", "huber": "Huber/SmoothL1Loss"}


def _lower_bound(ctx: Any) -> float | None:
    """0 for the standard losses that cannot be negative on what they expect; ``None`` when unknown."""
    from sanitycheck.pipeline.losses import loss_kind

    return 0.0 if loss_kind(ctx.loss_fn) in _LOSS_NAMES else None


def _unbounded(losses: list[float], bound: float | None, runaway: float) -> bool:
    """The SC305 rule: below a known bound of 0 (with a tolerance), far below any start, or -inf."""
    if not losses:
        return False
    if losses[-1] == -math.inf:
        return True
    finite = [v for v in losses if math.isfinite(v)]
    if not finite:
        return False
    lowest, scale = min(finite), abs(losses[0]) if math.isfinite(losses[0]) else 1.0
    if bound is not None and lowest < bound - (1e-4 + 1e-3 * scale):
        return True
    return lowest < -runaway * max(1.0, scale)


def _logsumexp_max(ctx: Any, model: Any, batch: Any) -> float | None:
    """The largest |logsumexp| over the rows of the model's outputs on ``batch`` (0 for log-probabilities)."""
    import torch

    with torch.no_grad():
        out = model.eval()(ctx.train.unpack(batch)[0])
    if not isinstance(out, torch.Tensor) or out.ndim < 2:
        return None
    return float(torch.logsumexp(out.float(), dim=1).abs().max())


#: A fit still falling at the end of its steps (not on a plateau) may go on to this many times the steps.
EXTENSION = 4
#: The fit's time cap at the default profile (scaled by the profile) when one epoch is estimated at a minute or more;
#: shorter in proportion for a cheaper epoch, at least 2 s, and kept whole when the default steps fit well inside
#: it (:func:`sanitycheck.probing.budget.time_cap`): only a pipeline whose step costs a good part of its epoch is cut.
FIT_SECONDS = 60.0
#: A fit that falls short is tried again at this many times the configured learning rate (a fresh model): reaching
#: the target there means a slow learning rate, not a broken model, loss or step.
FASTER = 10


def _fit(ctx: Any, model: Any, optimizer: Any, batch: Any, steps: int, bound: float | None,
         settings: Settings, seconds: float) -> tuple[list[float], bool]:
    """The losses of up to ``steps`` steps of the user's step on one batch (up to EXTENSION x while still falling),
    stopped early when far past the target, non-finite or running away below any start; and whether ``seconds``
    ran out before ``steps`` steps."""
    from sanitycheck.probing.numerics import flush_denormal

    losses: list[float] = []
    start = time.perf_counter()
    with flush_denormal():
        for step in range(EXTENSION * steps):
            if step == steps and not _still_falling(losses, bound, settings):
                break  # the budget is spent and the loss has settled (or failed otherwise): judge it now
            if losses and time.perf_counter() - start >= seconds:
                return losses, step < steps
            loss = ctx.step(model, optimizer, batch)
            losses.append(loss)
            if not math.isfinite(loss):
                break
            if step >= 20 and loss < -settings.runaway * max(1.0, abs(losses[0])):
                break  # running away below any start: unbounded beyond doubt, no need for the rest
            target = settings.floor + settings.target_ratio * (losses[0] - settings.floor)
            if loss <= settings.floor + 0.5 * (target - settings.floor) and step >= 10 \
                    and losses[0] > settings.floor and not _unbounded(losses, bound, settings.runaway):
                break  # well past the target: no need to spend the rest of the budget
    return losses, False


def _fit_faster(ctx: Any, batch: Any, steps: int, bound: float | None, settings: Settings,
                seconds: float) -> list[float] | None:
    """The losses of a fresh model's fit at FASTER x every parameter group's learning rate, when it reaches the
    target (finite and bounded) within ``seconds``; ``None`` otherwise."""
    model = ctx.make_model("overfit-batch")
    optimizer = ctx.make_optimizer(model)
    for group in optimizer.param_groups:
        if isinstance(group.get("lr"), (int, float)):
            group["lr"] *= FASTER
    losses, _ = _fit(ctx, model, optimizer, batch, steps, bound, settings, seconds)
    finite = [v for v in losses if math.isfinite(v)]
    if len(finite) != len(losses) or not finite or _unbounded(losses, bound, settings.runaway):
        return None
    target = settings.floor + settings.target_ratio * (losses[0] - settings.floor)
    return losses if min(finite) <= target else None


def _still_falling(losses: list[float], bound: float | None, settings: Settings) -> bool:
    """Whether a one-batch fit that has not reached its target is still on its way there: finite, not diverging
    or unbounded, and not on a plateau (:func:`_plateau`). A clean logistic regression with Adam at lr 1e-3 needs
    about 210 steps to get 90% of the way to 0 on 16 breast-cancer samples; a softmax before CrossEntropyLoss
    plateaus long before 200."""
    if not losses or not all(math.isfinite(v) for v in losses):
        return False
    initial, floor = losses[0], settings.floor
    if min(losses) <= floor + settings.target_ratio * (initial - floor) or initial <= floor:
        return False
    tail = sum(losses[-10:]) / len(losses[-10:])
    return tail <= initial and not _unbounded(losses, bound, settings.runaway) \
        and _plateau(losses, initial, floor) is None


def _plateau(losses: list[float], initial: float, floor: float) -> float | None:
    """How much the last quarter of the steps lowered the loss, when that is under 2% of (initial - floor)."""
    if len(losses) < 20:
        return None
    cut = len(losses) * 3 // 4
    drop = min(losses[:cut]) - min(losses[cut:])
    return max(drop, 0.0) if drop < 0.02 * (initial - floor) else None


def _sigmoid_cap(ctx: Any, model: Any, batch: Any) -> float | None:
    """The lowest BCEWithLogitsLoss reachable on ``batch`` when the trained model's outputs all lie in [0, 1]."""
    import torch

    from sanitycheck.pipeline.losses import loss_kind

    if loss_kind(ctx.loss_fn) != "bce_logits":
        return None
    inputs, targets = ctx.train.unpack(batch)
    with torch.no_grad():
        out = model.eval()(inputs)
    if not isinstance(out, torch.Tensor) or not isinstance(targets, torch.Tensor) or out.numel() != targets.numel():
        return None
    if not bool(((out >= 0) & (out <= 1)).all()):
        return None
    y = targets.float().reshape(-1)
    best = y * math.log1p(math.exp(-1.0)) + (1 - y) * math.log(2.0)
    return float(best.mean())


def _target_floor(ctx: Any, batch: Any) -> float | None:
    """The lowest loss a CrossEntropyLoss can reach on ``batch`` when that is not 0, else None: with
    ``label_smoothing`` > 0 (the smoothed target keeps eps / C on every class: 0.50 for eps = 0.1 and 10 classes,
    the default of torchvision's and timm's classification recipes) or class probabilities as targets (soft labels,
    distillation: the targets' own entropy).

    The best outputs give each class c a probability proportional to its weight in the loss, w_c ((1 - eps) t_c +
    eps / C) (t: the one-hot or given target distribution, w: the loss's class weights, 1 without); the floor is
    the user's loss at those outputs, on this batch's targets.
    """
    import torch

    from sanitycheck.pipeline.losses import loss_kind

    loss = ctx.loss_fn
    eps = float(getattr(loss, "label_smoothing", 0.0) or 0.0)
    targets = ctx.train.unpack(batch)[1]
    out = getattr(ctx, "output_shape", None)  # the preflight's outputs: (C, ...) per sample
    if ctx.task != "classification" or loss_kind(loss) != "cross_entropy" or not isinstance(targets, torch.Tensor) \
            or not out or out[0] < 2:
        return None
    classes = out[0]
    shape = [1] * (len(out) + 1)
    shape[1] = classes
    if targets.is_floating_point() and tuple(targets.shape[1:]) == tuple(out):  # class probabilities
        t = targets.detach().cpu().float()
    elif not targets.is_floating_point() and eps > 0 and len(out) == targets.ndim:  # class ids
        t = torch.nn.functional.one_hot(targets.detach().cpu().long().clamp(0, classes - 1), classes).movedim(-1, 1)
    else:
        return None
    weight = getattr(loss, "weight", None)
    w = (torch.ones(classes) if weight is None else weight.detach().float().cpu()).reshape(shape)
    share = w * ((1 - eps) * t.float() + eps / classes)
    logits = (share / share.sum(1, keepdim=True)).clamp_min(1e-12).log()  # a class of probability 0 adds 0
    with torch.no_grad():
        floor = float(loss(logits.to(targets.device if weight is None else weight.device), targets))
    return floor if floor > 0 else None


def _softmax_cap(ctx: Any, model: Any, batch: Any) -> float | None:
    """The lowest CrossEntropyLoss reachable when the model outputs probabilities, else None.

    With probabilities p fed as logits, the best case is p = one-hot: log_softmax gives -ln(1 + (C-1)/e).
    """
    import torch

    from sanitycheck.pipeline.losses import loss_kind

    if loss_kind(ctx.loss_fn) != "cross_entropy":
        return None
    with torch.no_grad():
        out = ctx.outputs(model.eval(), batch)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] < 2:
        return None
    out = out.float()  # a half-precision model's outputs: allclose needs one dtype
    probabilities = bool(((out >= 0) & (out <= 1)).all()) and torch.allclose(out.sum(1), torch.ones(()), atol=1e-3)
    return math.log(1 + (out.shape[1] - 1) / math.e) if probabilities else None


@hookimpl
def sanitycheck_checks():
    return [OverfitBatch()]
