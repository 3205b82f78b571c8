"""The data scans on one process (`engine: local`) and on a Ray cluster (`engine: ray`), and what 100M samples would take.

    python benchmarks/scale_out.py [--sizes 1000000] [--workers 2] [--engines local,ray] [--checks leakage,outliers]

The case is leakage_scale.py's growth case (n smooth 1x16x16 uint8 pictures for train, n/10 for val, random labels),
stored as .npy files and read the way a user's Dataset reads files: a map-style Dataset in a pipeline module that
memory-maps them and returns one uint8 tensor per `__getitem__` (each Ray worker imports the module and opens its own
memory map, as DataLoader workers do). Each engine runs in a fresh process (its own peak memory), through the CLI's
code path (`sanitycheck.run` on a config file). `ray` starts a private cluster on this machine: a head and
`--workers - 1` more nodes, 1 CPU each (ray.cluster_utils.Cluster), stopped afterwards.

Printed per engine: wall seconds of the whole scan (open + data pass + checks), seconds of the data pass alone, the
driver's peak RSS (ru_maxrss of the driver process only: Ray's workers and object store are other processes), the
1-minute load average, and whether the findings equal the local engine's. Then the paper estimate: per-worker
throughput of the data pass measured on one shard (in this process, one core), and what 100M samples need on N
workers (the pass scales with workers; the driver's merge and the neighbour search do not).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent

PIPELINE = textwrap.dedent('''
    """The growth case as files: a map-style Dataset over memory-mapped .npy arrays (uint8 pictures, int labels)."""
    from pathlib import Path

    import numpy as np
    import torch
    from torch.utils.data import Dataset

    HERE = Path(__file__).resolve().parent


    class Pictures(Dataset):
        def __init__(self, split):
            self.split = split
            self.x = self.y = None  # opened lazily: in each process that reads (a Ray worker, a DataLoader worker)
            self.n = len(np.load(HERE / f"{split}_y.npy", mmap_mode="r"))

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            if self.x is None:
                self.x = np.load(HERE / f"{self.split}_x.npy", mmap_mode="r")
                self.y = np.load(HERE / f"{self.split}_y.npy", mmap_mode="r")
            return torch.from_numpy(np.array(self.x[i])), int(self.y[i])


    class ToFloat(torch.nn.Module):
        def forward(self, x):
            return x.float() / 255


    def train():
        return Pictures("train")


    def val():
        return Pictures("val")


    def model():
        return torch.nn.Sequential(ToFloat(), torch.nn.Flatten(), torch.nn.Linear(256, 10))
''')


def build(n: int, folder: Path, seed: int = 0) -> None:
    """The growth case's data (leakage_scale.py) as .npy files plus the pipeline module and its config."""
    sys.path.insert(0, str(ROOT))
    from leakage_scale import _smooth_images

    rng = np.random.default_rng(seed)
    total = n + n // 10
    x = np.lib.format.open_memmap(folder / "all_x.npy", mode="w+", dtype=np.uint8, shape=(total, 1, 16, 16))
    for lo in range(0, total, 50000):
        x[lo:lo + 50000] = _smooth_images(min(50000, total - lo), rng)
    y = rng.integers(0, 10, total)
    np.save(folder / "train_x.npy", x[:n])
    np.save(folder / "val_x.npy", x[n:])
    np.save(folder / "train_y.npy", y[:n])
    np.save(folder / "val_y.npy", y[n:])
    del x
    (folder / "all_x.npy").unlink()
    (folder / "pipeline.py").write_text(PIPELINE)
    (folder / "sanitycheck.yaml").write_text(
        "data: {train: pipeline:train, val: pipeline:val}\nmodel: pipeline:model\nloss: torch.nn:CrossEntropyLoss\n"
        "num_classes: 10\n")


