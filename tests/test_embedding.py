"""The shared representation: content hashes, embeddings, the streaming data pass that computes them, k-NN."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from sanitycheck.pipeline.data import materialize
from sanitycheck.pipeline.features import content_hashes, raw_features
from sanitycheck.probing.neighbors import knn, unique_inputs


class PerSample(Dataset):
    """The same data as a TensorDataset, read sample by sample (forces the general path of the data pass)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def images(n=300, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((n, 3, 4, 4)).astype(np.float32)
    x = torch.nn.functional.interpolate(torch.from_numpy(base), size=(32, 32), mode="bilinear")  # smooth pictures
    return x, torch.from_numpy(rng.integers(0, 10, n))


def test_hash_ignores_dtype_and_memory_layout_but_not_content():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4, 3, 8, 8)).astype(np.uint8)
    as_float = a.astype(np.float32)
    strided = np.asfortranarray(as_float.astype(np.float64))
    assert np.array_equal(content_hashes(a), content_hashes(as_float))
    assert np.array_equal(content_hashes(a), content_hashes(strided))
    assert np.array_equal(content_hashes(np.array([[0.0, 1.0]])), content_hashes(np.array([[-0.0, 1.0]])))
    b = as_float.copy()
    b[2, 0, 0, 0] += 1
    h = content_hashes(b)
    assert h[2] != content_hashes(as_float)[2] and np.array_equal(np.delete(h, 2), np.delete(content_hashes(a), 2))
    assert len(set(content_hashes(as_float).tolist())) == 4
    assert content_hashes(as_float.reshape(4, 3, 64))[0] != content_hashes(as_float)[0]  # the shape counts


def test_image_embedding_ignores_brightness_and_contrast_and_separates_pictures():
    x, _ = images(50)
    f, kind = raw_features(x.numpy())
    g, _ = raw_features((x * 0.6 + 0.3).numpy())
    assert kind == "image" and f.shape == (50, 3 * 8 * 8)
    assert np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    assert np.abs(f - g).max() < 1e-4
    d = np.linalg.norm(f[:, None] - f[None], axis=2)
    assert np.median(d[np.triu_indices(50, 1)]) > 0.5
    hwc, kind_hwc = raw_features(x.permute(0, 2, 3, 1).numpy())  # channel-last images embed the same
    assert kind_hwc == "image" and np.abs(hwc - f).max() < 1e-5


def test_tensor_fast_path_matches_the_sample_loop():
    x, y = images(2100)  # more than two chunks
    x[5, 0, 0, 0] = float("nan")
    fast = materialize(TensorDataset(x, y), "train", max_samples=None, memory_mb=1024, input_key=None,
                       target_key=None).data_pass()
    slow = materialize(PerSample(x, y), "train", max_samples=None, memory_mb=1024, input_key=None,
                       target_key=None).data_pass()
    for field in ("hashes", "features", "inputs", "targets", "numel", "nan_count", "minimum", "maximum", "mean",
                  "std", "target_nonfinite"):
        a, b = getattr(fast, field), getattr(slow, field)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), field
    assert fast.input_shapes == slow.input_shapes and fast.input_dtypes == slow.input_dtypes
    assert fast.target_dtypes == slow.target_dtypes and fast.features_kind == "image"


def test_targets_of_one_shape_are_one_array_and_of_several_shapes_none():
    """Per-sample targets come back from each chunk as one block when they share a shape; the pass joins the blocks
    (more than two chunks here). Shapes that differ, inside a chunk or between chunks, leave no targets array and
    say why."""
    x, y = images(2100)
    same = materialize(PerSample(x, y), "train", max_samples=None, memory_mb=1024, input_key=None,
                       target_key=None).data_pass()
    assert same.targets.shape == (2100,) and np.array_equal(same.targets, y.numpy())
    for odd in (5, 2050):  # in the first chunk, in the last
        ys = [torch.tensor([1.0, 2.0]) if i == odd else torch.tensor(float(v)) for i, v in enumerate(y.tolist())]
        mixed = materialize(PerSample(x, ys), "train", max_samples=None, memory_mb=1024, input_key=None,
                            target_key=None).data_pass()
        assert mixed.targets is None and mixed.targets_note == "their shapes differ"
        assert mixed.target_shapes[odd] == (2,) and mixed.target_shapes[0] == ()


