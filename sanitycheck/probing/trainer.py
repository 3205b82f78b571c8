"""The shared short-training engine: train a fresh model on a subset for a budget, then evaluate it.

Every probe that needs a (briefly) trained model uses this module instead of writing its own loop, so they
all train the same way: the user's ``train_step`` (through :meth:`PipelineContext.step`) on batches built in
the user's own format, seeded batch order, a budget in steps *and* seconds, per-step loss and accuracy, and
per-sample losses / correctness / margins at the end.

The API (documented for other checks, e.g. ``augmentation`` and ``influence``):

- :func:`train` ``(ctx, split, indices, steps=..., seconds=None, labels=None, inputs_transform=None,
  tag=..., eval_split=None, eval_indices=None, fit_threshold=None) -> TrainResult``
  trains ``ctx.make_model(tag)`` on ``split[indices]``. ``labels`` (aligned with ``indices``) replaces the
  targets, ``inputs_transform(inputs_batch) -> inputs_batch`` rewrites every input batch (e.g. zeros).
- :func:`evaluate` ``(ctx, model, split, indices, labels=None, inputs_transform=None) -> Evaluation``:
  per-sample loss, correctness, margin and prediction, in eval mode.
- :func:`reference_model` ``(ctx) -> TrainResult``: one model trained on a standard subset of the training
  split with the real labels, evaluated on a held-out subset; computed once per run (``ctx.shared``) and
  reused by every check that asks. :func:`reference_plan` says which samples and budget it uses: the default
  budget when it fits the time cap, else one fitted to the measured cost of the user's step (smaller batches,
  fewer samples, a smaller evaluation; ``Plan.fitted``, ``Plan.decisive``, ``Plan.batch_size``). Runs compared
  with the reference pass ``batch_size=plan.batch_size``. Its ``tracked`` curve holds the held-out loss every
  twentieth of the run (``generalization`` reads it).
- ``train(..., track_split=, track_indices=, track_every=)`` records ``TrainResult.tracked``: the mean loss
  on ``track_split[track_indices]`` (eval mode, real targets, no ``inputs_transform``) before the first step
  and every ``track_every`` steps, with the mean training-step loss since the previous point.

Reproducibility: the model's initialization, the subset and the batch order are seeded by ``tag``. The
only source of variation is the time cap: when ``seconds`` runs out first, the result records how many
steps were done (``stopped == "seconds"``), and callers that compare runs give the second run that number
of steps instead of a time cap.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sanitycheck.pipeline.data import replace_in_batch  # noqa: F401  (part of this module's API)
from sanitycheck.probing.budget import StepCost, measure_step_cost, step_cost, training_threads
from sanitycheck.probing.numerics import flush_denormal

if TYPE_CHECKING:
    from torch import nn

    from sanitycheck.pipeline.context import PipelineContext
    from sanitycheck.pipeline.data import Split

#: The reference model's budget at the default profile (scaled by the profile): training samples, steps,
#: a time cap in seconds, and held-out samples it is evaluated on.
REFERENCE_TRAIN = 1024
REFERENCE_STEPS = 300
REFERENCE_SECONDS = 10.0
REFERENCE_EVAL = 512
#: For a cheap epoch the cap is this share of one estimated epoch instead (scaled by the profile), never below
#: REFERENCE_MIN_SECONDS: see :func:`reference_seconds`.
REFERENCE_EPOCH_SHARE = 0.3
REFERENCE_MIN_SECONDS = 5.0
#: The reference run's held-out loss is tracked at this many evenly spaced points (plus step 0), on at most
#: this many of its held-out samples: what ``generalization`` reads the early-stopping point from. With
#: ``task: sequence`` every sample carries one prediction per position, so fewer samples give a steadier mean
#: (64 sequences of 64 tokens are 4096 predictions): tracking 256 of them took 2.6 s of the char-level GPT's 24 s.
REFERENCE_TRACK_POINTS = 20
REFERENCE_TRACK_SAMPLES = 256
REFERENCE_TRACK_SEQUENCES = 64

#: Fitting the reference budget to a slow model (see :func:`reference_plan`): the share of the time cap a fitted
#: plan is sized to use (the rest absorbs load swings), the smallest batch it uses, the steps it aims for before it
#: shrinks the batch, how often it aims to show each training sample, and the least steps, training samples and
#: held-out samples of a run that can decide anything.
PLAN_SHARE = 0.6
#: ... the share of it the tracked held-out loss may take, and the fewest samples it is tracked on.
TRACK_SHARE = 0.1
MIN_TRACK = 64
MIN_BATCH = 8
TARGET_STEPS = 150
TARGET_EPOCHS = 6
MIN_STEPS = 50
MIN_TRAIN = 128
MIN_EVAL = 128


@dataclass
class Evaluation:
    """A model's per-sample results on some samples (rows follow ``indices``)."""

    split: str
    indices: np.ndarray
    #: Per-sample loss (the configured loss, unreduced; task: sequence: the mean over the positions whose target
    #: counts, with no predictions, correctness or margins); NaN where it could not be computed.
    losses: np.ndarray
    #: The targets the model was scored against (the real ones unless ``labels`` replaced them).
    targets: np.ndarray | None
    #: Classification: the predicted class of each sample; regression: the predicted values.
    predictions: np.ndarray | None = None
    #: Classification: whether each prediction is right (``None`` when outputs are not class scores).
    correct: np.ndarray | None = None
    #: Classification: the true class's score minus the best other score (negative = misclassified).
    margins: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.indices)

    @property
    def mean_loss(self) -> float:
        finite = self.losses[np.isfinite(self.losses)]
        return float(finite.mean()) if len(finite) else math.nan

    @property
    def accuracy(self) -> float | None:
        return float(self.correct.mean()) if self.correct is not None and len(self.correct) else None

    @property
    def r2(self) -> float | None:
        """Coefficient of determination of regression predictions (``None`` for classification)."""
        if self.correct is not None or self.predictions is None or self.targets is None:
            return None
        y = self.targets.astype(np.float64).reshape(len(self.indices), -1)
        p = self.predictions.astype(np.float64).reshape(len(self.indices), -1)
        if y.shape != p.shape:
            return None
        total = float(((y - y.mean(0)) ** 2).sum())
        return 1.0 - float(((y - p) ** 2).sum()) / total if total > 0 else None

    @property
    def metric(self) -> str:
        """The name of :attr:`score`: ``accuracy``, ``r2`` or ``loss``."""
        if self.correct is not None:
            return "accuracy"
        return "r2" if self.r2 is not None else "loss"

    @property
    def score(self) -> float:
        """Accuracy, R² or the negative mean loss: higher is better in each case."""
        if self.metric == "accuracy":
            return float(self.accuracy)
        if self.metric == "r2":
            return float(self.r2)
        return -self.mean_loss


