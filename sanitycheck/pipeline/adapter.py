"""The model adapter: fresh models, the configured optimizer, and one training step with the user's code.

One place that knows how to call the user's model, loss and ``train_step``; every probe trains through it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sanitycheck.engine.errors import UsageError

if TYPE_CHECKING:
    from sanitycheck.pipeline.data import Split


def loss_value(loss: Any) -> float:
    """A loss returned by a step (tensor or number) as a float."""
    if isinstance(loss, torch.Tensor):
        return float(loss.detach().float().mean().cpu())
    return float(loss)


class ModelAdapter:
    """The part of :class:`~sanitycheck.pipeline.context.PipelineContext` that builds and trains models.

    Needs ``self.config``, ``self.device``, ``self.train``, ``self.loss_fn``, ``self._model_source``,
    ``self._optimizer_cls``, ``self._train_step``, ``self.seed_everything`` and ``self.batch``.
    """

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