def test_hashes_and_embeddings_do_not_need_the_inputs_cached():
    x, y = images(400)
    data = materialize(TensorDataset(x, y), "train", max_samples=None, memory_mb=1, input_key=None,
                       target_key=None).data_pass()
    assert data.inputs is None and "exceeds" in data.inputs_note
    assert data.features is not None and data.features.shape == (400, 192)
    assert len(np.unique(data.hashes)) == 400


def test_embed_puts_extra_inputs_in_the_same_space(run_pipeline):
    from sanitycheck.engine.config import load_config
    from sanitycheck.pipeline.context import PipelineContext
    from sanitycheck.probing.embedding import embed, embedding

    x, y = images(200)
    cfg = load_config({"data": {"train": TensorDataset(x, y)}, "loss": "torch.nn:CrossEntropyLoss",
                       "model": lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10))})
    ctx = PipelineContext.open(cfg)
    e = embedding(ctx, ctx.train)
    assert np.allclose(embed(ctx, x[:10]), e[:10], atol=1e-6)
    assert np.allclose(embed(ctx, [x[3], x[4]]), e[3:5], atol=1e-6)
    assert ctx.shared("embedding:train", lambda: None) is e  # computed once, shared


def test_knn_index_agrees_with_brute_force_on_near_neighbours():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((200, 32))
    base = (centers[rng.integers(0, 200, 8000)] + 0.4 * rng.standard_normal((8000, 32))).astype(np.float32)
    queries = base[:1500] + 0.01 * rng.standard_normal((1500, 32)).astype(np.float32)
    d_ivf, i_ivf = knn(queries, base, 5, exact=False)
    d_bf, i_bf = knn(queries, base, 5, exact=True)
    assert (i_ivf[:, 0] == np.arange(1500)).mean() >= 0.99  # the near copy is always found
    assert (i_bf[:, 0] == np.arange(1500)).all()
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(i_ivf, i_bf)]) >= 0.95
    assert np.all(np.diff(d_ivf, axis=1) >= -1e-6)
    for exact in (True, False):
        d_self, i_self = knn(base[:3000], base[:3000], 3, exclude_self=True, exact=exact)
        assert not (i_self == np.arange(3000)[:, None]).any()
        assert np.isfinite(d_self).all()


@pytest.mark.parametrize("latent", [24, None])
def test_knn_index_of_wide_rows_finds_what_the_full_rows_find(latent, monkeypatch):
    """Rows wider than PCA_DIMS: indexed on their principal components when those hold the rows' variance (here
    24 latent directions), on the full rows when it is spread over all of them (Gaussian noise); either way the
    near copy is found, the neighbours beyond it as often as through an index of the full rows, and re-ranked by
    their exact distances in full."""
    from sanitycheck.probing import neighbors

    rng = np.random.default_rng(1)
    d = 3 * neighbors.PCA_DIMS
    if latent:
        codes = rng.standard_normal((8000, latent)) * np.linspace(2.0, 0.5, latent)
        base = (codes @ rng.standard_normal((latent, d)) + 0.05 * rng.standard_normal((8000, d))).astype(np.float32)
    else:
        centers = rng.standard_normal((200, d))
        base = (centers[rng.integers(0, 200, 8000)] + 0.4 * rng.standard_normal((8000, d))).astype(np.float32)
    queries = base[:1500] + 0.01 * rng.standard_normal((1500, d)).astype(np.float32)
    _, i_bf = knn(queries, base, 5, exact=True)

    def found(index):
        dist, idx = knn(queries, None, 5, index=index)
        assert (idx[:, 0] == np.arange(1500)).mean() >= 0.99
        assert np.allclose(dist, np.linalg.norm(queries[:, None] - base[idx], axis=2), atol=1e-3)
        assert np.all(np.diff(dist, axis=1) >= -1e-6)
        return np.mean([len(set(a) & set(b)) / 5 for a, b in zip(idx, i_bf)])

    index = neighbors.Index(base, seed=0)
    assert (index.overfetch > 1) == bool(latent)
    projected = found(index)
    monkeypatch.setattr(neighbors, "PCA_VARIANCE", 2.0)  # never projected
    assert neighbors.Index(base, seed=0).overfetch == 1
    assert projected >= found(neighbors.Index(base, seed=0)) - 0.02


