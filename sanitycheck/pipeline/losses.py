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

#: Losses of regression: with one of them and no ``task`` in the config, the task is regression.
REGRESSION: frozenset[str] = frozenset({"mse", "l1", "huber"})

#: Losses whose outputs and targets must have the same shape (else PyTorch broadcasts, silently for some).
ELEMENTWISE: frozenset[str] = frozenset({"bce_logits", "bce", "mse", "l1", "huber"})


def ignored_label(loss_fn: Any) -> int:
    """The class id a cross-entropy or NLL loss skips: its ``ignore_index`` (PyTorch's default, -100, for the
    functional forms and losses that do not say)."""
    return getattr(loss_fn, "ignore_index", -100)


def loss_kind(loss_fn: Any) -> LossKind:
    """The family of ``loss_fn``: a ``torch.nn`` loss module, a ``torch.nn.functional`` loss, the kind the preflight
    matched for ``loss: model`` (:class:`ModelLoss`), or ``unknown``."""
    if isinstance(loss_fn, ModelLoss):
        return loss_fn.kind
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


# ------------------------------------------------------------------------------------ per-position classes


def squeezed_scores(outputs: Any, targets: Any) -> Any:
    """``outputs`` ``(N, 1, C)`` (or with other singleton dimensions beside the batch's) seen as ``(N, C)`` when the
    targets are one class id per sample ``(N,)``: PyTorch's audio classification tutorial's M5 returns
    ``log_softmax`` of shape ``(N, 1, C)`` and its loss squeezes it."""
    import torch

    if isinstance(outputs, torch.Tensor) and isinstance(targets, torch.Tensor) and outputs.ndim > 2 \
            and targets.ndim == 1 and outputs.shape[0] == targets.shape[0] \
            and sum(size != 1 for size in outputs.shape[1:]) == 1:
        return outputs.reshape(outputs.shape[0], -1)
    return outputs


def class_scores(outputs: Any, targets: Any) -> tuple[Any, Any] | None:
    """``(scores (M, C), class ids (M,))``: every position's class scores and target, rows aligned.

    Reads both layouts of per-position classification: channel-last ``(B, T, C)`` with targets ``(B, T)`` (the
    sequence convention: nanoGPT, Hugging Face) and PyTorch's channel-first ``(N, C, d1, ...)`` with targets
    ``(N, d1, ...)``; plain ``(N, C)`` with ``(N,)`` is both. ``None`` when the shapes fit neither.
    """
    import torch

    outputs = squeezed_scores(outputs, targets)
    if not (isinstance(outputs, torch.Tensor) and isinstance(targets, torch.Tensor)) or outputs.ndim < 2:
        return None
    if targets.dtype.is_floating_point or targets.ndim != outputs.ndim - 1:
        return None
    if tuple(outputs.shape[:-1]) == tuple(targets.shape):
        return outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1)
    if outputs.shape[0] == targets.shape[0] and tuple(outputs.shape[2:]) == tuple(targets.shape[1:]):
        return outputs.movedim(1, -1).reshape(-1, outputs.shape[1]), targets.reshape(-1)
    return None


def shifted(outputs: Any, targets: Any, shift: int) -> tuple[Any, Any]:
    """Outputs and targets aligned when the model predicts ``targets[:, t + shift]`` at position ``t``
    (``shift`` 1: Hugging Face causal LMs take ``labels == input_ids`` and shift them inside)."""
    if not shift:
        return outputs, targets
    return outputs[:, :-shift], targets[:, shift:]


def token_cross_entropy(outputs: Any, targets: Any, shift: int = 0, kind: str = "cross_entropy",
                        ignore_index: int | None = None) -> Any:
    """Per-position cross-entropy (or NLL on log-probabilities) shaped like the (shifted) targets, NaN where the
    target is ignored: negative (``ignore_index`` -100, nanoGPT's -1) or ``ignore_index``. ``None`` when the
    shapes do not fit."""
    import torch
    import torch.nn.functional as F

    outputs, targets = shifted(outputs, targets, shift)
    pair = class_scores(outputs, targets)
    if pair is None:
        return None
    scores, ids = pair
    keep = (ids >= 0) & (ids < scores.shape[1])
    if ignore_index is not None:
        keep &= ids != ignore_index
    safe = torch.where(keep, ids, torch.zeros_like(ids)).long()
    logp = scores.float() if kind == "nll" else F.log_softmax(scores.float(), -1)
    value = -logp.gather(1, safe[:, None])[:, 0]
    return torch.where(keep, value, torch.full_like(value, float("nan"))).reshape(targets.shape)


