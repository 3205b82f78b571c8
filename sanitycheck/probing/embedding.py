"""The shared representation of samples for data checks: an exact content hash and a compact embedding.

Both are computed while the one data pass streams over a split (see :mod:`sanitycheck.pipeline.data`), chunk by
chunk, so their memory is bounded by the number of samples times a small constant (8 bytes of hash plus at
most :data:`MAX_DIM` float32 features per sample), never by the size of the inputs. With
``embedding: {source: model}`` the embedding is the model's features instead (see below; at most
:data:`MODEL_DIM` float32 per sample, computed on first use).

What checks use (everything is cached per run through ``ctx.shared``)::

    hashes(ctx, split)       -> np.ndarray (n,) uint64        exact content of each input
    embedding(ctx, split)    -> np.ndarray (n, d) float32     compact vector; Euclidean distance = similarity
    embed(ctx, inputs)       -> np.ndarray (m, d) float32     extra inputs (e.g. augmented samples), same space
    space(ctx)               -> EmbeddingSpace                how raw features become embeddings
    source(ctx)              -> 'pixels' | 'model'            what the embedding is made from

**Hash.** Every input is converted to contiguous float32 (``-0.0`` becomes ``0.0``, every NaN the same NaN)
and hashed with XXH3-64 together with its shape, so a ``uint8`` image and the same image as ``float32``,
or a strided view and its contiguous copy, hash the same.

**Embedding.** Images (``(C, H, W)``, ``(H, W)`` or ``(H, W, C)`` with C in 1, 3, 4) are area-averaged down to an
8 x 8 grid per channel (first 3 channels), then centred and scaled to unit length per sample: a
downsampled, brightness- and contrast-invariant thumbnail. Re-encoding noise and resizes barely move it;
different pictures land far apart. A shift or a crop of a pixel or two can move it as far as another picture
(:mod:`sanitycheck.probing.alignment` compares windows for that). Other inputs are flattened; with more than
:data:`MAX_VECTOR_DIM` values they are reduced by a seeded Gaussian random projection; the resulting
features are then standardized with the training split's mean and standard deviation (each standard deviation
floored at 0.3x the median one, so near-constant features do not dominate).

**Token ids** (integer inputs the model feeds to an ``nn.Embedding``, or any with ``task: sequence``) are embedded
as bags of tokens instead (:mod:`sanitycheck.probing.token_bags`: TF-IDF fitted on the training split, projected to
256 dims, unit length), from the inputs the data pass kept; distances between id vectors mean nothing.

**Model features** (config ``embedding: {source: model}``; :func:`source` tells which is used). Instead of the
inputs, the model's penultimate features: a fresh model (``ctx.make_model``, seeded; a factory that loads a
checkpoint gives the pretrained one) in eval mode and under ``torch.no_grad`` is fed batches built in the user's
own format (``ctx.batch``), and a forward pre-hook takes the *input* of ``embedding.layer`` (default: the last
``nn.Linear`` the forward pass calls, i.e. the classifier head's input). The features are flattened, randomly
projected to :data:`MODEL_DIM` dims when wider (seeded), centred with the training split's mean feature and
scaled to unit length per sample (cosine geometry; a sample with NaN features becomes the zero vector). They
are computed batch by batch on first use, not in the data pass, and only the ``(n, d)`` float32 result is kept.
Content hashes stay on the raw inputs. Extra inputs (:func:`embed`) are collated
like the training samples (each put in place of the input of the first training sample) and fed to the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sanitycheck.pipeline.capture import FeatureCapture
from sanitycheck.pipeline.data import replace_in_batch
from sanitycheck.pipeline.features import _projection, raw_features
from sanitycheck.probing.token_bags import bag_embedding, inverse_document_frequency

#: A feature's standard deviation is floored at this fraction of the median feature's before standardizing.
STD_FLOOR = 0.3
#: Model features wider than this are randomly projected to this many dimensions.
MODEL_DIM = 256
#: Rows per chunk when transforming model features or embedding extra inputs (bounds temporary memory).
CHUNK = 1024


@dataclass
class EmbeddingSpace:
    """Turns raw features into embeddings; fitted once on the training split.

    ``kind`` is ``'image'`` (thumbnails, already final), ``'vector'`` (standardized) or ``'model'`` (model
    features: centred with the training mean, then unit length per row).
    """

    kind: str
    dim: int
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def fit(cls, features: np.ndarray, kind: str) -> EmbeddingSpace:
        if kind == "image":
            return cls(kind=kind, dim=features.shape[1])
        if kind == "model":
            mean = np.zeros(features.shape[1], dtype=np.float64)
            count = 0
            for lo in range(0, len(features), CHUNK):  # chunked: no float64 copy of the whole array
                block = features[lo:lo + CHUNK]
                block = block[np.isfinite(block).all(1)]
                mean += block.sum(0, dtype=np.float64)
                count += len(block)
            return cls(kind=kind, dim=features.shape[1], mean=(mean / max(count, 1)).astype(np.float32))
        mean = features.mean(0, dtype=np.float64)
        std = features.std(0, dtype=np.float64)
        # floor each std at STD_FLOOR x the median one: a near-constant feature (a border pixel) would otherwise be
        # blown up until its rare values dominate every distance
        positive = std[std > 1e-12]
        floor = STD_FLOOR * float(np.median(positive)) if len(positive) else 1.0
        std = np.maximum(std, max(floor, 1e-12))
        return cls(kind=kind, dim=features.shape[1], mean=mean.astype(np.float32), std=std.astype(np.float32))

    def transform(self, features: np.ndarray, inplace: bool = False) -> np.ndarray:
        """Embeddings of raw ``features`` ``(m, dim)``; ``inplace`` (model features only) reuses their memory."""
        if features.shape[1] != self.dim:
            raise ValueError(f"features have {features.shape[1]} dimensions, the embedding space {self.dim}")
        if self.kind == "image":
            return np.ascontiguousarray(features, dtype=np.float32)
        if self.kind == "model":
            out = features if inplace else np.empty((len(features), self.dim), dtype=np.float32)
            for lo in range(0, len(features), CHUNK):
                block = features[lo:lo + CHUNK].astype(np.float64) - self.mean
                norm = np.linalg.norm(block, axis=1, keepdims=True)
                # a sample with NaN features, or exactly the mean one, has no direction: the zero vector
                ok = np.isfinite(norm) & (norm > 1e-9)
                out[lo:lo + CHUNK] = np.where(ok, block / np.where(ok, norm, 1.0), 0.0)
            return out
        return ((features - self.mean) / self.std).astype(np.float32)


class EmbeddingUnavailable(Exception):
    """The split's inputs cannot be embedded (different shapes, or train and val embed differently)."""