@dataclass(frozen=True)
class Tracked:
    """One point of a tracked run: steps done, the held-out mean loss then, and the mean loss of the training
    steps since the previous point (``None`` at step 0)."""

    step: int
    held_out_loss: float
    train_loss: float | None


@dataclass
class TrainResult:
    """A trained model and how its training went."""

    model: nn.Module
    split: str
    indices: np.ndarray
    #: The targets it was trained on when they were replaced (aligned with ``indices``), else ``None``.
    labels: np.ndarray | None
    #: The loss of every step (what the step returned), and the accuracy of the step's own forward pass on its
    #: batch (``None`` where the outputs are not class scores).
    losses: list[float] = field(default_factory=list)
    accuracies: list[float | None] = field(default_factory=list)
    seconds: float = 0.0
    #: Why training stopped: ``steps`` (budget done), ``seconds`` (time cap), ``fit`` (reached
    #: ``fit_threshold``), ``unscorable`` (with ``fit_threshold``: the fit has neither an accuracy nor an R² to
    #: reach, as for multi-hot targets) or ``nonfinite`` (the loss became NaN/Inf).
    stopped: str = "steps"
    #: The first step at which the training subset was fit (only with ``fit_threshold``).
    steps_to_fit: int | None = None
    #: Per-sample results on the training subset at the end (final losses, margins ...).
    final: Evaluation | None = None
    #: Per-sample results on the held-out subset (only with ``eval_split``).
    eval: Evaluation | None = None
    #: Only with ``track_every``: one :class:`Tracked` point before the first step, then every ``track_every``
    #: steps and after the last one.
    tracked: list[Tracked] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.losses)


