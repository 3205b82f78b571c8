"""The pipeline context: the user's pipeline, materialized once, handed to every check.

Checks ask the context for data, models, optimizers and training steps; none re-reads the dataset or
re-imports the user's code. :meth:`PipelineContext.open` resolves the config, reads both splits once and
runs a preflight (one forward pass, the loss, one backward pass, the optimizer) so that a pipeline that
cannot run at all is a clear usage error (exit 2), not a crash inside some check.
"""

from __future__ import annotations

import copy
import inspect
import math
import random
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from sanitycheck.engine.config import PROFILES, Config, resolve
from sanitycheck.pipeline.data import Split, materialize
from sanitycheck.pipeline.tensors import to_device
from sanitycheck.engine.errors import ConfigError, UsageError


def describe(value: Any) -> str:
    """Shape and dtype of a tensor (or of each tensor in a tuple/dict), for error messages."""
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    return type(value).__name__


def loss_value(loss: Any) -> float:
    """A loss returned by a step (tensor or number) as a float."""
    if isinstance(loss, torch.Tensor):
        return float(loss.detach().float().mean().cpu())
    return float(loss)


@dataclass
class PipelineContext:
    """Everything a check needs about the user's pipeline."""

    config: Config
    device: torch.device
    train: Split
    val: Split | None
    loss_fn: Any
    _model_source: Any = field(repr=False)
    _optimizer_cls: Any = field(repr=False)
    _train_step: Any = field(default=None, repr=False)
    augment: Any = None
    num_classes: int | None = None
    #: Shape of one sample's model output, seen in the preflight (``None`` when the output is not a tensor).
    output_shape: tuple[int, ...] | None = None
    #: Results shared between checks (embeddings, trained reference models ...), keyed by whoever computes them.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------------------------ construction

    @classmethod
    def open(cls, config: Config) -> PipelineContext:
        """Resolve every reference in ``config``, materialize the splits and run the preflight."""
        base = config.base_dir
        device = _resolve_device(config.device)
        model_source = resolve(config.model, "model", base)
        if not (isinstance(model_source, nn.Module) or callable(model_source)):
            raise ConfigError(f"model: {config.model!r} is a {type(model_source).__name__}, not an nn.Module or a callable")
        loss_fn = resolve(config.loss, "loss", base)
        if inspect.isclass(loss_fn):
            try:
                loss_fn = loss_fn()
            except Exception as exc:
                raise ConfigError(f"loss: {loss_fn.__name__}() raised {type(exc).__name__}: {exc}") from exc
        if not callable(loss_fn):
            raise ConfigError(f"loss: {config.loss!r} is a {type(loss_fn).__name__}, not callable")
        optimizer_cls = resolve(config.optimizer.target, "optimizer.target", base)
        if not callable(optimizer_cls):
            raise ConfigError(f"optimizer.target: {config.optimizer.target!r} is not callable")
        train_step = resolve(config.train_step, "train_step", base) if config.train_step is not None else None
        if train_step is not None and not callable(train_step):
            raise ConfigError(f"train_step: {config.train_step!r} is not callable")
        augment = resolve(config.data.augment, "data.augment", base) if config.data.augment is not None else None
        if augment is not None and not callable(augment):
            raise ConfigError(f"data.augment: {config.data.augment!r} is not callable")

        splits = {}
        for name in ("train", "val"):
            ref = getattr(config.data, name)
            if ref is None:
                splits[name] = None
                continue
            splits[name] = materialize(
                resolve(ref, f"data.{name}", base), name,
                max_samples=config.data.max_samples, memory_mb=config.data.memory_mb,
                input_key=config.data.input_key, target_key=config.data.target_key,
            )
        ctx = cls(
            config=config, device=device, train=splits["train"], val=splits["val"], loss_fn=loss_fn,
            _model_source=model_source, _optimizer_cls=optimizer_cls, _train_step=train_step, augment=augment,
        )
        ctx._preflight()
        return ctx

    def _preflight(self) -> None:
        if self.task == "classification":
            self.num_classes = self._infer_num_classes()
        try:
            model = self.make_model("preflight")
        except UsageError:
            raise
        usable = self.usable_indices(self.train)  # a NaN or odd-shaped sample is data-integrity's finding, not exit 2
        indices = list(usable[:8]) if len(usable) else list(range(min(8, len(self.train))))
        batch = self.batch(self.train, indices)
        inputs, targets = self.train.unpack(batch)
        capture = None
        if self.config.embedding.source == "model":  # the feature layer must exist and see a batch of tensors
            from sanitycheck.pipeline.capture import FeatureCapture

            capture = FeatureCapture(model, self.config.embedding.layer)
        try:
            outputs = model(inputs)
        except Exception as exc:
            raise UsageError(
                f"model: forward pass failed on a train batch of inputs {describe(inputs)}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            if capture is not None:
                capture.remove()
        if capture is not None:
            try:
                capture.take(len(indices))
            except ValueError as exc:
                raise ConfigError(f"embedding.layer: {exc}") from exc
        try:
            loss = self.loss_fn(outputs, targets)
        except Exception as exc:
            raise UsageError(
                f"loss: failed on outputs {describe(outputs)} and targets {describe(targets)}: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(outputs, torch.Tensor):
            self.output_shape = tuple(outputs.shape[1:])
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise UsageError(
                f"loss: expected a scalar tensor, got {describe(loss)} for outputs {describe(outputs)} and targets "
                f"{describe(targets)} (reduction='none'?)"
            )
        if loss.requires_grad:
            try:
                loss.backward()
            except Exception as exc:
                raise UsageError(
                    f"loss: backward failed for outputs {describe(outputs)} and targets {describe(targets)}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        self.make_optimizer(model)

    # ------------------------------------------------------------------------------ shared components

    def shared(self, key: str, compute: Any) -> Any:
        """``compute()`` once per run under ``key``; later calls (from any check) get the cached result."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def _infer_num_classes(self) -> int | None:
        """``num_classes`` from the config, checked against the labels; else inferred from them."""
        labels = [s for s in (self.train, self.val) if s is not None]
        found_max, where = -1, None
        for split in labels:
            targets = split.data_pass().targets
            if targets is None or targets.ndim != 1 or not np.issubdtype(targets.dtype, np.number):
                return self.config.num_classes  # not integer class labels: data-integrity reports it
            finite = np.isfinite(targets)
            if not finite.any() or not np.all(targets[finite] == np.round(targets[finite])):
                return self.config.num_classes
            top = int(np.argmax(np.where(finite, targets, -np.inf)))
            if targets[top] > found_max:
                found_max, where = int(targets[top]), (split.name, top)
        declared = self.config.num_classes
        if declared is not None and where is not None and found_max >= declared:
            raise ConfigError(
                f"num_classes: {declared} disagrees with the labels: {where[0]} sample {where[1]} has label {found_max} "
                f"(labels must be in [0, {declared}))"
            )
        return declared if declared is not None else (found_max + 1 if found_max >= 1 else None)

    # ------------------------------------------------------------------------------------------ basics

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def scale(self) -> float:
        """The profile's budget factor (fast 0.25, default 1, thorough 4)."""
        return PROFILES[self.config.profile]

    def budget(self, default: float, minimum: int = 1) -> int:
        """A check's default budget (steps, samples) scaled by the profile."""
        return max(minimum, int(round(default * self.scale)))

    def splits(self) -> list[Split]:
        return [s for s in (self.train, self.val) if s is not None]

    # ---------------------------------------------------------------------------------------- seeding

    def derived_seed(self, tag: str) -> int:
        """A seed for one probe: the config's seed combined with a stable tag, so probes do not share streams."""
        return (self.seed * 1_000_003 + zlib.crc32(tag.encode())) % 2**31

    def seed_everything(self, tag: str) -> int:
        s = self.derived_seed(tag)
        torch.manual_seed(s)
        np.random.seed(s)
        random.seed(s)
        return s

    def rng(self, tag: str) -> np.random.Generator:
        return np.random.default_rng(self.derived_seed(tag))

    # ------------------------------------------------------------------------------- models and steps

    def make_model(self, tag: str = "model") -> nn.Module:
        """A fresh model on the context's device, seeded by ``tag`` (a deep copy when the config gave an instance)."""
        self.seed_everything(tag)
        source = self._model_source
        if isinstance(source, nn.Module):
            model = copy.deepcopy(source)
        else:
            try:
                model = source()
            except Exception as exc:
                raise UsageError(f"model: {self.config.model!r} raised {type(exc).__name__}: {exc}") from exc
            if not isinstance(model, nn.Module):
                raise UsageError(f"model: {self.config.model!r} returned a {type(model).__name__}, not an nn.Module")
        return model.to(self.device)

    def make_optimizer(self, model: nn.Module, **overrides: Any) -> torch.optim.Optimizer:
        """The configured optimizer over ``model``'s trainable parameters (``overrides`` replace config keys)."""
        params = [p for p in model.parameters() if p.requires_grad]
        kwargs = {**self.config.optimizer.kwargs, **overrides}
        if not params:  # an optimizer refuses an empty list; keep a dummy so a frozen model is a finding, not a crash
            params = [nn.Parameter(torch.zeros(1, device=self.device))]
        try:
            return self._optimizer_cls(params, **kwargs)
        except Exception as exc:
            raise UsageError(f"optimizer: {self.config.optimizer.target!r}({kwargs}) raised {type(exc).__name__}: {exc}") from exc

    @property
    def learning_rate(self) -> float:
        return self.config.optimizer.lr

    @property
    def has_user_step(self) -> bool:
        return self._train_step is not None

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: Any) -> float:
        """One training step with the user's ``train_step`` (or the default one); returns the loss as a float."""
        fn = self._train_step or self.default_train_step
        return loss_value(fn(model, batch, self.loss_fn, optimizer))

    def default_train_step(self, model: nn.Module, batch: Any, loss_fn: Any, optimizer: torch.optim.Optimizer) -> Any:
        """What a plain PyTorch loop does: zero_grad, forward, loss, backward, step."""
        inputs, targets = self.train.unpack(batch)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss.detach()

    # -------------------------------------------------------------------------------------- batches

    def batch(self, split: Split, indices: Sequence[int]) -> Any:
        """The samples at ``indices`` of ``split`` as one batch, in the user's format, on the device."""
        return to_device(split.collate(list(indices)), self.device)

    @property
    def class_limit(self) -> int | None:
        """Labels must lie in ``[0, class_limit)``: the model's output width for cross-entropy/NLL, else num_classes."""
        from sanitycheck.pipeline.losses import loss_kind

        if self.task != "classification":
            return None
        if loss_kind(self.loss_fn) in ("cross_entropy", "nll") and self.output_shape:
            return self.output_shape[0]
        return self.num_classes

    def class_labels(self, split: Split) -> np.ndarray | None:
        """One integer class id per sample of ``split`` (``-1`` where a label is missing, fractional or negative).

        Reads scalar labels, ``(n, 1)`` columns and one-hot rows from the cached data pass. ``None`` when the task
        is regression or the targets are not class labels (dense or multi-label targets). Computed once per run.
        """
        if self.task != "classification":
            return None

        def compute() -> np.ndarray | None:
            targets = split.data_pass().targets
            if targets is None or len(targets) == 0 or not np.issubdtype(targets.dtype, np.number):
                return None
            t = targets.astype(np.float64)
            if t.ndim == 2 and t.shape[1] > 1 and ((t == 0) | (t == 1)).all() and (t.sum(1) == 1).all():
                return t.argmax(1).astype(np.int64)  # one-hot rows
            if t.ndim == 2 and t.shape[1] == 1:
                t = t[:, 0]
            if t.ndim != 1:
                return None
            valid = np.isfinite(t) & (t == np.round(t)) & (t >= 0)
            return np.where(valid, np.nan_to_num(t), -1).astype(np.int64)

        return self.shared(f"class_labels:{split.name}", compute)

    def usable_indices(self, split: Split) -> np.ndarray:
        """Indices of samples a training probe can use: no NaN/Inf, the usual input shape, labels in range.

        data-integrity reports the others; leaving them out keeps one bad sample from crashing every probe.
        """
        data = split.data_pass()
        bad = np.zeros(len(split), dtype=bool)
        bad[data.nonfinite] = True
        usual_shape = Counter(data.input_shapes).most_common(1)[0][0]
        bad |= np.array([shape != usual_shape for shape in data.input_shapes])  # would not collate with the rest
        limit = self.class_limit
        if limit is not None and data.targets is not None and data.targets.ndim == 1 \
                and np.issubdtype(data.targets.dtype, np.number):
            bad |= (data.targets < 0) | (data.targets >= limit)
        return np.flatnonzero(~bad)

    def sample_indices(self, split: Split, n: int, tag: str, usable_only: bool = True) -> np.ndarray:
        """A seeded random subset of ``n`` indices (all of them when the split is smaller)."""
        pool = self.usable_indices(split) if usable_only else np.arange(len(split))
        if len(pool) == 0:
            pool = np.arange(len(split))
        if len(pool) <= n:
            return pool
        return np.sort(self.rng(tag).choice(pool, size=n, replace=False))

    @torch.no_grad()
    def evaluate_loss(self, model: nn.Module, split: Split, indices: Sequence[int], batch_size: int | None = None) -> float:
        """Mean loss of ``model`` (in its current mode) over ``indices``, batched."""
        size = batch_size or self.config.batch_size
        total, count = 0.0, 0
        for start in range(0, len(indices), size):
            chunk = list(indices[start:start + size])
            inputs, targets = split.unpack(self.batch(split, chunk))
            total += loss_value(self.loss_fn(model(inputs), targets)) * len(chunk)
            count += len(chunk)
        return total / count if count else math.nan


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} requested but CUDA is not available here (torch.cuda.is_available() is False)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device: {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("device: 'mps' requested but MPS is not available here")
    return torch.device(name)
