"""What a model is made of: a module walk plus one traced forward pass that records which module's output
feeds which module's input. Used by ``architecture`` (dropout feeding BatchNorm, bias before BatchNorm,
BatchNorm on small batches), ``optimizer`` (decay on norm and bias parameters) and ``generalization``
(which regularizers the model already has).

The trace puts a forward hook on every leaf module (a module with no children) and links a module to the
earlier module whose output it receives, by the tensor's storage: a view (``Flatten``, ``.view``) or an
in-place module (``ReLU(inplace=True)``) keeps the link. A functional operation between two modules
(``x + residual``, ``torch.cat``) makes a new tensor, so the link ends there: the trace sees the chains
that ``nn.Sequential``-style code builds and misses the ones written with functions (no false links).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from sanitycheck.pipeline.context import PipelineContext

#: Leaf modules that only reshape (they keep the storage too, but name them so links can skip them).
SHAPE_ONLY = ("Flatten", "Unflatten", "Identity")


def dropout_types() -> tuple[type, ...]:
    from torch import nn

    return (nn.modules.dropout._DropoutNd,)  # Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout


def batchnorm_types() -> tuple[type, ...]:
    from torch import nn

    return (nn.modules.batchnorm._BatchNorm,)  # BatchNorm1d/2d/3d, SyncBatchNorm, the lazy variants


def weight_layer_types() -> tuple[type, ...]:
    """Layers whose initialization assumes inputs of roughly unit scale: Linear, convolutions, recurrent layers."""
    from torch import nn

    return (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.RNNBase)


def norm_types() -> tuple[type, ...]:
    """Normalization layers whose parameters (gain and shift) conventionally get no weight decay."""
    from torch import nn

    types: list[type] = [nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm]
    if hasattr(nn, "RMSNorm"):
        types.append(nn.RMSNorm)
    return tuple(types)


def dropouts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's dropout modules with p > 0, by dotted name."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, dropout_types()) and float(m.p) > 0]


def batchnorms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, batchnorm_types())]


def norm_and_bias_parameters(model: nn.Module) -> dict[int, str]:
    """``id(parameter) -> name`` of the parameters of normalization layers and of every bias."""
    found: dict[int, str] = {}
    for module_name, module in model.named_modules():
        norm = isinstance(module, norm_types())
        for name, p in module.named_parameters(recurse=False):
            if norm or name == "bias":
                found[id(p)] = f"{module_name}.{name}" if module_name else name
    return found


@dataclass
class Call:
    """One leaf module's call in the traced forward pass."""

    index: int
    name: str
    module: Any
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    #: The index of the call whose output this call received as its first input (``None``: not a module's).
    fed_by: int | None = None
    #: The median over the batch of each sample's largest |value| of the first input (a floating-point one), else None.
    input_level: float | None = None
    _output: Any = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return type(self.module).__name__


@dataclass
class Trace:
    calls: list[Call]

    def producer(self, call: Call, skip_shape_only: bool = True) -> Call | None:
        """The call whose output ``call`` received, skipping reshaping modules (``Flatten`` ...)."""
        source = self.calls[call.fed_by] if call.fed_by is not None else None
        while skip_shape_only and source is not None and source.kind in SHAPE_ONLY:
            source = self.calls[source.fed_by] if source.fed_by is not None else None
        return source

    def upstream(self, call: Call) -> Iterator[tuple[Call, int]]:
        """Every call on the module chain that leads to ``call``, nearest first, with its distance (1 = direct,
        counting only modules that compute: reshapes are free)."""
        hops, source = 0, self.producer(call, skip_shape_only=False)
        while source is not None:
            if source.kind not in SHAPE_ONLY:
                hops += 1
                yield source, hops
            source = self.producer(source, skip_shape_only=False)


def trace_forward(model: nn.Module, inputs: Any) -> Trace:
    """Run ``model(inputs)`` once in training mode without gradients, recording every leaf module's call.

    Training mode, because that is what the links are about (dropout returns a new tensor only when it
    drops); the model should be a fresh copy (BatchNorm's running statistics are updated).
    """
    import torch

    from sanitycheck.pipeline.adapter import call_model

    calls: list[Call] = []
    producers: dict[int, int] = {}  # storage address -> index of the call that last wrote it

    def key(t: Any) -> int | None:
        if not isinstance(t, torch.Tensor):
            return None
        try:
            return t.untyped_storage().data_ptr() or None  # 0: an empty tensor, no storage to follow
        except Exception:
            return None

    def hook(name: str):
        def record(module: Any, args: tuple, output: Any) -> None:
            first = args[0] if args else None
            source = producers.get(key(first))
            call = Call(index=len(calls), name=name, module=module,
                        input_shape=tuple(first.shape) if isinstance(first, torch.Tensor) else None,
                        output_shape=tuple(output.shape) if isinstance(output, torch.Tensor) else None,
                        fed_by=source, _output=output)  # the output is kept alive: its address is not reused
            if isinstance(first, torch.Tensor) and first.is_floating_point() and first.ndim and first.numel():
                call.input_level = float(first.detach().abs().reshape(len(first), -1).amax(1).float().median())
            calls.append(call)
            out_key = key(output)
            if out_key is not None:
                producers[out_key] = call.index
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if not list(m.children()) and n]
    was_training = model.training
    model.train()
    try:
        with torch.no_grad():
            call_model(model, inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for call in calls:
        call._output = None
    return Trace(calls)


@dataclass(frozen=True)
class TrainingBatches:
    """How the training loop batches the training split, as far as the config says."""

    batch_size: int | None
    drop_last: bool
    source: str  # where the numbers come from, for messages

    def last_batch(self, samples: int) -> int | None:
        """Size of the last batch of an epoch when it is smaller than the others (``None``: no such batch)."""
        if self.batch_size is None or self.drop_last or samples % self.batch_size == 0:
            return None
        return samples % self.batch_size


def training_batches(ctx: PipelineContext) -> TrainingBatches:
    """The training DataLoader's batch size and drop_last when ``data.train`` is a loader, else ``batch_size``
    from the config (what the probes use; the real loop may differ)."""
    loader = ctx.train.loader
    if loader is not None:
        size = loader.batch_size
        if size is None and loader.batch_sampler is not None:  # a custom batch sampler: look at its first batch
            try:
                size = len(next(iter(loader.batch_sampler)))
            except Exception:
                size = None
            return TrainingBatches(size, True, "the first batch of the training DataLoader's batch_sampler")
        return TrainingBatches(size, bool(loader.drop_last), "the training DataLoader")
    return TrainingBatches(ctx.config.batch_size, False, "batch_size in the config (data.train is a Dataset)")