# ------------------------------------------------------------------------------------------------ helpers

def rounded(value: float | None) -> float | None:
    """A float for the JSON evidence: 6 significant digits, ``None`` for NaN/Inf."""
    return None if value is None or not math.isfinite(value) else float(f"{value:.6g}")


def thin_curve(values: Sequence[float | None], points: int = 100) -> list[float | None]:
    """A per-step curve thinned to at most ``points`` values (always keeping the last), for the evidence."""
    values = list(values)
    if not values:
        return []
    stride = max(1, math.ceil(len(values) / points))
    kept = values[::stride]
    if (len(values) - 1) % stride:
        kept.append(values[-1])
    return [rounded(v) if v is not None else None for v in kept]


# ------------------------------------------------------------------------------------------------ batches


def prepared_batch(ctx: PipelineContext, split: Split, indices: np.ndarray, positions: np.ndarray,
                    labels: np.ndarray | None, inputs_transform: Callable | None) -> tuple[Any, Any, Any]:
    """The batch of ``indices[positions]`` with labels / transform applied: (batch, inputs, targets)."""
    import torch

    batch = ctx.batch(split, indices[positions])
    inputs, targets = split.unpack(batch)
    new_inputs = new_targets = None
    if labels is not None:
        new_targets = torch.as_tensor(labels[positions]).to(device=ctx.device)
        if isinstance(targets, torch.Tensor):
            new_targets = new_targets.to(targets.dtype).reshape(targets.shape)
    if inputs_transform is not None:
        new_inputs = inputs_transform(inputs)
    if new_inputs is not None or new_targets is not None:
        batch = replace_in_batch(split, batch, new_inputs, new_targets)
        inputs, targets = split.unpack(batch)
    return batch, inputs, targets


# ---------------------------------------------------------------------------------- per-sample scoring


def per_sample_loss(loss_fn: Any, outputs: Any, targets: Any) -> np.ndarray:
    """The loss of each sample of a batch: the functional form of a standard loss with ``reduction='none'``
    (keeping the loss's weight / label smoothing), else the loss called on one sample at a time
    (:func:`sanitycheck.pipeline.losses.per_sample`; :meth:`ModelAdapter.sample_losses` also covers models that
    compute their own loss)."""
    from sanitycheck.pipeline.losses import per_sample

    return per_sample(loss_fn, outputs, targets)


def classify(outputs: Any, targets: Any, loss_fn: Any) -> tuple[Any, Any, Any] | None:
    """(predicted class, correct, margin) tensors for class scores and integer labels, else ``None``.

    ``(N, C)`` scores with ``(N,)`` labels: argmax, margin = true score - best other. One score per sample
    (binary): threshold 0.5 for probabilities (``BCELoss``), 0 for logits; margin = signed distance to it.
    """
    import torch

    from sanitycheck.pipeline.losses import logits_of, loss_kind, squeezed_scores

    outputs = squeezed_scores(logits_of(outputs), targets)
    if not (isinstance(outputs, torch.Tensor) and isinstance(targets, torch.Tensor)) or outputs.ndim == 0:
        return None
    out = outputs.detach().float()
    n = out.shape[0]
    if out.ndim == 2 and out.shape[1] > 1 and targets.ndim == 1 and not targets.dtype.is_floating_point:
        y = targets.long().clamp(0, out.shape[1] - 1)
        pred = out.argmax(1)
        true = out.gather(1, y[:, None])[:, 0]
        other = out.scatter(1, y[:, None], -math.inf).max(1).values
        return pred, pred == targets.long(), true - other
    if out.numel() == n and targets.numel() == n:
        threshold = 0.5 if loss_kind(loss_fn) == "bce" else 0.0
        score = out.reshape(n)
        y = targets.reshape(n).float()
        pred = (score > threshold).long()
        return pred, pred == y.long(), (2 * y - 1) * (score - threshold)
    return None