def child(engine: str, folder: Path, workers: int, checks: list[str]) -> dict:
    """One engine's scan, in this (fresh) process."""
    import sanitycheck
    from sanitycheck.engine.config import load_config

    cluster = None
    overrides = {}
    if engine == "ray":
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        for _ in range(workers - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        overrides["engine"] = {"name": "ray", "address": cluster.address}
    try:
        seen = {}

        def progress(name, event):  # the data pass's own seconds, from its progress events
            if getattr(event, "description", "").startswith("data pass"):
                seen.setdefault(event.description, [time.perf_counter(), None])
                if event.finished:
                    seen[event.description][1] = time.perf_counter()

        cfg = load_config(folder / "sanitycheck.yaml", **overrides)
        start = time.perf_counter()
        report = sanitycheck.run(cfg, only=checks, progress=progress)
        seconds = time.perf_counter() - start
    finally:
        if cluster is not None:
            import ray

            ray.shutdown()
            cluster.shutdown()
    findings = [f.model_dump(mode="json") for f in report.findings]
    for f in findings:
        f["evidence"].pop("seconds", None)
    return {
        "engine": engine, "workers": workers if engine == "ray" else 1, "seconds": round(seconds, 1),
        "data_pass_s": round(sum(b - a for a, b in seen.values() if b), 1),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_1min": round(os.getloadavg()[0], 2),
        "checks": [(c.name, c.status, c.duration_s) for c in report.checks],
        "findings": findings,
    }


def shard_throughput(folder: Path, samples: int = 16384) -> float:
    """Samples per second of one worker on one shard (read + hash + statistics + features), in this process."""
    sys.path.insert(0, str(folder))
    import pipeline

    from sanitycheck.pipeline.data import materialize
    from sanitycheck.pipeline.ray_engine import read_shard

    split = materialize(pipeline.train(), "train", max_samples=None, memory_mb=0, input_key=None, target_key=None)
    hi = min(split.n, samples)
    read_shard(split, 0, min(hi, 1024))  # warm up (imports, page cache)
    start = time.perf_counter()
    read_shard(split, 0, hi)
    return hi / (time.perf_counter() - start)


def estimate(rate: float, n: int = 100_000_000, dim: int = 64) -> list[str]:
    """The paper estimate of ``n`` samples: the pass on N workers (each at ``rate`` samples/s), and the driver's part."""
    per_sample = 8 + 7 * 8 + 1 + 8 + 4 * 8 + 4 * dim  # hash, statistics, flag, target, shape/dtype refs, features
    lines = [f"per-worker data pass throughput (one shard, one core, this machine): {rate:,.0f} samples/s",
             f"driver memory for the merged results of {n:,} samples: {per_sample * n / 2**30:,.0f} GiB "
             f"({per_sample} B/sample with {dim}-dim float32 features; 3-channel images, 192 dims: "
             f"{(per_sample + 4 * 128) * n / 2**30:,.0f} GiB); the neighbour search's index about as much again"]
    for workers in (2, 16, 64, 256):
        lines.append(f"  {n:,} samples on {workers:>3} workers: data pass ~{n / (rate * workers) / 60:7.1f} min "
                     f"(+ about a minute of worker start-up; I/O from shared storage not included)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--checks", default="leakage,outliers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    checks = args.checks.split(",")
    if args.child:
        print(json.dumps(child(args.child, Path(args.folder), args.workers, checks)))
        return 0
    for n in map(int, args.sizes.split(",")):
        folder = Path(tempfile.mkdtemp(prefix="scale-out-"))
        try:
            build(n, folder)
            results = {}
            for engine in args.engines.split(","):
                env = {**os.environ}
                if engine == "ray":  # the private cluster's files under the benchmark's folder, removed with it
                    env.update(RAY_TMPDIR=str(folder), RAY_USAGE_STATS_ENABLED="0")
                    env.pop("RAY_ADDRESS", None)
                proc = subprocess.run([sys.executable, __file__, "--child", engine, "--folder", str(folder),
                                       "--workers", str(args.workers), "--checks", args.checks],
                                      capture_output=True, text=True, env=env)
                if proc.returncode:
                    print(proc.stderr[-3000:])
                    return 1
                results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
            base = results.get("local")
            for engine, r in results.items():
                same = None if base is None or engine == "local" else r["findings"] == base["findings"]
                print(json.dumps({"train": n, "val": n // 10, **{k: v for k, v in r.items() if k != "findings"},
                                  "findings": len(r["findings"]), "same_findings_as_local": same}))
            for line in estimate(shard_throughput(folder)):
                print(line)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"load average: {os.getloadavg()[0]:.2f} (2-core machine; other work inflates wall times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