def per_sample(loss_fn: Any, outputs: Any, targets: Any) -> Any:
    """The loss of each sample of a batch (a float64 NumPy array), NaN where it cannot be computed.

    Standard losses use their functional form with ``reduction='none'`` (keeping weight, label smoothing,
    ignore_index); per-position classes (sequences) average over the positions whose target is not ignored;
    ``loss: model`` uses the cross-entropy the preflight matched with the model's own loss. Anything else calls
    the loss on one sample at a time (slower, exact for any callable); a model loss that matched nothing gives
    NaN (the caller runs the model per sample: :meth:`ModelAdapter.sample_losses`).
    """
    import math

    import numpy as np
    import torch
    import torch.nn.functional as F

    kind = loss_kind(loss_fn)
    n = len(targets) if hasattr(targets, "__len__") else 1
    model_loss = isinstance(loss_fn, ModelLoss)
    try:
        if isinstance(outputs, torch.Tensor) and isinstance(targets, torch.Tensor):
            opt = lambda name, default: getattr(loss_fn, name, default)  # noqa: E731
            same = outputs.shape == targets.shape
            value = None
            # per position (sequences, masks); a model's own cross-entropy for plain class ids too, which would
            # otherwise run the model once per sample (an HF-style classifier's evaluation: 10x slower)
            if kind in ("cross_entropy", "nll") and (model_loss or targets.ndim >= 2 and opt("weight", None) is None
                                                     and opt("label_smoothing", 0.0) == 0.0):
                tokens = token_cross_entropy(outputs, targets, opt("shift", 0), kind, opt("ignore_index", None))
                if tokens is not None:  # mean over the positions that count
                    tokens = tokens.reshape(n, -1)
                    counted = torch.isfinite(tokens)
                    sums = torch.where(counted, tokens, torch.zeros_like(tokens)).sum(1)
                    return (sums / counted.sum(1).clamp(min=1)).where(counted.any(1), torch.full_like(sums, math.nan)) \
                        .detach().cpu().numpy().astype(np.float64)
            if model_loss:
                return np.full(n, math.nan)
            if kind == "cross_entropy":
                value = F.cross_entropy(outputs, targets, weight=opt("weight", None), reduction="none",
                                        ignore_index=opt("ignore_index", -100),
                                        label_smoothing=opt("label_smoothing", 0.0))
            elif kind == "nll":
                value = F.nll_loss(outputs, targets, weight=opt("weight", None), reduction="none",
                                   ignore_index=opt("ignore_index", -100))
            elif kind == "bce_logits" and same:
                value = F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype), reduction="none",
                                                           pos_weight=opt("pos_weight", None))
            elif kind == "bce" and same:
                value = F.binary_cross_entropy(outputs, targets.to(outputs.dtype), reduction="none")
            elif kind == "mse" and same:
                value = F.mse_loss(outputs, targets.to(outputs.dtype), reduction="none")
            elif kind == "l1" and same:
                value = F.l1_loss(outputs, targets.to(outputs.dtype), reduction="none")
            elif kind == "huber" and same:
                value = F.smooth_l1_loss(outputs, targets.to(outputs.dtype), reduction="none", beta=opt("beta", 1.0)) \
                    if type(loss_fn).__name__ == "SmoothL1Loss" else \
                    F.huber_loss(outputs, targets.to(outputs.dtype), reduction="none", delta=opt("delta", 1.0))
            if value is not None:
                return value.detach().float().reshape(n, -1).mean(1).cpu().numpy().astype(np.float64)
        if model_loss:
            return np.full(n, math.nan)
        # Anything else: the loss itself, one sample at a time (slower, but exact for any callable); outputs that
        # are a tuple (a VAE's (reconstruction, mu, logvar)) are sliced element by element
        from sanitycheck.pipeline.tensors import slice_batch

        return np.array([_one_sample(loss_fn, slice_batch(outputs, i, i + 1), slice_batch(targets, i, i + 1))
                         for i in range(n)], dtype=np.float64)
    except Exception:
        return np.full(n, math.nan)


def _one_sample(loss_fn: Any, outputs: Any, targets: Any) -> float:
    """``loss_fn`` on one sample; per-position outputs ``(1, T, C)`` are retried flattened to ``(T, C)``, the form
    a loss written for a model that flattens its outputs expects."""
    try:
        return float(loss_fn(outputs, targets))
    except Exception:
        if getattr(outputs, "ndim", 0) != 3:
            raise
        return float(loss_fn(outputs.flatten(0, 1), targets))