def evaluate(ctx: PipelineContext, model: nn.Module, split: Split, indices: Sequence[int],
             labels: np.ndarray | None = None, inputs_transform: Callable | None = None,
             batch_size: int | None = None) -> Evaluation:
    """Per-sample loss, prediction, correctness and margin of ``model`` (in eval mode) on ``split[indices]``."""
    import torch

    indices = np.asarray(indices, dtype=np.int64)
    size = batch_size or max(ctx.config.batch_size, 64)
    losses, targets, preds, correct, margins = [], [], [], [], []
    classes = ctx.task == "classification"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(indices), size):
                positions = np.arange(start, min(start + size, len(indices)))
                batch, x, y = prepared_batch(ctx, split, indices, positions, labels, inputs_transform)
                out = ctx.outputs(model, batch)
                losses.append(ctx.sample_losses(model, batch, out))
                if isinstance(y, torch.Tensor):
                    targets.append(y.detach().cpu().numpy())
                scored = classify(out, y, ctx.loss_fn) if classes else None
                if scored is not None:
                    p, c, m = scored
                    preds.append(p.cpu().numpy())
                    correct.append(c.cpu().numpy())
                    margins.append(m.cpu().numpy().astype(np.float64))
                elif not classes and isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor) \
                        and out.numel() == y.numel():
                    preds.append(out.detach().float().reshape(y.shape).cpu().numpy())
    finally:
        model.train(was_training)
    complete = lambda parts: np.concatenate(parts) if parts and sum(map(len, parts)) == len(indices) else None  # noqa: E731
    return Evaluation(
        split=split.name, indices=indices, losses=np.concatenate(losses) if losses else np.array([]),
        targets=complete(targets), predictions=complete(preds), correct=complete(correct), margins=complete(margins),
    )


# ------------------------------------------------------------------------------------------- training


def train(ctx: PipelineContext, split: Split, indices: Sequence[int], *, steps: int, seconds: float | None = None,
          labels: np.ndarray | None = None, inputs_transform: Callable | None = None, tag: str = "train",
          batch_size: int | None = None, eval_split: Split | None = None, eval_indices: Sequence[int] | None = None,
          fit_threshold: float | None = None, fit_every: int = 10, evaluate_train: bool = True,
          track_split: Split | None = None, track_indices: Sequence[int] | None = None,
          track_every: int = 0) -> TrainResult:
    """Train a fresh model (``ctx.make_model(tag)``) on ``split[indices]`` with the configured optimizer and
    the user's step, for ``steps`` steps or ``seconds`` seconds, whichever ends first.

    Batches of ``batch_size`` (default: the config's, at most the subset's size) are drawn in seeded
    epochs over the subset. ``labels`` (one per index) replace the targets and ``inputs_transform`` rewrites
    each input batch, in training and in the evaluations. With ``fit_threshold``, every ``fit_every`` steps
    the training subset is scored (accuracy, or R² for regression) and training stops once it reaches the
    threshold (``steps_to_fit``). With ``eval_split``/``eval_indices`` the model is evaluated there at the
    end, with the real targets. With ``track_every`` > 0 the held-out loss on ``track_split[track_indices]``
    is recorded in ``tracked`` (see :class:`Tracked`); the time the tracking takes counts against ``seconds``.
    """
    track = (track_split, np.asarray(track_indices, dtype=np.int64), track_every) \
        if track_every > 0 and track_split is not None and track_indices is not None and len(track_indices) else None
    with flush_denormal(), training_threads(ctx):
        return _train(ctx, split, indices, steps, seconds, labels, inputs_transform, tag, batch_size, eval_split,
                      eval_indices, fit_threshold, fit_every, evaluate_train, track)


