"""The model adapter: fresh models, the configured optimizer, and one training step with the user's code.

One place that knows how to call the user's model, loss and ``train_step``; every probe trains and evaluates
through it. :meth:`ModelAdapter.forward` is the one call of the model: ``loss_fn(model(inputs), targets)`` for a
plain loss; for ``loss: model`` the model computes its loss, ``model(inputs, targets)`` (dict batches:
``model(**batch)``), returning a loss, ``(outputs, loss)`` or an object with ``.loss`` and ``.logits``. Inputs that
are a tuple or list go in as separate arguments when the model's ``forward`` takes them so (:func:`call_model`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from sanitycheck.engine.errors import UsageError
from sanitycheck.pipeline.losses import per_sample, split_output
from sanitycheck.pipeline.tensors import describe, slice_batch

if TYPE_CHECKING:
    from sanitycheck.pipeline.data import Split


def loss_value(loss: Any) -> float:
    """A loss returned by a step (tensor or number) as a float."""
    if isinstance(loss, torch.Tensor):
        return float(loss.detach().float().mean().cpu())
    return float(loss)


def call_model(model: nn.Module, inputs: Any, *extra: Any) -> Any:
    """``model(inputs, *extra)``; ``model(*inputs, *extra)`` when ``inputs`` is a tuple or list of two or more and
    the model's ``forward`` takes that many positional arguments: ``forward(x, lengths)`` on a batch
    ``((padded, lengths), labels)`` (an RNN over packed sequences, an EmbeddingBag's offsets, an image and its
    metadata), as fastai's Learner calls ``model(*xb)``. A ``forward(pair)`` that unpacks its one argument
    itself gets the tuple whole. A dict of named inputs goes in as keyword arguments when ``forward`` takes every
    name (``forward(input_ids, attention_mask)``, as Hugging Face models are called), else whole."""
    if isinstance(inputs, dict) and not extra and inputs and _takes_names(model, inputs):
        return model(**inputs)
    return model(*inputs, *extra) if unpacks_inputs(model, inputs, len(extra)) else model(inputs, *extra)


def _takes_names(model: nn.Module, inputs: dict) -> bool:
    """Whether the model's ``forward`` accepts every key of ``inputs`` as a keyword argument."""
    params = _parameters(model)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return True
    return all(k in params and params[k].kind in (params[k].POSITIONAL_OR_KEYWORD, params[k].KEYWORD_ONLY)
               for k in inputs)


def unpacks_inputs(model: nn.Module, inputs: Any, extra: int = 0) -> bool:
    """Whether :func:`call_model` passes ``inputs`` (and ``extra`` more arguments) as separate arguments."""
    return isinstance(inputs, (tuple, list)) and len(inputs) > 1 and _positional(model) >= len(inputs) + extra


_PARAMETERS: dict[type, Any] = {}


def _parameters(model: nn.Module) -> Any:
    """The parameters of the model's ``forward`` (name -> ``inspect.Parameter``), read once per model class (every
    forward of the probes goes through :func:`call_model`); empty when there is no signature to read (a C
    extension: the inputs then go in whole)."""
    kind = type(model)
    if kind not in _PARAMETERS:
        import inspect

        try:
            _PARAMETERS[kind] = inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            _PARAMETERS[kind] = {}
    return _PARAMETERS[kind]


def _positional(model: nn.Module) -> float:
    """How many positional arguments the model's ``forward`` takes (inf with ``*args``)."""
    count = 0.0
    for p in _parameters(model).values():
        if p.kind is p.VAR_POSITIONAL:
            return math.inf
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


