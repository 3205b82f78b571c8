"""Taking the input of one layer of the user's model during its forward pass (its penultimate features)."""

from __future__ import annotations

from typing import Any



def feature_layer(model: Any, name: str) -> Any:
    """The submodule ``name`` (dotted, as in ``model.named_modules()``) of ``model``; raises
    :class:`~sanitycheck.engine.errors.ConfigError` naming ``embedding.layer`` when there is none."""
    import difflib

    from sanitycheck.engine.errors import ConfigError

    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"submodules: {', '.join(names[:12]) or 'none'}"
        raise ConfigError(f"embedding.layer: the model has no submodule '{name}' ({hint})") from None


class FeatureCapture:
    """Forward pre-hooks that keep the input of the feature layer during each forward pass.

    With a ``layer`` name: the input of that submodule (its first call in the pass). Without: the input of the
    last ``nn.Linear`` the pass calls, the classifier head's input for ordinary models (execution order, so a
    head defined before the backbone, or a Linear that is never used, does not mislead it). Use as a context
    manager (the hooks are removed on exit); :meth:`take` returns the batch's features and resets.
    """

    def __init__(self, model: Any, layer: str | None):
        from torch import nn

        from sanitycheck.engine.errors import ConfigError

        self.layer = layer
        if layer is None:
            targets = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            if not targets:
                names = [n for n, _ in model.named_modules() if n]
                raise ConfigError(
                    "embedding.layer: the model has no nn.Linear to take penultimate features from; name the "
                    f"submodule whose input to use (submodules: {', '.join(names[:12]) or 'none'})"
                )
        else:
            targets = [(layer, feature_layer(model, layer))]
        self.value: Any = None
        self.called: str | None = None
        self.handles = [m.register_forward_pre_hook(self._hook(n), with_kwargs=True) for n, m in targets]

    def _hook(self, name: str) -> Any:
        import torch

        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            if self.layer is None or self.value is None:  # default: the last Linear call wins; a named layer: its first
                tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
                self.value = tensors[0].detach() if tensors else "no tensor"
                self.called = name

        return hook

    def take(self, batch_size: int) -> Any:
        """The captured input as ``(batch_size, width)`` float32; raises ``ValueError`` saying what went wrong."""
        import torch

        value, name, self.value, self.called = self.value, self.called, None, None
        if value is None:
            if self.layer is None:
                raise ValueError("no nn.Linear was called in the model's forward pass; name the submodule whose "
                                 "input to use")
            raise ValueError(f"'{self.layer}' was not called in the model's forward pass")
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"'{name}' was called without a tensor input")
        if value.ndim == 0 or value.shape[0] != batch_size:
            raise ValueError(f"the input of '{name}' has shape {tuple(value.shape)}, which does not start with "
                             f"the batch size {batch_size}; name another layer")
        return value.reshape(batch_size, -1).float()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def __enter__(self) -> FeatureCapture:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()