def _track(ctx: PipelineContext, model: nn.Module, track: tuple, result: TrainResult, since: int) -> None:
    """Append one :class:`Tracked` point: the held-out loss now and the mean step loss since step ``since``."""
    split, indices, _ = track
    recent = [v for v in result.losses[since:] if math.isfinite(v)]
    held_out = evaluate(ctx, model, split, indices).mean_loss
    result.tracked.append(Tracked(result.steps, held_out, float(np.mean(recent)) if recent else None))


def _train(ctx, split, indices, steps, seconds, labels, inputs_transform, tag, batch_size, eval_split,
           eval_indices, fit_threshold, fit_every, evaluate_train, track=None) -> TrainResult:
    from sanitycheck.pipeline.losses import split_output

    indices = np.asarray(indices, dtype=np.int64)
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != len(indices):
            raise ValueError(f"labels has {len(labels)} entries for {len(indices)} indices")
    size = max(1, min(batch_size or ctx.config.batch_size, len(indices)))
    model = ctx.make_model(tag)
    if not any(p.requires_grad for p in model.parameters()):  # a backward pass would raise: nothing can train
        from sanitycheck.engine.errors import SkipCheck

        raise SkipCheck("the model has no trainable parameters, so it cannot be trained (overfit-batch reports SC304)")
    optimizer = ctx.make_optimizer(model)
    order = ctx.rng(tag + ":batches")
    result = TrainResult(model=model, split=split.name, indices=indices, labels=labels)

    # The step's own forward pass is seen through a hook, so per-step accuracy costs no extra forward.
    seen: dict[str, Any] = {}
    hook = model.register_forward_hook(lambda module, args, output: seen.__setitem__("out", output))
    model_outputs = (lambda raw: split_output(raw)[0]) if ctx.model_computes_loss else (lambda raw: raw)  # noqa: E731
    start = time.perf_counter()
    queue = np.array([], dtype=np.int64)
    if track is not None:
        _track(ctx, model, track, result, 0)
    try:
        for step in range(steps):
            if len(queue) < size:
                queue = np.concatenate([queue, order.permutation(len(indices))])
            positions, queue = queue[:size], queue[size:]
            batch, _, targets = prepared_batch(ctx, split, indices, positions, labels, inputs_transform)
            seen.clear()
            loss = ctx.step(model, optimizer, batch)
            result.losses.append(loss)
            scored = classify(model_outputs(seen.get("out")), targets, ctx.loss_fn) \
                if ctx.task == "classification" else None
            result.accuracies.append(float(scored[1].float().mean()) if scored is not None else None)
            if track is not None and (step + 1) % track[2] == 0 and math.isfinite(loss):
                _track(ctx, model, track, result, step + 1 - track[2])
            if not math.isfinite(loss):
                result.stopped = "nonfinite"
                break
            if fit_threshold is not None and (step + 1) % fit_every == 0:
                fit = evaluate(ctx, model, split, indices, labels, inputs_transform)
                if fit.metric == "loss":  # neither accuracy nor R² (multi-hot or dense class targets): no fit to reach
                    result.stopped, result.final = "unscorable", fit
                    break
                if fit.score >= fit_threshold:
                    result.steps_to_fit, result.stopped, result.final = step + 1, "fit", fit
                    break
            if seconds is not None and time.perf_counter() - start >= seconds and step + 1 < steps:
                result.stopped = "seconds"
                break
    finally:
        hook.remove()
    if track is not None and result.losses and result.tracked[-1].step != result.steps \
            and math.isfinite(result.losses[-1]):
        _track(ctx, model, track, result, result.tracked[-1].step)
    result.seconds = time.perf_counter() - start
    if evaluate_train and result.final is None:
        result.final = evaluate(ctx, model, split, indices, labels, inputs_transform)
    if eval_split is not None and eval_indices is not None and len(eval_indices):
        result.eval = evaluate(ctx, model, eval_split, eval_indices, None, inputs_transform)
    return result


