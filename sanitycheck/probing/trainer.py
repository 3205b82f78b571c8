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
  reused by every check that asks. :func:`reference_plan` says which samples and budget it uses.

Reproducibility: the model's initialization, the subset and the batch order are seeded by ``tag``. The
only source of variation is the time cap: when ``seconds`` runs out first, the result records how many
steps were done (``stopped == "seconds"``), and callers that compare runs give the second run that number
of steps instead of a time cap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sanitycheck.pipeline.data import replace_in_batch  # noqa: F401  (part of this module's API)

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
    #: ``fit_threshold``) or ``nonfinite`` (the loss became NaN/Inf).
    stopped: str = "steps"
    #: The first step at which the training subset was fit (only with ``fit_threshold``).
    steps_to_fit: int | None = None
    #: Per-sample results on the training subset at the end (final losses, margins ...).
    final: Evaluation | None = None
    #: Per-sample results on the held-out subset (only with ``eval_split``).
    eval: Evaluation | None = None

    @property
    def steps(self) -> int:
        return len(self.losses)


# ------------------------------------------------------------------------------------------------ helpers

_flush_depth = 0


@contextmanager
def flush_denormal() -> Iterator[None]:
    """Treat denormal floats as zero while a probe trains (restored afterwards; nested uses are fine).

    Adam's second-moment estimates of near-zero gradients (e.g. the weights of always-zero pixels) become
    denormal numbers, and denormal arithmetic is 10-50x slower on x86 CPUs: measured 3.8 s instead of 0.25 s
    for 300 steps of a small MLP on digits. Values that small do not change what a probe concludes.
    """
    import torch

    global _flush_depth
    supported = torch.set_flush_denormal(True) if _flush_depth == 0 else True
    _flush_depth += 1
    try:
        yield
    finally:
        _flush_depth -= 1
        if _flush_depth == 0 and supported:
            torch.set_flush_denormal(False)