def test_unique_inputs_groups_equal_hashes_in_dataset_order():
    unique, inverse = unique_inputs(np.array([7, 3, 7, 9, 3], dtype=np.uint64))
    assert unique.tolist() == [0, 1, 3]
    assert inverse.tolist() == [0, 1, 0, 2, 1]


def test_input_cache_keeps_narrow_dtypes_and_does_not_copy_a_tensor_dataset():
    from torch.utils.data import Subset

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (300, 1, 16, 16)).astype(np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, 300))

    def cached(ds):
        return materialize(ds, "train", max_samples=None, memory_mb=64, input_key=None, target_key=None).data_pass()

    fast, slow = cached(TensorDataset(x, y)), cached(PerSample(x, y))
    assert fast.inputs.dtype == np.uint8 and np.shares_memory(fast.inputs, x.numpy())  # a view: no copy at all
    assert not fast.inputs.flags.writeable
    assert slow.inputs.dtype == np.uint8 and np.array_equal(slow.inputs, x.numpy())  # 1 byte per value, not 4
    assert np.array_equal(fast.features, slow.features) and np.array_equal(fast.hashes, slow.hashes)
    order = rng.permutation(300)[:200]
    sub = cached(Subset(TensorDataset(x, y), order))  # gathered chunk by chunk
    assert np.array_equal(sub.inputs, x.numpy()[order]) and np.array_equal(sub.hashes, fast.hashes[order])
    wide = cached(TensorDataset(x.long(), y))  # float32 does not hold every int64: cached as float32
    assert wide.inputs.dtype == np.float32 and np.array_equal(wide.inputs, x.numpy())


def test_distance_blocks_give_the_same_numbers(monkeypatch):
    """Exact search in blocks of any shape gives the exact distances and the same neighbours."""
    from sanitycheck.probing import neighbors

    rng = np.random.default_rng(0)
    q, b = rng.standard_normal((300, 24), dtype=np.float32), rng.standard_normal((500, 24), dtype=np.float32)
    exact = np.sort(np.sqrt(((q[:, None].astype(np.float64) - b[None]) ** 2).sum(-1)), 1)[:, :5]
    d, i = knn(q, b, 5, exact=True)
    assert np.allclose(d, exact, atol=1e-4)
    for rows in (300, 7, 1):  # blocks of any shape
        monkeypatch.setattr(neighbors, "BLOCK", 500 * rows)
        d_rows, i_rows = knn(q, b, 5, exact=True)
        assert np.array_equal(i_rows, i) and np.allclose(d_rows, d, atol=1e-5)


class Broken(PerSample):
    def __getitem__(self, i):
        if i == 1500:
            raise ValueError("corrupt file")
        return super().__getitem__(i)


def test_data_pass_in_worker_processes_gives_the_same_results(monkeypatch):
    import pytest

    from sanitycheck.engine.errors import UsageError
    from sanitycheck.pipeline import data as data_module

    monkeypatch.setattr(data_module, "WORKERS_AFTER", 0.0)  # workers whatever the estimate
    monkeypatch.setenv("SANITYCHECK_THREADS", "2")
    used = []
    real = data_module.pass_workers
    monkeypatch.setattr(data_module, "pass_workers", lambda split, estimate: used.append(real(split, estimate)) or used[-1])
    x, y = images(2500)
    x[2000, 1, 2, 3] = float("inf")

    def read(ds):
        return materialize(ds, "train", max_samples=None, memory_mb=1024, input_key=None, target_key=None).data_pass()

    fast, workers = read(TensorDataset(x, y)), read(PerSample(x, y))
    assert used[-1] == 2
    for field in ("hashes", "features", "inputs", "targets", "numel", "nan_count", "inf_count", "minimum", "maximum",
                  "mean", "std", "target_nonfinite"):
        a, b = getattr(fast, field), getattr(workers, field)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), field
    assert fast.input_shapes == workers.input_shapes and fast.input_dtypes == workers.input_dtypes
    with pytest.raises(UsageError, match="reading sample 1500 raised ValueError: corrupt file"):
        read(Broken(x, y))


