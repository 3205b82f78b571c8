"""What the engine knows about PyTorch's standard losses: which family a loss belongs to.

Checks use the family to know what the model's outputs should look like (logits, log-probabilities,
probabilities) and what the loss of an untrained model should be.
"""

from __future__ import annotations

from typing import Any, Literal

LossKind = Literal["cross_entropy", "nll", "bce_logits", "bce", "mse", "l1", "huber", "unknown"]

_BY_NAME: dict[str, LossKind] = {
    "CrossEntropyLoss": "cross_entropy", "cross_entropy": "cross_entropy",
    "NLLLoss": "nll", "nll_loss": "nll",
    "BCEWithLogitsLoss": "bce_logits", "binary_cross_entropy_with_logits": "bce_logits",
    "BCELoss": "bce", "binary_cross_entropy": "bce",
    "MSELoss": "mse", "mse_loss": "mse",
    "L1Loss": "l1", "l1_loss": "l1",
    "SmoothL1Loss": "huber", "smooth_l1_loss": "huber", "HuberLoss": "huber", "huber_loss": "huber",
}

#: Losses whose outputs and targets must have the same shape (else PyTorch broadcasts, silently for some).
ELEMENTWISE: frozenset[str] = frozenset({"bce_logits", "bce", "mse", "l1", "huber"})


def loss_kind(loss_fn: Any) -> LossKind:
    """The family of ``loss_fn``: a ``torch.nn`` loss module, a ``torch.nn.functional`` loss, or ``unknown``."""
    for cls in type(loss_fn).__mro__:
        if cls.__name__ in _BY_NAME and cls.__module__.startswith("torch.nn"):
            return _BY_NAME[cls.__name__]
    name = getattr(loss_fn, "__name__", "")
    module = getattr(loss_fn, "__module__", "") or ""
    if name in _BY_NAME and module.startswith("torch"):
        return _BY_NAME[name]
    return "unknown"


def reduction(loss_fn: Any) -> str:
    """``'mean'`` unless a loss module says otherwise."""
    return getattr(loss_fn, "reduction", "mean")
