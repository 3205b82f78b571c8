"""Scale and accuracy of the `leakage` scan (and the shared data pass, embedding and k-NN it runs on).

Each scenario runs in a fresh process so its peak memory (ru_maxrss) is its own; wall time covers the whole
scan: materializing the splits, the one data pass (hashes + embeddings), the neighbour searches and the check.

    python benchmarks/leakage_scale.py cifar   [--planted 300] [--seed 0] [--kinds colour]   # CIFAR-10-sized set
    python benchmarks/leakage_scale.py mnist   [--planted 300]   # real MNIST: test images planted into train
    python benchmarks/leakage_scale.py growth  [--sizes 10000,100000,1000000]

`cifar`: no CIFAR-10 ships here, so a CIFAR-10-sized set is built from real images: Fashion-MNIST (train
50k / test 10k), padded to 32x32 and turned into 3x32x32 colour images (per-image random tint and a smooth
random background), stored as uint8 like CIFAR. `--planted` validation images are replaced by near copies of
training images (benchmarks/neardup.py: JPEG-like re-encoding, 1-2 px shifts, 1-2 px crops resized back,
brightness/contrast, down-up resizes; half of them re-encoded again; `--kinds` picks others, e.g. colour casts
or the far shifts and crops beyond the aligned look's range). Printed: recall on the planted copies,
flagged clean validation samples (an upper bound on false alarms: Fashion-MNIST has real near duplicates
between its splits), wall seconds, CPU seconds (user + system: less moved by other work on a shared machine), peak RSS. Data from ../shared/data (see its README); synthetic fallback.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SANITYCHECK_DATA", ROOT.parent.parent / "shared" / "data"))
if not DATA.exists():
    DATA = Path("/work/shared/data")


def fashion_arrays():
    rd = lambda f, off: np.frombuffer(gzip.open(DATA / "fashion_mnist" / f).read(), np.uint8, offset=off)  # noqa: E731
    return (rd("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28), rd("train-labels-idx1-ubyte.gz", 8),
            rd("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28), rd("t10k-labels-idx1-ubyte.gz", 8))


def mnist_arrays():
    m = np.load(DATA / "mnist.npz")
    return m["x_train"], m["y_train"], m["x_test"], m["y_test"]


def _colourize(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 28, 28) uint8 -> (n, 3, 32, 32) uint8: a tinted object on a smooth, slightly coloured background."""
    # in chunks, so that building the data does not dominate the peak memory measured for the scan
    return np.concatenate([_colourize_chunk(gray[i:i + 2000], rng) for i in range(0, len(gray), 2000)])


def _colourize_chunk(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(gray)
    g = np.pad(gray.astype(np.float32) / 255, ((0, 0), (2, 2), (2, 2)))
    tint = rng.uniform(0.4, 1.0, (n, 3, 1, 1)).astype(np.float32)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 31
    bg = (rng.uniform(0, 0.3, (n, 3, 1, 1)) + rng.uniform(-0.1, 0.1, (n, 3, 1, 1)) * yy
          + rng.uniform(-0.1, 0.1, (n, 3, 1, 1)) * xx).astype(np.float32)
    img = g[:, None] * tint + (1 - g[:, None]) * bg
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def _smooth_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """n small uint8 images (1x16x16): random 4x4 patterns upsampled, plus noise. Built in chunks by the caller."""
    import torch

    base = torch.from_numpy(rng.random((n, 1, 4, 4)).astype(np.float32))
    x = torch.nn.functional.interpolate(base, size=(16, 16), mode="bilinear").numpy()
    return np.round(np.clip(x + rng.normal(0, 0.03, x.shape).astype(np.float32), 0, 1) * 255).astype(np.uint8)


def _plant(train_x: np.ndarray, val_x: np.ndarray, planted: int, rng: np.random.Generator, kinds: list[str] | None):
    """Replace the first `planted` validation inputs with near copies of random training inputs."""
    import torch

    sys.path.insert(0, str(ROOT))
    from neardup import near_copies

    src = rng.choice(len(train_x), size=planted, replace=False)
    x = torch.from_numpy(train_x[src].astype(np.float32) / 255)
    if x.ndim == 3:
        x = x[:, None]
    copies, used = near_copies(x, rng, kinds)
    copies = np.round(copies.numpy().clip(0, 1) * 255).astype(np.uint8).reshape(val_x[:planted].shape)
    val_x = val_x.copy()
    val_x[:planted] = copies
    return val_x, src, used


def _to_float_module():
    import torch

    class ToFloat(torch.nn.Module):
        """uint8 images -> float in [0, 1], as a user's model or transform would do."""

        def forward(self, x):
            return x.float() / 255

    return ToFloat


def _scan(train_x, train_y, val_x, val_y, only=("leakage",)):
    """Run the checks through the public API; returns (report, seconds)."""
    import torch
    from torch.utils.data import TensorDataset

    import sanitycheck

    flat = int(np.prod(train_x.shape[1:]))
    _ToFloat = _to_float_module()  # noqa: N806
    config = {
        "data": {"train": TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y.astype(np.int64))),
                 "val": TensorDataset(torch.from_numpy(val_x), torch.from_numpy(val_y.astype(np.int64)))},
        "model": lambda: torch.nn.Sequential(_ToFloat(), torch.nn.Flatten(), torch.nn.Linear(flat, 10)),
        "loss": lambda out, y: torch.nn.functional.cross_entropy(out.float(), y),
        "num_classes": 10,
    }
    start, cpu = time.perf_counter(), _cpu_seconds()
    report = sanitycheck.run(config, only=list(only))
    _scan.cpu = _cpu_seconds() - cpu
    return report, time.perf_counter() - start