# ----------------------------------------------------------------------------------- reference model


@dataclass(frozen=True)
class Plan:
    """The standard subset and budget of the reference model (and of probes that compare against it)."""

    train_indices: np.ndarray
    eval_split: str  # "val", or "train" when there is no validation split (then a disjoint part of train)
    eval_indices: np.ndarray
    steps: int
    seconds: float
    #: The batch size of every run on this plan (``None``: the config's).
    batch_size: int | None = None
    #: True when the default budget did not fit the time cap and was fitted to the measured step cost.
    fitted: bool = False
    #: False when even the smallest fitted budget (MIN_STEPS steps of MIN_BATCH) does not fit the time cap.
    decisive: bool = True
    #: The measured cost (only when it was measured, i.e. when the model is not obviously fast).
    cost: StepCost | None = None
    #: Seconds one run of the smallest decisive budget would take (only when the plan is not decisive).
    needs_seconds: float | None = None
    #: Held-out samples the reference run tracks (``None``: REFERENCE_TRACK_SAMPLES / _SEQUENCES); a fitted plan
    #: tracks fewer when their evaluations would not fit its time.
    track_samples: int | None = None

    def describe(self) -> dict[str, Any]:
        """The plan for a finding's evidence."""
        out: dict[str, Any] = {"train_samples": len(self.train_indices), "eval_samples": len(self.eval_indices),
                               "steps": self.steps, "batch_size": self.batch_size, "time_cap_s": rounded(self.seconds),
                               "fitted_to_step_time": self.fitted}
        if self.cost is not None:
            out["step_seconds"] = rounded(self.cost.step(self.batch_size or 1))
        if self.needs_seconds is not None:
            out["decisive_run_needs_s"] = rounded(self.needs_seconds)
        return out


def reference_plan(ctx: PipelineContext) -> Plan:
    """Which samples the reference model trains and is evaluated on, and its budget (cached per run).

    The default budget (scaled by the profile) is REFERENCE_TRAIN samples, REFERENCE_STEPS steps of the config's
    batch size and REFERENCE_EVAL held-out samples, under a time cap of REFERENCE_SECONDS. When a quick timing of
    the user's step says that budget would take more than PLAN_SHARE of the cap, the budget follows the measured
    cost instead of being cut by the cap: the largest batch (halving down to MIN_BATCH, while halving cuts the step
    time by 20% or more) that still gives TARGET_STEPS steps, as many steps as fit, a training subset small enough to be seen about TARGET_EPOCHS times
    (at least MIN_TRAIN), a held-out subset whose evaluation takes at most 15% of the time (at least MIN_EVAL), and
    as many of those tracked at every REFERENCE_TRACK_POINTS as take at most TRACK_SHARE of it (at least MIN_TRACK;
    the tracking counts in whether the default budget fits, too).
    Such a plan is ``fitted``; it is ``decisive`` when it still has MIN_STEPS steps. The cap itself follows the
    epoch (:func:`reference_seconds`).
    """

    return ctx.shared("trainer:plan", lambda: fit_plan(
        ctx, dataclasses.replace(reference_draw(ctx), seconds=reference_seconds(ctx))))