@contextmanager
def quick_cpu() -> Iterator[None]:
    """:func:`flush_denormal` plus one intra-op thread while a probe trains (restored afterwards).

    Probe models and batches are small, so a second intra-op thread buys little, while on a 2-core machine
    shared with other work it makes every op wait for a descheduled thread: measured at load ~4, the four
    training probes took 17.6 s on the digits example and 60.4 s on a CIFAR-10-sized CNN with two threads,
    1.5 s and 14.7 s with one.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with flush_denormal():
            yield
    finally:
        torch.set_num_threads(threads)


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


def _prepared_batch(ctx: PipelineContext, split: Split, indices: np.ndarray, positions: np.ndarray,
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

    from sanitycheck.pipeline.losses import loss_kind

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
                batch, x, y = _prepared_batch(ctx, split, indices, positions, labels, inputs_transform)
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
          fit_threshold: float | None = None, fit_every: int = 10, evaluate_train: bool = True) -> TrainResult:
    """Train a fresh model (``ctx.make_model(tag)``) on ``split[indices]`` with the configured optimizer and
    the user's step, for ``steps`` steps or ``seconds`` seconds, whichever ends first.

    Batches of ``batch_size`` (default: the config's, at most the subset's size) are drawn in seeded
    epochs over the subset. ``labels`` (one per index) replace the targets and ``inputs_transform`` rewrites
    each input batch, in training and in the evaluations. With ``fit_threshold``, every ``fit_every`` steps
    the training subset is scored (accuracy, or R² for regression) and training stops once it reaches the
    threshold (``steps_to_fit``). With ``eval_split``/``eval_indices`` the model is evaluated there at the
    end, with the real targets.
    """
    with quick_cpu():
        return _train(ctx, split, indices, steps, seconds, labels, inputs_transform, tag, batch_size, eval_split,
                      eval_indices, fit_threshold, fit_every, evaluate_train)


def _train(ctx, split, indices, steps, seconds, labels, inputs_transform, tag, batch_size, eval_split,
           eval_indices, fit_threshold, fit_every, evaluate_train) -> TrainResult:
    from sanitycheck.pipeline.losses import split_output

    indices = np.asarray(indices, dtype=np.int64)
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != len(indices):
            raise ValueError(f"labels has {len(labels)} entries for {len(indices)} indices")
    size = max(1, min(batch_size or ctx.config.batch_size, len(indices)))
    model = ctx.make_model(tag)
    optimizer = ctx.make_optimizer(model)
    order = ctx.rng(tag + ":batches")
    result = TrainResult(model=model, split=split.name, indices=indices, labels=labels)

    # The step's own forward pass is seen through a hook, so per-step accuracy costs no extra forward.
    seen: dict[str, Any] = {}
    hook = model.register_forward_hook(lambda module, args, output: seen.__setitem__("out", output))
    model_outputs = (lambda raw: split_output(raw)[0]) if ctx.model_computes_loss else (lambda raw: raw)  # noqa: E731
    start = time.perf_counter()
    queue = np.array([], dtype=np.int64)
    try:
        for step in range(steps):
            if len(queue) < size:
                queue = np.concatenate([queue, order.permutation(len(indices))])
            positions, queue = queue[:size], queue[size:]
            batch, _, targets = _prepared_batch(ctx, split, indices, positions, labels, inputs_transform)
            seen.clear()
            loss = ctx.step(model, optimizer, batch)
            result.losses.append(loss)
            scored = classify(model_outputs(seen.get("out")), targets, ctx.loss_fn) \
                if ctx.task == "classification" else None
            result.accuracies.append(float(scored[1].float().mean()) if scored is not None else None)
            if not math.isfinite(loss):
                result.stopped = "nonfinite"
                break
            if fit_threshold is not None and (step + 1) % fit_every == 0:
                fit = evaluate(ctx, model, split, indices, labels, inputs_transform)
                if fit.metric != "loss" and fit.score >= fit_threshold:
                    result.steps_to_fit, result.stopped, result.final = step + 1, "fit", fit
                    break
            if seconds is not None and time.perf_counter() - start >= seconds and step + 1 < steps:
                result.stopped = "seconds"
                break
    finally:
        hook.remove()
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


def reference_plan(ctx: PipelineContext) -> Plan:
    """Which samples the reference model trains and is evaluated on, and its budget (cached per run)."""

    def compute() -> Plan:
        n_train, n_eval = ctx.budget(REFERENCE_TRAIN, minimum=32), ctx.budget(REFERENCE_EVAL, minimum=32)
        if ctx.val is not None:
            train_idx = ctx.sample_indices(ctx.train, n_train, "trainer:train")
            return Plan(train_idx, "val", ctx.sample_indices(ctx.val, n_eval, "trainer:eval"),
                        ctx.budget(REFERENCE_STEPS, minimum=30), REFERENCE_SECONDS * ctx.scale)
        # No validation split: hold out a disjoint part of train (a quarter at most) for evaluation.
        pool = ctx.rng("trainer:holdout").permutation(ctx.usable_indices(ctx.train))
        n_eval = min(n_eval, len(pool) // 4)
        return Plan(np.sort(pool[n_eval:n_eval + n_train]), "train", np.sort(pool[:n_eval]),
                    ctx.budget(REFERENCE_STEPS, minimum=30), REFERENCE_SECONDS * ctx.scale)

    return ctx.shared("trainer:plan", compute)


def eval_split_of(ctx: PipelineContext, plan: Plan) -> Split:
    return ctx.val if plan.eval_split == "val" else ctx.train


def reference_model(ctx: PipelineContext) -> TrainResult:
    """A model trained with the real labels on :func:`reference_plan`'s subset and budget, evaluated on its
    held-out subset. Trained once per run, on first request; every later caller gets the same result
    (do not train it further in place: ``copy.deepcopy(result.model)`` first)."""

    def compute() -> TrainResult:
        plan = reference_plan(ctx)
        return train(ctx, ctx.train, plan.train_indices, steps=plan.steps, seconds=plan.seconds,
                     tag="trainer:reference", eval_split=eval_split_of(ctx, plan), eval_indices=plan.eval_indices)

    return ctx.shared("trainer:reference", compute)