def _cpu_seconds() -> float:
    """CPU seconds (user + system) this process and its finished children used: unlike wall time, barely moved
    by other work on a shared machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _accuracy(report, planted: int, n_val: int, src: np.ndarray, used: list[str]) -> dict:
    f = next((f for f in report.findings if f.code == "SC101"), None)
    pairs = f.evidence.get("pairs", []) if f else []
    flagged = {p["val"] for p in pairs}
    match = {p["val"]: p["train"] for p in pairs}
    hit = [i for i in range(planted) if i in flagged]
    by_kind: dict[str, list[int]] = {}
    for i in range(planted):
        by_kind.setdefault(used[i], [0, 0])
        by_kind[used[i]][0] += i in flagged
        by_kind[used[i]][1] += 1
    return {
        "recall": round(len(hit) / planted, 4) if planted else None,
        "right_partner": round(sum(match.get(i) == int(src[i]) for i in hit) / max(len(hit), 1), 4),
        "flagged_clean": len(flagged) - len(hit),
        "flagged_clean_rate": round((len(flagged) - len(hit)) / (n_val - planted), 5),
        "severity": f.severity if f else None,
        "cutoff": f.evidence.get("threshold") if f else None,
        "recall_by_transform": {k: f"{a}/{b}" for k, (a, b) in sorted(by_kind.items())},
    }


def _kinds(args: argparse.Namespace) -> list[str] | None:
    return [k for k in args.kinds.split(",") if k] or None


def scenario(name: str, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    if name == "cifar":
        xtr, ytr, xte, yte = fashion_arrays()
        train_x, train_y = _colourize(xtr[:50000], rng), ytr[:50000]
        val_x, val_y = _colourize(xte, rng), yte
        val_x, src, used = _plant(train_x, val_x, args.planted, rng, _kinds(args))
        val_y = val_y.copy()
        val_y[: args.planted] = train_y[src]
    elif name == "mnist":
        # near copies of MNIST *test* images planted into *train*: validation = the real test split
        xtr, ytr, xte, yte = mnist_arrays()
        train_x, train_y, val_x, val_y = xtr.copy(), ytr.copy(), xte, yte
        targets = rng.choice(len(xte), size=args.planted, replace=False)
        slots = rng.choice(len(xtr), size=args.planted, replace=False)
        import torch

        sys.path.insert(0, str(ROOT))
        from neardup import near_copies

        copies, used = near_copies(torch.from_numpy(xte[targets][:, None].astype(np.float32) / 255), rng, _kinds(args))
        train_x[slots] = np.round(copies[:, 0].numpy().clip(0, 1) * 255).astype(np.uint8)
        train_y[slots] = yte[targets]
        # re-order validation so the planted ones come first (the accounting below expects that)
        order = np.concatenate([targets, np.setdiff1d(np.arange(len(xte)), targets)])
        val_x, val_y = val_x[order], val_y[order]
        src = slots
    elif name.startswith("growth:"):
        n = int(name.split(":")[1])
        x = np.concatenate([_smooth_images(min(50000, n + n // 10 - i), rng) for i in range(0, n + n // 10, 50000)])
        y = rng.integers(0, 10, len(x))
        report, seconds = _scan(x[:n], y[:n], x[n:], y[n:], only=("leakage", "outliers"))
        return {"scenario": name, "train": n, "val": n // 10, "seconds": round(seconds, 2), "cpu_s": round(_scan.cpu, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "benchmark_data_mb": round(x.nbytes / 2**20), "load_1min": round(os.getloadavg()[0], 2),
                "checks": [(c.name, c.status, c.duration_s) + ((c.reason,) if c.reason else ()) for c in report.checks]}
    else:
        raise SystemExit(f"unknown scenario {name}")
    report, seconds = _scan(train_x, train_y, val_x, val_y)
    out = {"scenario": name, "train": len(train_x), "val": len(val_x), "planted": args.planted,
           "seconds": round(seconds, 2), "cpu_s": round(_scan.cpu, 2), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           **_accuracy(report, args.planted, len(val_x), src, used)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cifar", "mnist", "growth"])
    parser.add_argument("--planted", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--kinds", default="", help="near-copy kinds to plant, comma-separated (default: the target mix "
                        "of neardup.TRANSFORMS; also colour, far_shift, far_crop)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(scenario(args.child, args)))
        return 0
    names = [f"growth:{s}" for s in args.sizes.split(",")] if args.what == "growth" else [args.what]
    for name in names:
        cmd = [sys.executable, __file__, args.what, "--child", name, "--planted", str(args.planted), "--seed", str(args.seed),
               "--kinds", args.kinds]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:])
            return 1
        print(proc.stdout.strip().splitlines()[-1])
    print(f"load average: {os.getloadavg()[0]:.2f} (2-core machine; other work inflates wall times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