def _features(split: Any) -> tuple[np.ndarray, str]:
    data = split.data_pass()
    if data.features is None:
        raise EmbeddingUnavailable(f"{split.name}: {data.features_note}")
    return data.features, data.features_kind


def source(ctx: Any) -> str:
    """What the shared embedding is made from in this run: ``'pixels'`` (the inputs; the default) or ``'model'``
    (the model's penultimate features; config ``embedding: {source: model}``)."""
    config = getattr(getattr(ctx, "config", None), "embedding", None)
    return getattr(config, "source", "pixels")


def space(ctx: Any) -> EmbeddingSpace:
    """The embedding space of this run, fitted on the training split (cached)."""
    if source(ctx) == "model":
        return _model_train(ctx)[0]

    def compute() -> EmbeddingSpace:
        features, kind = _features(ctx.train)
        return EmbeddingSpace.fit(features, kind)

    return ctx.shared("embedding:space", compute)


def embedding(ctx: Any, split: Any) -> np.ndarray:
    """The ``(n, d)`` float32 embedding of every sample of ``split`` (cached; row ``i`` is sample ``i``).

    Raises :class:`EmbeddingUnavailable` when the split cannot be embedded in the training split's space.
    """

    def compute() -> np.ndarray:
        if source(ctx) == "model":
            if split is ctx.train:
                return _model_train(ctx)[1]
            return space(ctx).transform(_model_features(ctx, split), inplace=True)
        if _token_ids(ctx):
            return bag_embedding(_token_inputs(ctx, split), _token_idf(ctx))
        features, kind = _features(split)
        sp = space(ctx)
        if kind != sp.kind or features.shape[1] != sp.dim:
            raise EmbeddingUnavailable(
                f"{split.name} inputs embed as {kind} of {features.shape[1]} dims, train as {sp.kind} of {sp.dim}"
            )
        return sp.transform(features)

    return ctx.shared(f"embedding:{split.name}", compute)


