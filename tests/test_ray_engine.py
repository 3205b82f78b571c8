"""The ray engine: the data pass on a real Ray cluster (a head and a second worker node on this machine) must give
the local engine's DataPass and the same findings.

The shard merge itself is checked without a cluster first (``read_shard`` + the merge against the local pass); the
cluster tests start one Ray head and one more node (1 CPU each, a private temp dir, no dashboard, localhost only),
run the data checks on 20k+2k samples through both engines, compare, and shut the cluster down, checking that none
of its processes is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

#: The data checks whose findings must not depend on the engine (influence: its label scan only).
DATA_CHECKS = ["leakage", "outliers", "class-balance", "data-integrity", "influence"]
SETTINGS = {"influence": {"influential": False, "epochs": 5}}

PIPELINE = textwrap.dedent('''
    """A map-style image dataset as users write them; each Ray worker imports this module and builds its own."""
    import numpy as np
    import torch
    from torch.utils.data import Dataset

    N_TRAIN, N_VAL = 20000, 2000


    def _pictures(n, seed):
        rng = np.random.default_rng(seed)
        base = torch.from_numpy(rng.random((n, 1, 4, 4), dtype=np.float32))
        x = torch.nn.functional.interpolate(base, size=(16, 16), mode="bilinear").numpy()
        return np.round(np.clip(x + rng.normal(0, 0.03, x.shape), 0, 1) * 255).astype(np.uint8)


    class Pictures(Dataset):
        """uint8 16x16 pictures, read one by one as float in [0, 1] (planted: leaks, copies, NaNs, noise, skew)."""

        def __init__(self, split):
            rng = np.random.default_rng(7)
            train = _pictures(N_TRAIN, 0)
            train[500:520] = train[100:120]                      # exact duplicates inside train
            train[900:905] = rng.integers(0, 255, (5, 1, 16, 16))  # noise: outliers
            if split == "train":
                self.x = train
                self.y = np.minimum(rng.geometric(0.35, N_TRAIN) - 1, 9)  # skewed classes
            else:
                self.x = _pictures(N_VAL, 1)
                self.x[:40] = train[2000:2040]                   # exact leaks
                self.x[40:80] = np.clip(train[3000:3040].astype(int) + rng.integers(-3, 4, (40, 1, 16, 16)), 0, 255)
                self.y = rng.integers(0, 10, N_VAL)
            self.split = split

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            x = torch.from_numpy(self.x[i]).float() / 255
            if self.split == "train" and i in (7, 11, 19999):
                x[0, 0, 0] = float("nan")
            return x, int(self.y[i])


    def train():
        return Pictures("train")


    def val():
        return Pictures("val")


    def model():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10))
''')


def _same_pass(a, b) -> None:
    """Two DataPasses hold the same per-sample results (statistics exactly, features up to float rounding)."""
    assert a.n == b.n
    for name in ("numel", "nan_count", "inf_count", "minimum", "maximum", "mean", "std", "target_nonfinite", "hashes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.targets, b.targets)
    assert (a.input_shapes, a.input_dtypes, a.target_shapes, a.target_dtypes) == \
        (b.input_shapes, b.input_dtypes, b.target_shapes, b.target_dtypes)
    assert (a.features_kind, a.features_note) == (b.features_kind, b.features_note)
    if a.features is None:
        assert b.features is None
    else:
        np.testing.assert_allclose(a.features, b.features, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------ the merge, no cluster


class _Mixed(Dataset):
    """Vectors with a few NaN, an odd shape and a float label here and there: every branch of the sample loop."""

    def __len__(self):
        return 5000

    def __getitem__(self, i):
        x = torch.linspace(0, 1, 300) * (i % 17) + i
        if i % 997 == 3:
            x[5] = float("nan")
        if i == 4321:
            x = x[:200]
        return x, (i % 5 if i != 77 else float("inf"))


@pytest.mark.parametrize("dataset", [
    _Mixed(),
    TensorDataset(torch.arange(6000 * 48, dtype=torch.uint8).reshape(6000, 3, 4, 4) % 251, torch.arange(6000) % 3),
], ids=["sample-loop", "tensor-fast-path"])
def test_shards_merged_in_index_order_are_the_local_pass(dataset):
    from sanitycheck.pipeline.data import _Accumulator, _read_pass, materialize
    from sanitycheck.pipeline.ray_engine import _Merge, read_shard

    split = materialize(dataset, "train", max_samples=None, memory_mb=64, input_key=None, target_key=None)
    local = _read_pass(split)
    acc = _Accumulator(split)
    shards = [read_shard(split, lo, min(split.n, lo + 2048)) for lo in range(0, split.n, 2048)]
    merge = _Merge(acc)
    for shard in reversed(shards):  # arrival order does not matter
        merge.add(shard)
    merge.finish()
    _same_pass(local, acc.finish(0.0))


def test_shard_size_is_a_multiple_of_the_chunk():
    from sanitycheck.pipeline.data import CHUNK
    from sanitycheck.pipeline.ray_engine import MAX_SHARD, shard_size

    assert shard_size(20000, 2) == 3072
    assert shard_size(100, 8) == CHUNK
    assert shard_size(10**9, 4) == MAX_SHARD
    assert shard_size(10**6, 4, configured=5000) == 5120


def test_without_ray_engine_ray_is_a_usage_error(monkeypatch, tmp_path):
    """No Ray installed: exit 2 saying to install sanitycheck[ray] (ray is imported only for engine ray)."""
    from typer.testing import CliRunner

    from sanitycheck.faces.cli import app

    (tmp_path / "pipeline.py").write_text(PIPELINE)
    (tmp_path / "sanitycheck.yaml").write_text("data: {train: pipeline:train}\nmodel: pipeline:model\n"
                                               "loss: torch.nn:CrossEntropyLoss\n")
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(app, ["run", str(tmp_path / "sanitycheck.yaml"), "--engine", "ray", "-q"])
    assert result.exit_code == 2, result.output
    assert "install sanitycheck[ray]" in result.output


def test_engine_config_forms():
    from sanitycheck.engine.config import ConfigError, load_config

    base = {"data": {"train": "p:t"}, "model": "p:m", "loss": "p:l"}
    assert load_config(base).engine.name == "local"
    assert load_config({**base, "engine": "ray"}).engine.address == "auto"
    cfg = load_config({**base, "engine": {"name": "ray", "address": "ray://head:10001"}})
    assert (cfg.engine.name, cfg.engine.address) == ("ray", "ray://head:10001")
    with pytest.raises(ConfigError, match="engine.name"):
        load_config({**base, "engine": "spark"})


def test_an_address_where_nothing_answers_is_a_config_error_at_once():
    pytest.importorskip("ray")
    import socket

    from sanitycheck.engine.config import ConfigError, load_config
    from sanitycheck.pipeline.ray_engine import connect

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = load_config({"data": {"train": "p:t"}, "model": "p:m", "loss": "p:l",
                          "engine": {"name": "ray", "address": f"127.0.0.1:{port}"}}).engine
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="nothing answers"):
        connect(engine)
    assert time.perf_counter() - started < 10


# ------------------------------------------------------------------------------------------ a real cluster


def _processes_under(path: str) -> list[int]:
    """Pids of processes whose command line or environment names ``path`` (this cluster's own processes)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if path.encode() in cmd or path.encode() in env:
            found.append(int(pid))
    return found


@pytest.fixture(scope="module")
def cluster():
    """A Ray head and a second worker node on this machine, 1 CPU each; everything stopped afterwards."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[test]')")
    from ray.cluster_utils import Cluster

    tmp = tempfile.mkdtemp(prefix="scray-", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_ADDRESS", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(RAY_TMPDIR=tmp, RAY_USAGE_STATS_ENABLED="0")  # the cluster's files, and its marker for cleanup
    os.environ.pop("RAY_ADDRESS", None)
    node = {"num_cpus": 1, "object_store_memory": 96 * 2**20}
    started = time.perf_counter()
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        c.add_node(**node)
        c.wait_for_nodes()
        print(f"cluster up in {time.perf_counter() - started:.1f}s at {c.address}")
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        deadline = time.monotonic() + 10
        while _processes_under(tmp) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _processes_under(tmp)
        for pid in left:  # only this cluster's processes, by pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"Ray processes left after shutdown: {left}"


def _open_and_run(config):
    """Open the pipeline once, then run the data checks on that same context: (ctx, report)."""
    from sanitycheck.engine.hookspecs import hookimpl
    from sanitycheck.engine.host import load_host
    from sanitycheck.engine.runner import run
    from sanitycheck.pipeline.context import PipelineContext

    from sanitycheck.engine.progress import listening

    scans: list = []
    with listening(lambda description, event: scans.append(event)):  # what the live display is told
        ctx = PipelineContext.open(config)
    ctx.cache["test:scans"] = scans

    class Opened:
        @hookimpl(tryfirst=True)
        def sanitycheck_open_pipeline(self, config):
            return ctx

    host = load_host(extra_plugins=(Opened(),))
    return ctx, run(config, only=DATA_CHECKS, host=host)


def _findings(report) -> list[dict]:
    """Every finding, less the wall time a scan took (leakage's evidence.seconds): not a result."""
    found = [f.model_dump() for f in report.findings]
    for f in found:
        f["evidence"].pop("seconds", None)
    return found


@pytest.mark.cluster
def test_ray_cluster_gives_the_local_results(cluster, tmp_path):
    from sanitycheck.engine.config import load_config

    (tmp_path / "pipeline.py").write_text(PIPELINE)
    (tmp_path / "sanitycheck.yaml").write_text(
        "data: {train: pipeline:train, val: pipeline:val}\nmodel: pipeline:model\nloss: torch.nn:CrossEntropyLoss\n")
    config = load_config(tmp_path / "sanitycheck.yaml", checks=SETTINGS)
    local_ctx, local = _open_and_run(config)
    ray_config = load_config(config, engine={"name": "ray", "address": cluster.address})
    started = time.perf_counter()
    ray_ctx, distributed = _open_and_run(ray_config)
    print(f"ray engine run: {time.perf_counter() - started:.1f}s")

    shown = [e for e in ray_ctx.cache["test:scans"] if e.description.startswith("data pass")]
    assert shown[0].description == "data pass: train + val (ray, 2 CPUs)" and shown[0].total == 22000
    assert shown[-1].finished and shown[-1].done == 22000  # the distributed pass in the same progress display
    job = ray_ctx.train.reader
    assert job is ray_ctx.val.reader and job.stats["nodes"] == 2 and job.stats["shards"] >= 4, job.stats  # both nodes read
    for name in ("train", "val"):
        ray_pass = getattr(ray_ctx, name).data_pass()
        assert ray_pass.inputs is None and "ray" in ray_pass.inputs_note  # the inputs stayed on the cluster
        _same_pass(getattr(local_ctx, name).data_pass(), ray_pass)
    assert _findings(distributed) == _findings(local)
    assert [c.status for c in distributed.checks] == [c.status for c in local.checks]
    found = {f.code for f in local.findings}
    assert {"SC101", "SC103"} <= found, found  # leaks and duplicates were planted: the comparison is not vacuous
    assert any(f.check == "data-integrity" for f in local.findings)


@pytest.mark.cluster
def test_a_ray_dataset_is_used_as_it_is(cluster, tmp_path):
    """``data.train`` a ray.data.Dataset: its rows are the samples (dicts: input_key/target_key), the pass maps its
    own blocks, and the local engine reads the same rows by index."""
    from sanitycheck.engine.config import load_config

    (tmp_path / "raypipe.py").write_text(textwrap.dedent('''
        import numpy as np
        import ray.data
        import torch

        rng = np.random.default_rng(3)
        x = rng.integers(0, 255, (3000, 1, 12, 12), dtype=np.uint8)
        x[10] = x[20]
        y = rng.integers(0, 4, 3000)


        def train():
            return ray.data.from_numpy(x).zip(ray.data.from_numpy(y)).rename_columns({"data": "image", "data_1": "label"})


        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(144, 4)

            def forward(self, x):
                return self.fc(x.float().flatten(1) / 255)


        def model():
            return Net()


        def loss(out, y):
            return torch.nn.functional.cross_entropy(out, y)
    '''))
    (tmp_path / "sanitycheck.yaml").write_text(
        "data: {train: raypipe:train, input_key: image, target_key: label}\nmodel: raypipe:model\nloss: raypipe:loss\n"
        f"engine: {{name: ray, address: '{cluster.address}'}}\n")
    config = load_config(tmp_path / "sanitycheck.yaml")
    ray_ctx, distributed = _open_and_run(config)
    local_ctx, local = _open_and_run(load_config(config, engine="local"))
    assert type(ray_ctx.train.dataset).__name__ == "RayRows"
    _same_pass(local_ctx.train.data_pass(), ray_ctx.train.data_pass())
    assert ray_ctx.train.data_pass().hashes[10] == ray_ctx.train.data_pass().hashes[20]
    assert _findings(distributed) == _findings(local)


@pytest.mark.cluster
def test_a_dataset_object_from_python_is_shipped_once(cluster):
    """``sanitycheck.run(train=ds)``: no reference to import, so the object goes to the workers through the object
    store; an in-memory TensorDataset's tensor stays the driver's input cache (a view, as with the local engine)."""
    from sanitycheck.engine.config import load_config
    from sanitycheck.faces.api import build_config
    from sanitycheck.pipeline.context import PipelineContext

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (4000, 3, 8, 8), generator=g).float()
    x[9] = x[99]
    config = build_config(train=TensorDataset(x, torch.arange(4000) % 3),
                          model=lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3)),
                          loss=lambda out, y: torch.nn.functional.cross_entropy(out, y), device="cpu")
    config = load_config(config, engine={"name": "ray", "address": cluster.address})
    ctx = PipelineContext.open(config)
    local = PipelineContext.open(load_config(config, engine="local"))
    ray_pass = ctx.train.data_pass()
    assert ctx.train.reader.sources["train"].obj is not None
    assert ray_pass.inputs is not None and np.shares_memory(ray_pass.inputs, x.numpy())
    _same_pass(local.train.data_pass(), ray_pass)



