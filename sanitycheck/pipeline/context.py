"""The pipeline context: the user's pipeline, materialized once, handed to every check.

Checks ask the context for data, models, optimizers and training steps; none re-reads the dataset or
re-imports the user's code. :meth:`PipelineContext.open` resolves the config, reads both splits once and
runs a preflight (one forward pass, the loss, one backward pass, the optimizer) so that a pipeline that
cannot run at all is a clear usage error (exit 2), not a crash inside some check.

The one ``ctx`` a check receives is assembled from rooms of one responsibility each: :class:`DataAccess`
(batches, labels, usable samples; :mod:`~sanitycheck.pipeline.access`), :class:`ModelAdapter` (fresh models, the
optimizer, the user's step; :mod:`~sanitycheck.pipeline.adapter`) and :class:`SeedsAndBudgets`
(:mod:`~sanitycheck.pipeline.seeds`). The preflight lives in :mod:`~sanitycheck.pipeline.preflight`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sanitycheck.engine.config import Config, resolve
from sanitycheck.engine.errors import ConfigError
from sanitycheck.pipeline.access import DataAccess
from sanitycheck.pipeline.adapter import ModelAdapter, loss_value
from sanitycheck.pipeline.data import Split, materialize
from sanitycheck.pipeline.losses import ModelLoss
from sanitycheck.pipeline.preflight import preflight
from sanitycheck.pipeline.tensors import describe
from sanitycheck.pipeline.seeds import SeedsAndBudgets


@dataclass
class PipelineContext(DataAccess, ModelAdapter, SeedsAndBudgets):
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
    def open(cls, config: Config, trains: bool = True) -> PipelineContext:
        """Resolve every reference in ``config``, materialize the splits and run the preflight (``trains``: with
        its optimizer and ``train_step`` calls; a run whose checks train nothing leaves them out)."""
        base = config.base_dir
        device = _resolve_device(config.device)
        if config.engine.name == "ray":  # before the user's code is imported: a ray.data.Dataset joins this cluster
            from sanitycheck.pipeline.ray_engine import connect

            connect(config.engine)
        model_source = resolve(config.model, "model", base)
        if not (isinstance(model_source, nn.Module) or callable(model_source)):
            raise ConfigError(f"model: {config.model!r} is a {type(model_source).__name__}, not an nn.Module or a callable")
        loss_fn = ModelLoss() if config.model_loss else resolve(config.loss, "loss", base)
        if inspect.isclass(loss_fn):
            try:
                loss_fn = loss_fn()
            except Exception as exc:
                raise ConfigError(f"loss: {loss_fn.__name__}() raised {type(exc).__name__}: {exc}") from exc
        if not callable(loss_fn):
            raise ConfigError(f"loss: {config.loss!r} is a {type(loss_fn).__name__}, not callable")
        if isinstance(loss_fn, nn.Module):  # its tensors (CrossEntropyLoss(weight=...)) go where the model goes
            loss_fn.to(device)
        config = _with_task(config, loss_fn)
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
        if config.engine.name == "ray":
            from sanitycheck.pipeline.ray_engine import attach

            attach(splits, config)
        ctx = cls(
            config=config, device=device, train=splits["train"], val=splits["val"], loss_fn=loss_fn,
            _model_source=model_source, _optimizer_cls=optimizer_cls, _train_step=train_step, augment=augment,
        )
        preflight(ctx, trains)
        return ctx

    def shared(self, key: str, compute: Any) -> Any:
        """``compute()`` once per run under ``key``; later calls (from any check) get the cached result."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


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


__all__ = ["PipelineContext", "describe", "loss_value"]


def _with_task(config: Config, loss_fn: Any) -> Config:
    """``config`` with ``task: regression`` when it names no task and its loss is a regression loss (MSE, L1,
    Huber): a PyTorch user who trains with ``nn.MSELoss`` on float targets means regression, and the
    classification default read their targets as class ids (diabetes with MSELoss: SC808 and SC201 errors)."""
    from sanitycheck.pipeline.losses import REGRESSION, loss_kind

    if "task" in config.model_fields_set or loss_kind(loss_fn) not in REGRESSION:
        return config
    return config.model_copy(update={"task": "regression"})