def reference_draw(ctx: PipelineContext) -> Plan:
    """The reference plan's samples and default budget before :func:`fit_plan` sizes them to the measured step
    cost (its time cap not set yet: that follows the timed epoch): nothing is timed, so a check can read it to
    decide whether it applies at all. Fitting never leaves fewer than min(MIN_TRAIN, drawn) training and
    min(MIN_EVAL, drawn) held-out samples."""

    def compute() -> Plan:
        n_train, n_eval = ctx.budget(REFERENCE_TRAIN, minimum=32), ctx.budget(REFERENCE_EVAL, minimum=32)
        steps = ctx.budget(REFERENCE_STEPS, minimum=30)
        if ctx.val is not None:
            train_idx = ctx.sample_indices(ctx.train, n_train, "trainer:train")
            eval_idx = ctx.sample_indices(ctx.val, n_eval, "trainer:eval")
        else:  # no validation split: hold out a disjoint part of train (a quarter at most) for evaluation
            pool = ctx.rng("trainer:holdout").permutation(ctx.usable_indices(ctx.train))
            n_eval = min(n_eval, len(pool) // 4)
            train_idx, eval_idx = np.sort(pool[n_eval:n_eval + n_train]), np.sort(pool[:n_eval])
        return Plan(train_idx, "val" if ctx.val is not None else "train", eval_idx, steps, math.nan)

    return ctx.shared("trainer:draw", compute)


def reference_seconds(ctx: PipelineContext, scale: float | None = None) -> float:
    """The reference run's time cap: REFERENCE_SECONDS, or REFERENCE_EPOCH_SHARE of one estimated epoch
    (:func:`sanitycheck.probing.budget.epoch_seconds`) when that is less, never below REFERENCE_MIN_SECONDS; times
    the profile's scale (``scale``, default this run's; see the floor below).

    The shuffled-label run of label-shuffle trains on the same plan, so the two runs of a fitted plan (PLAN_SHARE
    of the cap each) take at most 36% of an epoch of 17-33 s (a char-level GPT's epoch of 17.5 s: 5.3 s caps instead
    of 10 s; label-shuffle + generalization 15.5 s -> 11.3 s). The floor is what label-shuffle's verdicts were
    measured to need: at a 2 s cap, PyTorch's MNIST example on 2000 digits with permuted images passed in one run
    of three (its near-constant predictions beat chance at p = 0.008); at 5 s it gave SC201 in 14 runs of 14, and a
    model must now also beat every constant predictor (SC201's rule). The floor scales up with the thorough profile
    but never down: the fast profile keeps its fixed cap (2.5 s), since at 1.25 s the same permuted case passed once
    in four runs."""
    from sanitycheck.probing.budget import epoch_seconds

    scale = ctx.scale if scale is None else scale
    full = scale * REFERENCE_SECONDS
    floor = min(full, REFERENCE_MIN_SECONDS * max(1.0, scale))
    return min(full, max(floor, scale * REFERENCE_EPOCH_SHARE * epoch_seconds(ctx)))


def fit_plan(ctx: PipelineContext, plan: Plan) -> Plan:
    """``plan`` as it is when its budget fits the time cap, else fitted to the measured step cost (see
    :func:`reference_plan`)."""

    size = max(1, min(ctx.config.batch_size, len(plan.train_indices)))
    share = PLAN_SHARE * plan.seconds
    cost = step_cost(ctx, size)

    most = _track_most(ctx)

    def total(steps: int, batch: int, n_train: int, n_eval: int, n_track: int = most) -> float:
        # training, the held-out loss tracked at REFERENCE_TRACK_POINTS + 1 points, and the final evaluations
        tracking = (REFERENCE_TRACK_POINTS + 1) * min(n_track, n_eval)
        return steps * cost.step(batch) + cost.eval_per_sample * (n_train + n_eval + tracking)

    if total(plan.steps, size, len(plan.train_indices), len(plan.eval_indices)) <= share:
        return plan
    smallest = min(MIN_BATCH, size)
    if smallest < size and MIN_STEPS * cost.step(size) * smallest / size > share:
        smallest = size  # even a step costing its samples' share of this one would leave the plan undecisive
    if smallest < size:
        cost = measure_step_cost(ctx, plan.train_indices, size, also=smallest, known=cost)
        if cost.also_failed:  # the step does not take smaller batches (a hard-coded batch size): keep the config's
            smallest = size
    n_eval = int(np.clip(0.15 * share / max(cost.eval_per_sample, 1e-9), MIN_EVAL, len(plan.eval_indices)))
    # tracking takes at most TRACK_SHARE of the time too (it cost a slow segmentation net 2 s of its 5 s cap and
    # stopped the run early), but never fewer than MIN_TRACK samples
    n_track = int(np.clip(TRACK_SHARE * share / ((REFERENCE_TRACK_POINTS + 1) * max(cost.eval_per_sample, 1e-9)),
                          min(MIN_TRACK, most), most))
    batch = size
    while batch > smallest and (share - total(0, batch, 0, n_eval, n_track)) / cost.step(batch) < TARGET_STEPS \
            and cost.step(max(smallest, batch // 2)) < 0.8 * cost.step(batch):  # halving must buy steps
        batch = max(smallest, batch // 2)
    steps = n_train = 0
    for _ in range(3):  # the training subset's final evaluation costs time too: settle in a few rounds
        room = share - total(0, batch, n_train, n_eval, n_track)
        steps = int(min(plan.steps, max(0.0, room) / cost.step(batch)))
        n_train = int(np.clip(steps * batch // TARGET_EPOCHS, MIN_TRAIN, len(plan.train_indices)))
    decisive = steps >= MIN_STEPS
    needs = None
    if not decisive:
        steps = max(steps, 1)
        needs = total(MIN_STEPS, smallest, min(MIN_TRAIN, len(plan.train_indices)),
                      min(MIN_EVAL, len(plan.eval_indices)), min(MIN_TRACK, most)) / PLAN_SHARE
    train_idx = _subset(ctx, plan.train_indices, n_train, "trainer:train:fitted")
    eval_idx = _subset(ctx, plan.eval_indices, n_eval, "trainer:eval:fitted")
    return dataclasses.replace(plan, train_indices=train_idx, eval_indices=eval_idx, steps=steps, batch_size=batch,
                               fitted=True, decisive=decisive, cost=cost, needs_seconds=needs,
                               track_samples=min(n_track, n_eval))


def _subset(ctx: PipelineContext, indices: np.ndarray, n: int, tag: str) -> np.ndarray:
    return indices if n >= len(indices) else np.sort(ctx.rng(tag).choice(indices, size=n, replace=False))


def eval_split_of(ctx: PipelineContext, plan: Plan) -> Split:
    return ctx.val if plan.eval_split == "val" else ctx.train


def reference_model(ctx: PipelineContext) -> TrainResult:
    """A model trained with the real labels on :func:`reference_plan`'s subset and budget, evaluated on its
    held-out subset. Trained once per run, on first request; every later caller gets the same result
    (do not train it further in place: ``copy.deepcopy(result.model)`` first)."""

    def compute() -> TrainResult:
        plan = reference_plan(ctx)
        held_out = eval_split_of(ctx, plan)
        return train(ctx, ctx.train, plan.train_indices, steps=plan.steps, seconds=plan.seconds,
                     tag="trainer:reference", batch_size=plan.batch_size, eval_split=held_out,
                     eval_indices=plan.eval_indices,
                     track_split=held_out, track_indices=tracked_indices(ctx, plan),
                     track_every=max(1, plan.steps // REFERENCE_TRACK_POINTS))

    return ctx.shared("trainer:reference", compute)


def tracked_indices(ctx: PipelineContext, plan: Plan) -> np.ndarray:
    """The held-out samples whose loss the reference run tracks (see REFERENCE_TRACK_SAMPLES)."""
    return plan.eval_indices[:min(_track_most(ctx), plan.track_samples or len(plan.eval_indices))]


def _track_most(ctx: PipelineContext) -> int:
    return REFERENCE_TRACK_SEQUENCES if ctx.task == "sequence" else REFERENCE_TRACK_SAMPLES
