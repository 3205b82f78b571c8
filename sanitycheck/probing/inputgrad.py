"""Gradients of a model's outputs with respect to its inputs, for probes that ask what an output depends on.

``batch-independence`` (does sample i's output depend on sample j's input?) and ``causality`` (does position t's
output depend on later positions?) both backpropagate one slice of the outputs to the inputs. Floating-point
inputs are made leaves that require a gradient. Token ids (integer inputs) carry no gradient, so the output of
the ``nn.Embedding`` the model applies to them (found by :meth:`ModelAdapter.token_embedding`) is replaced, by a
forward hook, with a detached copy that requires one: the gradient then reaches "the input at each position"
exactly as it would for float inputs. The model is called through the pipeline's adapter, so models that compute
their own loss (``loss: model``) are probed on the outputs they return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class InputGradUnavailable(Exception):
    """The inputs cannot carry a gradient (not a tensor, or token ids without an ``nn.Embedding``)."""


@dataclass
class InputGradPass:
    """One forward pass whose outputs can be differentiated with respect to the inputs."""

    #: The model's outputs (for ``loss: model``: the outputs it returns beside its loss).
    outputs: Any
    #: What gradients are taken with respect to: the float inputs, or the token embedding's output
    #: (batch first, then positions, then features).
    inputs: Any
    #: ``'inputs'`` or the embedding's module name, for messages.
    source: str
    #: With ``record=True``: ``(name, input, output)`` of every submodule call, in the order calls finish
    #: (children before their parent); ``input`` is the call's first positional argument.
    calls: list[tuple[str, Any, Any]] = field(default_factory=list)


def input_grad_pass(ctx: Any, model: Any, batch: Any, record: bool = False, several: bool = False) -> InputGradPass:
    """Run ``model`` on ``batch`` (the user's format) so that its outputs can be differentiated with respect to
    its inputs; raises :class:`InputGradUnavailable` when they cannot be. ``several``: inputs that are a tuple, list
    or dict of tensors (an image and its metadata, ``(padded, lengths)``) are differentiated with respect to the
    first floating-point one with the batch as its first dimension, the others kept as they are."""
    import torch

    from sanitycheck.pipeline.adapter import is_same_tensor
    from sanitycheck.probing.trainer import replace_in_batch

    split = ctx.train
    inputs, _ = split.unpack(batch)
    hooks = []
    calls: list[tuple[str, Any, Any]] = []
    holder: dict[str, Any] = {}
    ids = inputs
    several = several and isinstance(inputs, (tuple, list, dict))
    if several:
        named = isinstance(inputs, dict)  # {"image": ..., "meta": ...}: by key, in order
        keys = list(inputs) if named else list(range(len(inputs)))
        values = [inputs[k] for k in keys]
        size = len(first_tensor(values)) if first_tensor(values) is not None else None
        at = next((k for k, t in zip(keys, values) if isinstance(t, torch.Tensor) and t.dtype.is_floating_point
                   and t.ndim and len(t) == size), None)
        if at is None and isinstance(values[0], torch.Tensor) and ctx.token_embedding() is not None:
            several, ids = False, values[0]  # (input_ids, attention_mask): through the embedding of the ids
        elif at is None:
            raise InputGradUnavailable(f"the inputs are a {type(inputs).__name__} with no floating-point tensor")
    if several:
        x = inputs[at].detach().clone().requires_grad_(True)
        if named:
            parts: Any = {**inputs, at: x}
        else:
            parts = list(inputs)
            parts[at] = x
            parts = parts if isinstance(inputs, list) else tuple(parts)
        batch = replace_in_batch(split, batch, inputs=parts)
        holder["rep"], source = x, f"inputs[{at!r}]"
    elif not isinstance(ids, torch.Tensor):
        raise InputGradUnavailable(f"the inputs are a {type(inputs).__name__}, not a tensor")
    elif ids.dtype.is_floating_point:
        x = inputs.detach().clone().requires_grad_(True)
        batch = replace_in_batch(split, batch, inputs=x)
        holder["rep"], source = x, "inputs"
    else:
        found = ctx.token_embedding()
        if found is None:
            raise InputGradUnavailable(f"the inputs are {str(ids.dtype).replace('torch.', '')} token ids and no "
                                       "nn.Embedding of the model is applied to them, so no input gradient exists")
        source = found.name

        def swap(module: Any, args: Any, out: Any) -> Any:
            if "rep" not in holder and args and is_same_tensor(args[0], ids):
                holder["rep"] = out.detach().requires_grad_(True)
                return holder["rep"]
            return None

        hooks.append(model.get_submodule(found.name).register_forward_hook(swap))
    if record:
        for name, module in model.named_modules():
            if name:
                hooks.append(module.register_forward_hook(
                    lambda m, args, out, name=name: calls.append((name, args[0] if args else None, out))))
    try:
        outputs = ctx.outputs(model, batch)
    finally:
        for hook in hooks:
            hook.remove()
    if "rep" not in holder:
        raise InputGradUnavailable(f"the model never applied {source} to its inputs")
    return InputGradPass(outputs=outputs, inputs=holder["rep"], source=source, calls=calls)


def first_tensor(out: Any) -> Any:
    """The first tensor of a module's or model's output (a tensor, or a tuple/list/dict of them)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    values = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else ()
    return next((v for v in values if isinstance(v, torch.Tensor)), None)