class Widening(PerSample):
    """uint8 pictures, then float32 ones from sample 1500: the input cache is widened in the middle of the pass."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return ((x * 255).round().to(torch.uint8) if i < 1500 else (x * 255).round()), y


def in_shared_memory(array: np.ndarray) -> bool:
    while isinstance(array, np.ndarray):
        array = array.base
    return isinstance(getattr(array, "obj", array), mmap.mmap)


def test_forked_workers_write_the_input_cache_in_place(monkeypatch):
    """Forked workers write their chunks straight into the shared cache; a cache widened mid-pass keeps their rows."""
    from torch.utils.data import DataLoader

    from sanitycheck.pipeline import data as data_module

    monkeypatch.setenv("SANITYCHECK_THREADS", "2")
    x, y = images(2500)

    def read(ds, workers_after):
        monkeypatch.setattr(data_module, "WORKERS_AFTER", workers_after)
        return materialize(ds, "train", max_samples=None, memory_mb=1024, input_key=None, target_key=None).data_pass()

    main, forked = read(PerSample(x, y), 1e9), read(PerSample(x, y), 0.0)
    assert in_shared_memory(forked.inputs)  # the shared cache, not a copy of it
    assert np.array_equal(main.inputs, forked.inputs)
    main, forked = read(Widening(x, y), 1e9), read(Widening(x, y), 0.0)
    assert forked.inputs.dtype == np.float32 and np.array_equal(main.inputs, forked.inputs)
    assert np.array_equal(main.hashes, forked.hashes)
    spawned = read(DataLoader(PerSample(x, y), num_workers=1, multiprocessing_context="spawn"), 0.0)  # no shared memory to write
    assert not in_shared_memory(spawned.inputs) and np.array_equal(spawned.inputs, x.numpy())


def test_the_gpu_search_path_finds_what_faiss_finds(monkeypatch):
    """The exact torch search used on CUDA devices (run here on the CPU) agrees with FAISS's exact search."""
    from sanitycheck.probing import neighbors

    rng = np.random.default_rng(1)
    q, b = rng.standard_normal((200, 16), dtype=np.float32), rng.standard_normal((700, 16), dtype=np.float32)
    monkeypatch.setattr(neighbors, "GPU_BLOCK", 700 * 30)  # several blocks of queries
    d, i = knn(q, b, 4, exact=True)
    monkeypatch.setattr(neighbors, "_gpu", lambda device: device is not None)
    d_gpu, i_gpu = knn(q, b, 4, device=torch.device("cpu"))  # the CUDA path, taken here for the test's device
    assert np.array_equal(i_gpu, i) and np.allclose(d_gpu, d, atol=1e-4)


def test_spawned_workers_need_a_longer_read_than_forked_ones(monkeypatch):
    # a spawned worker imports torch again before it reads anything (seconds, not the 0.15 s of a fork)
    from torch.utils.data import DataLoader

    from sanitycheck.pipeline import data as data_module

    monkeypatch.setenv("SANITYCHECK_THREADS", "2")
    x, y = images(64)

    def workers(context, estimate):
        split = materialize(DataLoader(PerSample(x, y), num_workers=1, multiprocessing_context=context), "train",
                            max_samples=None, memory_mb=1024, input_key=None, target_key=None)
        return data_module.pass_workers(split, estimate)

    between = (data_module.WORKERS_AFTER + data_module.WORKERS_AFTER_SPAWN) / 2
    assert workers("fork", between) == 2 and workers("spawn", between) == 0
    assert workers("spawn", data_module.WORKERS_AFTER_SPAWN) == 2