def hashes(ctx: Any, split: Any) -> np.ndarray:
    """The ``(n,)`` uint64 exact content hash of every input of ``split`` (from the data pass)."""
    return split.data_pass().hashes


def embed(ctx: Any, inputs: Any) -> np.ndarray:
    """Embed extra inputs (a batch ``(m, *shape)`` tensor/array, or a list of equally shaped inputs) in the
    training split's embedding space, e.g. augmented versions of training samples."""
    from sanitycheck.pipeline.tensors import to_numpy

    if isinstance(inputs, (list, tuple)):
        arr = np.stack([to_numpy(x) for x in inputs])
    else:
        arr = to_numpy(inputs)
    if source(ctx) == "model":
        sp = space(ctx)
        return sp.transform(_featurizer(ctx).inputs_features(arr), inplace=True)
    if _token_ids(ctx):
        return bag_embedding(arr, _token_idf(ctx))
    features, kind = raw_features(arr.astype(np.float32, copy=False))
    sp = space(ctx)
    if kind != sp.kind:
        raise EmbeddingUnavailable(f"inputs embed as {kind}, train as {sp.kind}")
    return sp.transform(features)


def _token_ids(ctx: Any) -> bool:
    """Token-id inputs embedded from their values: bags of tokens (:mod:`sanitycheck.probing.token_bags`), not id
    vectors, whose distances mean nothing."""
    return source(ctx) == "pixels" and bool(getattr(ctx, "inputs_are_token_ids", lambda: False)())


def _token_inputs(ctx: Any, split: Any) -> np.ndarray:
    """The token ids of every sample of ``split`` ``(n, ...)``, from the inputs the data pass kept: of inputs of
    several equally shaped tensors (``(input_ids, attention_mask)``), the first, the one an ``nn.Embedding`` reads.
    Texts of different lengths (a collate_fn pads them: Hugging Face's DataCollatorWithPadding) are not kept by
    the pass; they are read once more here, padded with -1 (which a bag of tokens leaves out)."""
    data = split.data_pass()
    ids = data.inputs
    if ids is None and len(set(data.input_shapes)) <= 1:
        raise EmbeddingUnavailable(f"{split.name}: the token ids were not kept by the data pass ({data.inputs_note})")
    if ids is None:
        return ctx.shared(f"embedding:token-ids:{split.name}", lambda: _padded_token_ids(split))
    if {"tuple", "list", "dict"} & set(data.input_dtypes):
        if ids.ndim < 3:  # tensors of different shapes, read as one flat vector: the ids cannot be told apart
            raise EmbeddingUnavailable(f"{split.name}: the token ids are one of several inputs of different shapes")
        ids = ids[:, 0]
    return ids


def _padded_token_ids(split: Any) -> np.ndarray:
    """Every sample's token ids (of several inputs, the first) as one ``(n, longest)`` int64 array padded with -1;
    :class:`EmbeddingUnavailable` when it would exceed ``data.memory_mb``."""
    from sanitycheck.pipeline.tensors import to_numpy

    several = isinstance(split.input_key, list)  # data.input_key names several inputs: the first holds the ids
    texts = []
    for i in range(len(split)):
        x = split.sample(i)[0]
        if several:
            x = x[split.input_key[0]] if isinstance(x, dict) else x[0]
        texts.append(to_numpy(x).reshape(-1))
    longest = max((len(t) for t in texts), default=0)
    if len(texts) * longest * 8 > split.memory_mb * 2**20:
        raise EmbeddingUnavailable(f"{split.name}: the token ids of {len(texts)} texts of up to {longest} tokens "
                                   f"exceed data.memory_mb={split.memory_mb}")
    ids = np.full((len(texts), longest), -1, dtype=np.int64)
    for row, text in zip(ids, texts):
        row[:len(text)] = text
    return ids


def _token_idf(ctx: Any) -> np.ndarray:
    """The training split's inverse document frequencies of tokens (cached)."""
    return ctx.shared("embedding:token-idf", lambda: inverse_document_frequency(_token_inputs(ctx, ctx.train)))


__all__ = ["hashes", "embedding", "embed", "space", "source", "EmbeddingSpace", "EmbeddingUnavailable"]


