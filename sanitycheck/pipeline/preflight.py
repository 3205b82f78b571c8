"""The preflight: a pipeline that cannot run at all is one clear usage error (exit 2), not a crash inside a check.

On a batch of 8 training samples: one forward pass, the loss, one backward pass, the optimizer; then, each once,
the user's ``train_step`` on a fresh model (it must run and return the loss), a validation batch through the model
and the loss, and ``data.augment`` on one input. Each failure names its key (``model``, ``loss``, ``train_step``,
``data.val``, ``data.augment``). A run whose checks train nothing (``Check.trains``) leaves out the optimizer and
``train_step`` calls: their errors are reported by a run that uses them. The random streams are restored afterwards,
so the checks see the same seeds as without these extra calls. A model with no trainable parameters passes:
overfit-batch reports it (SC304).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from sanitycheck.engine.errors import ConfigError, UsageError
from sanitycheck.engine.faults import crash_reason
from sanitycheck.pipeline.adapter import call_model, unpacks_inputs
from sanitycheck.pipeline.seeds import same_random_streams
from sanitycheck.pipeline.tensors import describe

if TYPE_CHECKING:
    from sanitycheck.pipeline.context import PipelineContext


def _positions_hint(batch: Any, sample: Any, input_key: Any, target_key: Any, exc: Exception, whole: bool) -> str:
    """For a forward called with the wrong arguments on samples holding more than one input and a target (a tuple
    read as ``(input, target, ...)``: ``TensorDataset(input_ids, attention_mask, labels)``, a siamese pair and its
    target; a dict of which one key is read: ``{"input_ids", "attention_mask", "labels"}``): how to name them.
    Batches shaped otherwise than their samples (``sample``: the first, as the dataset returns it) come from a
    collate_fn that builds the inputs (PyTorch's text classification tutorial: ``(label, text)`` samples, batches
    ``(labels, token ids, offsets)``): the samples must hold them."""
    if isinstance(batch, (tuple, list)) and isinstance(sample, (tuple, list)) and len(batch) != len(sample):
        kinds = ", ".join(type(x).__name__ for x in sample)
        return (f" (the DataLoader's collate_fn turns samples of {len(sample)} elements ({kinds}) into batches of "
                f"{len(batch)}: sanitycheck reads each sample's input and target from the dataset and batches them "
                "with the collate_fn, so a sample must hold the model's inputs, e.g. its token ids as a tensor, "
                "which the collate_fn may pad; an nn.EmbeddingBag takes padded ids (B, L) without offsets, with "
                "padding_idx)")
    if not isinstance(exc, TypeError) or isinstance(input_key, list):
        return ""
    if isinstance(batch, (tuple, list)) and len(batch) >= 3 and input_key is None:
        return (f" (the samples have {len(batch)} elements, read as (input, target, ...): if the model takes several "
                f"of them, name their positions with data.input_key, e.g. [0, 1], and the target's with "
                f"data.target_key, e.g. {len(batch) - 1})")
    # a model computing its own loss gets the whole dict (model(**batch)): nothing is left out there
    others = [k for k in batch if k not in (input_key, target_key)] if isinstance(batch, dict) and not whole else []
    if others:
        return (f" (of the samples' keys only {input_key!r} is read as the input: if the model takes more of them, "
                f"list them in data.input_key, e.g. {[input_key, *others]}, given to it as keyword arguments)")
    return ""


def preflight(ctx: PipelineContext, trains: bool = True) -> None:
    """Fail early, as a usage error naming the key at fault: one forward pass, the loss, one backward, the optimizer
    (``trains``: the optimizer and the user's ``train_step``; left out when no check of the run trains)."""
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
    star = "*" if unpacks_inputs(model, inputs) else ""
    call = ("model(**batch)" if isinstance(batch, dict) else f"model({star}inputs, targets)") if model_loss \
        else f"model({star}inputs)"
    try:
        if model_loss:
            outputs, model_loss_value = ctx.forward(model, batch, with_loss=False)
        else:
            outputs = call_model(model, inputs)
    except Exception as exc:
        raise UsageError(
            f"model: forward pass {call} failed on a train batch of inputs {describe(inputs)}"
            f"{' and targets ' + describe(targets) if model_loss else ''}: {type(exc).__name__}: {exc}"
            + _positions_hint(batch, ctx.train.raw(indices[0]) if indices else None, ctx.train.input_key,
                              ctx.train.target_key, exc, model_loss)
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
        _targets_in_range(ctx.loss_fn, outputs, targets)
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
    if trains:
        ctx.make_optimizer(model)
    with same_random_streams():
        _val_batch(ctx, model, inputs, targets)
        if trains:
            _user_step(ctx, batch)
        _augment_one(ctx, indices[0] if indices else 0, inputs)


def _targets_in_range(loss_fn: Any, outputs: Any, targets: Any) -> None:
    """A class id outside the outputs' classes fails with the loss's own words before the loss runs: on the CPU
    ``cross_entropy`` raises them itself, but on a GPU it trips a device-side assert that surfaces later, under
    another call, and leaves the CUDA context unusable."""
    from sanitycheck.pipeline.losses import ignored_label, loss_kind

    if loss_kind(loss_fn) not in ("cross_entropy", "nll") or not isinstance(outputs, torch.Tensor) \
            or not isinstance(targets, torch.Tensor) or targets.is_floating_point() or targets.dtype == torch.bool \
            or outputs.ndim != targets.ndim + 1 or outputs.ndim < 2:
        return
    ids = targets.detach().cpu()
    ids = ids[ids != ignored_label(loss_fn)]
    bad = ids[(ids < 0) | (ids >= outputs.shape[1])]
    if len(bad):
        raise UsageError(f"loss: failed on outputs {describe(outputs)} and targets {describe(targets)}: IndexError: "
                         f"Target {int(bad[0])} is out of bounds.")


def _val_batch(ctx: PipelineContext, model: Any, train_inputs: Any, train_targets: Any) -> None:
    """A val batch through the model (eval mode, no grad) and the loss: a val split of another shape is exit 2."""
    if ctx.val is None or len(ctx.val) == 0:
        return
    usable = ctx.usable_indices(ctx.val)
    indices = list(usable[:8]) if len(usable) else list(range(min(8, len(ctx.val))))
    batch = ctx.batch(ctx.val, indices)
    inputs, targets = ctx.val.unpack(batch)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if ctx.model_computes_loss:  # loss: model: one call gives both, so a failure is the val batch's
                try:
                    outputs, loss = ctx.forward(model, batch)
                except UsageError:
                    raise
                except Exception as exc:
                    raise UsageError(
                        f"data.val: the model failed on a val batch of inputs {describe(inputs)} and targets "
                        f"{describe(targets)} (a train batch's inputs: {describe(train_inputs)}): "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                return _check_scalar(loss, outputs, targets)
            try:
                outputs = call_model(model, inputs)
            except Exception as exc:
                outputs = _retry_in_train_dtype(model, inputs, train_inputs)
                if outputs is not None:  # only the dtype differs (e.g. float64 val): not what this look is for
                    return
                raise UsageError(
                    f"data.val: the model failed on a val batch of inputs {describe(inputs)} (a train batch's inputs: "
                    f"{describe(train_inputs)}): {type(exc).__name__}: {exc}"
                ) from exc
            try:
                loss = ctx.loss_fn(outputs, targets)
            except Exception as exc:
                raise UsageError(
                    f"loss: failed on a data.val batch: outputs {describe(outputs)} and targets {describe(targets)} (a "
                    f"train batch's targets: {describe(train_targets)}): {type(exc).__name__}: {exc}"
                ) from exc
    finally:
        model.train(was_training)
    _check_scalar(loss, outputs, targets)


def _check_scalar(loss: Any, outputs: Any, targets: Any) -> None:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise UsageError(f"data.val: the loss of a val batch is {describe(loss)}, not a scalar (outputs "
                         f"{describe(outputs)}, targets {describe(targets)})")


def _retry_in_train_dtype(model: Any, inputs: Any, train_inputs: Any) -> Any:
    """The model's outputs for ``inputs`` cast to the training inputs' floating dtype, or None when that fails too
    (or does not apply). A split stored in another float dtype is a data-integrity matter, not a preflight error."""
    if not (isinstance(inputs, torch.Tensor) and isinstance(train_inputs, torch.Tensor)
            and inputs.dtype != train_inputs.dtype and inputs.dtype.is_floating_point
            and train_inputs.dtype.is_floating_point):
        return None
    try:
        return model(inputs.to(train_inputs.dtype))
    except Exception:
        return None


def _user_step(ctx: PipelineContext, batch: Any) -> None:
    """The user's ``train_step`` once, on a fresh model through ``ctx.step``: it must run and return the loss."""
    if not ctx.has_user_step:
        return
    model = ctx.make_model("preflight:train_step")
    if not any(p.requires_grad for p in model.parameters()):
        return  # nothing to train: the step's backward would fail; overfit-batch reports it (SC304)
    optimizer = ctx.make_optimizer(model)
    ref = ctx.config.train_step if isinstance(ctx.config.train_step, str) else getattr(ctx._train_step, "__name__", "")
    user = ctx._train_step
    returned: list[Any] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        returned.append(user(*args, **kwargs))
        return returned[-1]

    ctx._train_step = recording
    try:
        ctx.step(model, optimizer, batch)
    except Exception as exc:
        if returned and returned[-1] is None:
            raise UsageError(f"train_step returned None; it must return the loss (add `return loss` to {ref})") from exc
        if returned:
            raise UsageError(f"train_step: {ref} returned {describe(returned[-1])}; it must return the loss (a scalar "
                             f"tensor or a number): {type(exc).__name__}: {exc}") from exc
        raise UsageError(f"train_step: {ref} raised {crash_reason(exc)} on a train batch of "
                         f"{describe(batch)}") from exc
    finally:
        ctx._train_step = user


def _augment_one(ctx: PipelineContext, index: int, batch_inputs: Any) -> None:
    """``data.augment`` on one training input: it must run and return something."""
    if ctx.augment is None:
        return
    ref = ctx.config.data.augment if isinstance(ctx.config.data.augment, str) else getattr(ctx.augment, "__name__", "")
    raw = ctx.train.sample(index)[0]
    candidates = [raw]
    if isinstance(batch_inputs, torch.Tensor) and len(batch_inputs):
        candidates.append(batch_inputs[0].detach().cpu())  # what the augmentation check passes: one row of a batch
    errors: list[BaseException] = []
    for x in candidates:
        try:
            out = ctx.augment(x)
        except Exception as exc:
            errors.append(exc)
            continue
        if out is None:
            raise UsageError(f"data.augment: {ref} returned None for train sample {index}; it must return the "
                             "augmented input")
        return
    if all(isinstance(e, (TypeError, AttributeError)) for e in errors) and _has_pil():
        return  # perhaps a PIL-only transform: the augmentation check retries with a PIL image
    exc = errors[0]
    raise UsageError(f"data.augment: {ref} raised {crash_reason(exc)} on train sample {index} (input "
                     f"{describe(raw)})") from exc


def _has_pil() -> bool:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True