@dataclass(frozen=True)
class TokenEmbedding:
    """The ``nn.Embedding`` a model applies to its inputs (token ids), found by :meth:`ModelAdapter.token_embedding`."""

    name: str
    num_embeddings: int
    padding_idx: int | None


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
        model = _eager(model).to(self.device)
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
            self._materialize(model)
        return model

    def _materialize(self, model: nn.Module) -> None:
        """Give lazy modules (``nn.LazyLinear``, ``nn.LazyConv2d``) their parameters, as PyTorch asks: one forward
        pass on a batch of two training samples, in eval mode and without gradients (BatchNorm's running
        statistics untouched). Every probe then sees, counts and optimizes real parameters."""
        batch = self.batch(self.train, range(min(2, len(self.train))))
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                self.forward(model, batch, with_loss=False)
        except UsageError:
            raise
        except Exception as exc:
            raise UsageError(f"model: the forward pass that initializes its lazy modules failed on a train batch "
                             f"of inputs {describe(self.train.unpack(batch)[0])}: {type(exc).__name__}: {exc}") from exc
        finally:
            model.train(was)

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
        model.train()
        optimizer.zero_grad(set_to_none=True)
        _, loss = self.forward(model, batch)
        loss.backward()
        optimizer.step()
        return loss.detach()

    # ------------------------------------------------------------------------------- calling the model

    @property
    def model_computes_loss(self) -> bool:
        """``loss: model``: the model is called with the targets and returns its loss."""
        return self.config.model_loss

    def forward(self, model: nn.Module, batch: Any, with_loss: bool = True) -> tuple[Any, Any]:
        """``(outputs, loss)`` of ``model`` on ``batch`` (the user's format), the way the pipeline computes them.

        Plain loss: ``outputs = model(inputs)``, ``loss = loss_fn(outputs, targets)`` (``None`` without
        ``with_loss``). ``loss: model``: ``model(inputs, targets)`` or ``model(**batch)``; ``outputs`` is ``None``
        when the model returns its loss alone. For ``task: sequence`` outputs flattened to ``(B*T, C)`` come back
        as ``(B, T, C)``. Raises :class:`UsageError` when a model loss is missing.
        """
        inputs, targets = self.train.unpack(batch)
        if not self.model_computes_loss:
            outputs = call_model(model, inputs)
            loss = self.loss_fn(outputs, targets) if with_loss else None
            return self._per_position(outputs, targets), loss
        raw = model(**batch) if isinstance(batch, dict) else call_model(model, inputs, targets)
        outputs, loss = split_output(raw)
        outputs = self._per_position(outputs, targets)
        if loss is None and with_loss:
            call = "model(**batch)" if isinstance(batch, dict) else "model(inputs, targets)"
            raise UsageError(f"loss: model: {call} returned {describe(raw)}; expected a loss tensor, (outputs, loss), "
                             "or an object with .loss and .logits")
        return outputs, loss

    def _per_position(self, outputs: Any, targets: Any) -> Any:
        """``task: sequence``: outputs flattened to ``(B*T, C)`` for the loss (Karpathy's gpt.py returns them so)
        seen as ``(B, T, C)``, so that every probe finds the positions."""
        if self.task == "sequence" and isinstance(outputs, torch.Tensor) and isinstance(targets, torch.Tensor) \
                and outputs.ndim == 2 and targets.ndim == 2 and outputs.shape[0] == targets.numel() > 0:
            return outputs.view(*targets.shape, outputs.shape[1])
        return outputs

    def outputs(self, model: nn.Module, batch: Any) -> Any:
        """The model's outputs on ``batch`` (for ``loss: model``: the outputs it returns beside its loss)."""
        return self.forward(model, batch, with_loss=False)[0]

    def compute_loss(self, model: nn.Module, batch: Any) -> Any:
        """The pipeline's loss of ``model`` on ``batch`` (a tensor with its graph)."""
        return self.forward(model, batch)[1]

    def sample_losses(self, model: nn.Module, batch: Any, outputs: Any = None) -> np.ndarray:
        """The loss of each sample of ``batch`` (float64), given the batch's ``outputs`` when already computed.

        A model loss whose kind the preflight could not match is computed by running the model on one sample at
        a time (exact, slower).
        """
        _, targets = self.train.unpack(batch)
        if outputs is None:
            outputs = self.outputs(model, batch)
        values = per_sample(self.loss_fn, outputs, targets)
        if self.model_computes_loss and np.isnan(values).all():
            values = np.array([loss_value(self.compute_loss(model, slice_batch(batch, i, i + 1)))
                               for i in range(batch_size_of(batch))], dtype=np.float64)
        return values

    def token_embedding(self) -> TokenEmbedding | None:
        """The ``nn.Embedding`` (or ``nn.EmbeddingBag``) the model applies to its inputs when they are token ids
        (integer tensors; of inputs made of several tensors, the first: an EmbeddingBag's ``(text, offsets)``), found
        with forward hooks during one forward pass of a fresh model; ``None`` otherwise. Computed once per run."""

        def compute() -> TokenEmbedding | None:
            from sanitycheck.pipeline.data import replace_in_batch

            batch = self.batch(self.train, range(min(4, len(self.train))))
            inputs, targets = self.train.unpack(batch)
            several = isinstance(inputs, (tuple, list, dict)) and len(inputs) > 0
            first = next(iter(inputs)) if isinstance(inputs, dict) else 0  # named inputs: the first name's
            ids = inputs[first] if several else inputs
            if not isinstance(ids, torch.Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
                return None
            # id 0 is in every vocabulary: an id out of range is data-integrity's finding, not a failed search
            zeros = torch.zeros_like(ids)
            zeroed = ({**inputs, first: zeros} if isinstance(inputs, dict) else type(inputs)([zeros, *inputs[1:]])) \
                if several else zeros
            batch = replace_in_batch(self.train, batch, inputs=zeroed,
                                     targets=torch.zeros_like(targets) if isinstance(targets, torch.Tensor) else None)
            model = self.make_model("token-embedding")
            found: list[str] = []
            hooks = [module.register_forward_hook(lambda m, args, out, name=name: found.append(name)
                                                  if args and is_same_tensor(args[0], zeros) else None)
                     for name, module in model.named_modules()
                     if isinstance(module, (nn.Embedding, nn.EmbeddingBag))]
            try:
                with torch.no_grad():
                    self.forward(model.eval(), batch, with_loss=False)
            except Exception:
                return None
            finally:
                for hook in hooks:
                    hook.remove()
            if not found:
                return None
            module = model.get_submodule(found[0])
            return TokenEmbedding(found[0], int(module.num_embeddings), module.padding_idx)

        return self.shared("token-embedding", compute)

    def inputs_are_token_ids(self) -> bool:
        """Whether the inputs are token ids: integer inputs the model feeds to an ``nn.Embedding``, or any integer
        inputs with ``task: sequence``. Token ids are indices, not magnitudes: no pixel scale, no Euclidean
        distance between them."""
        dtypes = {d for split in self.splits() for d in split.data_pass().input_dtypes}
        # inputs of several tensors (tuple, list, dict): token_embedding checks that the first holds the ids
        if not dtypes or not all(d.startswith(("int", "uint")) or d in ("tuple", "list", "dict") for d in dtypes):
            return False
        return self.task == "sequence" or self.token_embedding() is not None

    @torch.no_grad()
    def evaluate_loss(self, model: nn.Module, split: Split, indices: Sequence[int], batch_size: int | None = None) -> float:
        """Mean loss of ``model`` (in its current mode) over ``indices``, batched."""
        size = batch_size or self.config.batch_size
        total, count = 0.0, 0
        for start in range(0, len(indices), size):
            chunk = list(indices[start:start + size])
            total += loss_value(self.compute_loss(model, self.batch(split, chunk))) * len(chunk)
            count += len(chunk)
        return total / count if count else math.nan


def is_same_tensor(a: Any, b: Any) -> bool:
    """``a`` is ``b``, or holds the same values (a model may move or cast its inputs before embedding them)."""
    if a is b:
        return True
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape \
        and bool(torch.equal(a.detach().to(b.device, b.dtype), b))


def batch_size_of(batch: Any) -> int:
    """The number of samples in a batch in the user's format (the first dimension of its first tensor)."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    values = batch.values() if isinstance(batch, dict) else batch
    for value in values:
        size = batch_size_of(value) if isinstance(value, (torch.Tensor, dict, list, tuple)) else None
        if size is not None:
            return size
    return 0


def _eager(model: nn.Module) -> nn.Module:
    """The module inside ``torch.compile(module)``'s wrapper (the same module, parameters and forward), else
    ``model``. The probes build many fresh models and time their first steps: compiling each would spend their
    budgets on compilation (the digits MLP compiled: the reference run stopped after 1 step, label-shuffle
    inconclusive, the suite 25 s instead of 4 s). What is probed is the model's semantics, which compiling keeps."""
    inner = getattr(model, "_orig_mod", None)
    return inner if type(model).__name__ == "OptimizedModule" and isinstance(inner, nn.Module) else model