class _Featurizer:
    """The run's feature model: a fresh model in eval mode with the capture hook, and the projection."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.model = ctx.make_model("embedding").eval()
        self.capture = FeatureCapture(self.model, ctx.config.embedding.layer)
        self.projection: Any = None
        self.template = ctx.train.raw(0)  # the user's sample format, for extra inputs

    def features(self, batch: Any, batch_size: int) -> np.ndarray:
        """Raw (flattened, projected) features ``(batch_size, d)`` of one batch (the user's format), the model
        called the way the pipeline calls it (``loss: model``: with the targets)."""
        import torch

        with torch.no_grad():
            self.capture.value = self.capture.called = None
            try:
                self.ctx.outputs(self.model, batch)
            except Exception as exc:
                raise EmbeddingUnavailable(f"the model's forward pass failed: {type(exc).__name__}: {exc}") from exc
            try:
                flat = self.capture.take(batch_size)
            except ValueError as exc:
                raise EmbeddingUnavailable(f"embedding.layer: {exc}") from exc
            if flat.shape[1] > MODEL_DIM:
                if self.projection is None or self.projection.shape[0] != flat.shape[1]:
                    self.projection = torch.from_numpy(_projection(flat.shape[1], MODEL_DIM)).to(flat.device)
                flat = flat @ self.projection
            return flat.cpu().numpy()

    def split_features(self, split: Any) -> np.ndarray:
        """Raw features of every sample of ``split`` ``(n, d)`` float32, batch by batch in the user's format.

        Samples are batched by input shape (inputs of another shape would not collate with the rest)."""
        ctx = self.ctx
        shapes = split.data_pass().input_shapes
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, shape in enumerate(shapes):
            groups.setdefault(shape, []).append(i)
        size = ctx.config.batch_size
        out: np.ndarray | None = None
        for shape, indices in groups.items():
            for lo in range(0, len(indices), size):
                chunk = indices[lo:lo + size]
                feats = self.features(ctx.batch(split, chunk), len(chunk))
                if out is None:
                    out = np.zeros((len(split), feats.shape[1]), dtype=np.float32)
                elif feats.shape[1] != out.shape[1]:
                    raise EmbeddingUnavailable(
                        f"{split.name}: inputs of shape {shape} give {feats.shape[1]} features, others {out.shape[1]}")
                out[chunk] = feats
        assert out is not None
        return out

    def inputs_features(self, arr: np.ndarray) -> np.ndarray:
        """Raw features of extra inputs ``(m, *shape)``, collated as the training samples are."""
        from sanitycheck.pipeline.tensors import to_device

        ctx, split = self.ctx, self.ctx.train
        parts = []
        for lo in range(0, len(arr), ctx.config.batch_size):
            items = [self._like_template(x) for x in arr[lo:lo + ctx.config.batch_size]]
            parts.append(self.features(to_device(split.collate_fn(items), ctx.device), len(items)))
        return np.concatenate(parts) if parts else np.zeros((0, space(ctx).dim), dtype=np.float32)

    def _like_template(self, x: np.ndarray) -> Any:
        """A dataset item like the training split's first one, with ``x`` as its input (same type and dtype)."""
        import torch

        split, item = self.ctx.train, self.template
        original = split.unpack(item)[0]
        value: Any = np.asarray(x)
        if isinstance(original, torch.Tensor):
            integer = not (original.dtype.is_floating_point or original.dtype.is_complex)
        else:
            integer = isinstance(original, np.ndarray) and original.dtype.kind in "iub"
        if integer:  # e.g. uint8 images: what the dataset would have returned
            value = np.rint(value)
        if isinstance(original, torch.Tensor):
            value = torch.from_numpy(np.ascontiguousarray(value)).to(original.dtype)
        elif isinstance(original, np.ndarray):
            value = value.astype(original.dtype)
        else:
            value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        return replace_in_batch(split, item, inputs=value)


def _featurizer(ctx: Any) -> _Featurizer:
    return ctx.shared("embedding:model", lambda: _Featurizer(ctx))


def _model_features(ctx: Any, split: Any) -> np.ndarray:
    return _featurizer(ctx).split_features(split)


def _model_train(ctx: Any) -> tuple[EmbeddingSpace, np.ndarray]:
    """The model-feature space fitted on the training split, and the training embedding (one computation)."""

    def compute() -> tuple[EmbeddingSpace, np.ndarray]:
        features = _model_features(ctx, ctx.train)
        sp = EmbeddingSpace.fit(features, "model")
        return sp, sp.transform(features, inplace=True)

    return ctx.shared("embedding:model-train", compute)