class ModelLoss:
    """``loss: model``: the model computes its own loss (:meth:`ModelAdapter.forward` calls it).

    A user's ``train_step`` receives this object as ``loss_fn``; calling it like a loss raises, since the outputs
    alone do not say what the model's loss was. The preflight matches the model's loss with cross-entropy on its
    outputs (:meth:`infer`), so checks that know the standard losses (``loss_kind``) treat it as one.
    """

    reduction = "mean"

    def __init__(self) -> None:
        #: ``cross_entropy`` when the model's loss equals the mean cross-entropy of its outputs, else ``unknown``.
        self.kind: LossKind = "unknown"
        #: 1 when the model shifts its targets itself (outputs[:, t] scored against targets[:, t + 1]).
        self.shift = 0

    def __call__(self, outputs: Any, targets: Any) -> Any:
        raise TypeError("loss: model: the model computes its own loss; call model(inputs, targets) "
                        "(or model(**batch)) and take the loss from what it returns")

    def __repr__(self) -> str:
        return f"ModelLoss(kind={self.kind!r}, shift={self.shift})"

    def infer(self, outputs: Any, targets: Any, loss: Any, task: str) -> None:
        """Match the model's ``loss`` with the mean cross-entropy of ``outputs`` against ``targets`` (negative
        targets ignored), unshifted and shifted by one position (sequences), relative tolerance 1e-3."""
        import torch

        if task == "regression" or not isinstance(outputs, torch.Tensor) or not isinstance(loss, torch.Tensor):
            return
        value = float(loss.detach().float())
        shifts = (0, 1) if task == "sequence" and isinstance(targets, torch.Tensor) and targets.ndim == 2 else (0,)
        # the closest match wins: at initialization a large vocabulary's outputs are nearly uniform, and the
        # cross-entropy at the wrong shift can come within the tolerance too (ln V either way, GPT-2-sized: a
        # difference of about 2e-3 relative, the right shift's about 1e-7)
        misses = {}
        for shift in shifts:
            with torch.no_grad():
                tokens = token_cross_entropy(outputs.detach(), targets, shift)
            if tokens is None:
                continue
            counted = tokens[torch.isfinite(tokens)]
            if counted.numel():
                misses[shift] = abs(float(counted.mean()) - value) / max(abs(value), 1e-6)
        if misses and min(misses.values()) <= 1e-3:
            self.kind, self.shift = "cross_entropy", min(misses, key=misses.get)


def logits_of(outputs: Any) -> Any:
    """The scores in a model's outputs: the ``logits`` of a dict or an object with ``.logits`` (a model returning
    several named outputs, read by your loss as ``out["logits"]``), the ``out`` of a dict (torchvision's segmentation
    models: ``{"out": ..., "aux": ...}``), else the outputs as they are."""
    import torch

    if isinstance(outputs, dict):
        for key in ("logits", "out"):
            if isinstance(outputs.get(key), torch.Tensor):
                return outputs[key]
    if not isinstance(outputs, torch.Tensor) and isinstance(getattr(outputs, "logits", None), torch.Tensor):
        return outputs.logits
    return outputs


def split_output(raw: Any) -> tuple[Any, Any]:
    """``(outputs, loss)`` from what a model that computes its own loss returns (either may be ``None``).

    A 0-dim (or one-element) tensor is the loss; a tuple/list holds the loss as its 0-dim tensor and the outputs as
    its first other tensor (nanoGPT's ``(logits, loss)``, Hugging Face's ``(loss, logits)``); an object or mapping
    with ``loss`` / ``logits`` (a Hugging Face ``ModelOutput``) gives those. Anything else is outputs only.
    """
    import torch

    if isinstance(raw, torch.Tensor):
        return (None, raw) if raw.numel() == 1 else (raw, None)
    if isinstance(raw, dict) or hasattr(raw, "loss") or hasattr(raw, "logits"):
        get = raw.get if isinstance(raw, dict) else (lambda key: getattr(raw, key, None))
        loss, logits = get("loss"), get("logits")
        if loss is not None or logits is not None:
            return logits, loss
    if isinstance(raw, (tuple, list)):
        tensors = [v for v in raw if isinstance(v, torch.Tensor)]
        loss = next((v for v in tensors if v.ndim == 0), None)
        outputs = next((v for v in tensors if v is not loss), None)
        return outputs, loss
    return raw, None