@pytest.mark.cluster
def test_a_sample_that_fails_on_a_worker_is_a_usage_error(cluster, tmp_path):
    """The worker's message comes back as the local engine's would: exit 2 naming the sample, no Ray traceback."""
    from sanitycheck.engine.config import load_config
    from sanitycheck.engine.errors import UsageError
    from sanitycheck.pipeline.context import PipelineContext

    (tmp_path / "broken.py").write_text(textwrap.dedent('''
        import torch
        from torch.utils.data import Dataset


        class Broken(Dataset):
            def __len__(self):
                return 3000

            def __getitem__(self, i):
                if i == 2500:
                    raise OSError("truncated file img_2500.jpg")
                return torch.full((4,), float(i)), i % 2


        def train():
            return Broken()


        def model():
            return torch.nn.Linear(4, 2)
    '''))
    (tmp_path / "sanitycheck.yaml").write_text(
        "data: {train: broken:train}\nmodel: broken:model\nloss: torch.nn:CrossEntropyLoss\n"
        f"engine: {{name: ray, address: '{cluster.address}'}}\n")
    with pytest.raises(UsageError, match="reading sample 2500 raised OSError: truncated file img_2500.jpg") as caught:
        PipelineContext.open(load_config(tmp_path / "sanitycheck.yaml"))
    assert type(caught.value.__cause__).__module__.startswith("ray"), repr(caught.value.__cause__)  # from a worker
