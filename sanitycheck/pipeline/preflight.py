"""The preflight: a pipeline that cannot run at all is one clear usage error (exit 2), not a crash inside a check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from sanitycheck.engine.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from sanitycheck.pipeline.context import PipelineContext


def describe(value: Any) -> str:
    """Shape and dtype of a tensor (or of each tensor in a tuple/dict), for error messages."""
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    return type(value).__name__


def preflight(ctx: PipelineContext) -> None:
    """Fail early, as a usage error naming the key at fault: one forward pass, the loss, one backward, the optimizer."""
    if ctx.task == "classification":
        ctx.num_classes = ctx._infer_num_classes()
    model = ctx.make_model("preflight")
    usable = ctx.usable_indices(ctx.train)  # a NaN or odd-shaped sample is data-integrity's finding, not exit 2
    indices = list(usable[:8]) if len(usable) else list(range(min(8, len(ctx.train))))
    batch = ctx.batch(ctx.train, indices)
    inputs, targets = ctx.train.unpack(batch)
    capture = None
    if ctx.config.embedding.source == "model":  # the feature layer must exist and see a batch of tensors
        from sanitycheck.pipeline.capture import FeatureCapture

        capture = FeatureCapture(model, ctx.config.embedding.layer)
    model_loss = ctx.model_computes_loss
    call = ("model(**batch)" if isinstance(batch, dict) else "model(inputs, targets)") if model_loss else "model(inputs)"
    try:
        if model_loss:
            outputs, model_loss_value = ctx.forward(model, batch, with_loss=False)
        else:
            outputs = model(inputs)
    except Exception as exc:
        raise UsageError(
            f"model: forward pass {call} failed on a train batch of inputs {describe(inputs)}"
            f"{' and targets ' + describe(targets) if model_loss else ''}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if capture is not None:
            capture.remove()
    if capture is not None:
        try:
            capture.take(len(indices))
        except ValueError as exc:
            raise ConfigError(f"embedding.layer: {exc}") from exc
    if model_loss:
        loss = model_loss_value
        if loss is None:
            raise UsageError(f"loss: model: {call} returned {describe(outputs)}; expected a loss tensor, "
                             "(outputs, loss), or an object with .loss and .logits")
        ctx.loss_fn.infer(outputs, targets, loss, ctx.task)
    else:
        try:
            loss = ctx.loss_fn(outputs, targets)
        except Exception as exc:
            raise UsageError(
                f"loss: failed on outputs {describe(outputs)} and targets {describe(targets)}: {type(exc).__name__}: {exc}"
            ) from exc
        outputs = ctx._per_position(outputs, targets)  # sequences: (B*T, C) seen as (B, T, C), as probes see them
    if isinstance(outputs, torch.Tensor):
        ctx.output_shape = tuple(outputs.shape[1:])
        if ctx.task == "sequence" and outputs.ndim >= 3:  # the vocabulary: one score per class at every position
            from sanitycheck.pipeline.losses import class_scores

            pair = class_scores(outputs, targets) if not model_loss or not ctx.loss_fn.shift else None
            ctx.num_classes = int(pair[0].shape[1]) if pair is not None else int(outputs.shape[-1])
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
    ctx.make_optimizer(model)
