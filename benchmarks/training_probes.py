"""Time budgets and seed sweeps of the training probes (label-shuffle, overfit-batch, gradients,
batch-independence). Run by hand; prints figures, asserts nothing.

    python benchmarks/training_probes.py budgets [MNIST_NPZ]   # digits example, real MNIST (when the file
                                                               # exists), a CIFAR-10-sized synthetic pipeline
    python benchmarks/training_probes.py sweep [SEEDS]  # clean pipelines quiet, planted bugs found, per seed

Budgets (issue 4): at the default profile the four probes together take <= 20 s on the digits example and
<= 60 s on a CIFAR-10-sized pipeline (50 000 + 10 000 images 3x32x32, a small CNN) on a 2-core machine.
The CIFAR-sized data is synthetic: a fixed random template per class plus noise (learnable, like the real
thing, so the probes' decisions are exercised, not only their speed). Each row gives the probes' own
seconds (from the report) and the whole run's (the data pass over 60 000 images included).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "cases"))
import casekit  # noqa: E402
import probekit  # noqa: E402

PROBES = ["label-shuffle", "overfit-batch", "gradients", "batch-independence"]


def cifar_sized(n_train: int = 50_000, n_val: int = 10_000, seed: int = 0):
    """Synthetic CIFAR-10-shaped data: class template (smooth, 3x32x32) + Gaussian noise, float32."""
    g = torch.Generator().manual_seed(seed)
    templates = nn.functional.avg_pool2d(torch.randn(10, 3, 32, 32, generator=g), 5, 1, 2) * 3

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        return templates[y] + torch.randn(n, 3, 32, 32, generator=g), y

    return make(n_train), make(n_val)


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )


def timed(config, label: str, profile: str = "default") -> None:
    from sanitycheck.engine.runner import run

    start = time.perf_counter()
    report = run(config, only=PROBES, profile=profile)
    total = time.perf_counter() - start
    probe_s = sum(c.duration_s for c in report.checks)
    per = ", ".join(f"{c.name} {c.duration_s:.1f}" for c in report.checks)
    loud = [f"{f.code}" for f in report.findings if f.severity != "info"]
    print(f"{label:<34} {profile:<8} probes {probe_s:6.1f} s  whole run {total:6.1f} s  [{per}]  "
          f"findings: {', '.join(loud) or 'none above info'}")


def budgets(mnist: Path) -> None:
    print(f"load average {os.getloadavg()}, torch threads {torch.get_num_threads()}")
    timed(ROOT.parent / "examples" / "digits" / "clean" / "sanitycheck.yaml", "digits example (MLP)")
    if mnist.is_file():  # real MNIST, 60 000 + 10 000 images, an MLP (skipped when the file is absent)
        data = np.load(mnist)
        as_set = lambda x, y: casekit.dataset(torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255),  # noqa: E731
                                              torch.from_numpy(y.astype(np.int64)))
        timed({"data": {"train": as_set(data["x_train"], data["y_train"]), "val": as_set(data["x_test"], data["y_test"])},
               "model": lambda: casekit.mlp(784, 10, hidden=128), "loss": probekit.CE}, "MNIST (MLP 784-128-10)")
    (xt, yt), (xv, yv) = cifar_sized()
    config = {"data": {"train": casekit.dataset(xt, yt), "val": casekit.dataset(xv, yv)}, "model": small_cnn,
              "loss": probekit.CE}
    for profile in ("fast", "default"):
        timed(config, "CIFAR-10-sized (small CNN)", profile)


def sweep(seeds: int) -> None:
    from sanitycheck.engine.runner import run

    print(f"load average {os.getloadavg()}; default profile; {seeds} seeds each")
    rows = []
    for kind in probekit.KINDS:
        loud, seconds = 0, 0.0
        for seed in range(seeds):
            spec = probekit.clean(kind, seed)
            start = time.perf_counter()
            report = run({"data": {"train": spec.pop("train"), "val": spec.pop("val")}, **spec}, only=PROBES)
            seconds += time.perf_counter() - start
            loud += sum(f.severity != "info" for f in report.findings)
        rows.append((f"clean {kind}", f"{loud} warnings/errors", seconds / seeds))
    planted = {
        "permuted labels -> SC201": ("label-shuffle", "SC201", lambda s: _digits(s, labels=probekit.permuted)),
        "constant inputs -> SC204": ("label-shuffle", "SC204", lambda s: _digits(s, inputs=lambda x: x * 0 + 0.5)),
        "side-channel labels -> SC202": ("label-shuffle", "SC202", lambda s: {
            **_digits(s, train=lambda x, y: probekit.WithTrueLabels(x, y)),
            "train_step": probekit.step_reading_side_labels}),
        "no optimizer.step() -> SC304": ("overfit-batch", "SC304", lambda s: {
            **_digits(s), "train_step": probekit.step_without_optimizer_step}),
        "softmax before CE -> SC301": ("overfit-batch", "SC301", lambda s: {**_digits(s), "model": probekit.softmax_mlp}),
        "all frozen -> SC1002": ("gradients", "SC1002", lambda s: {**_digits(s), "model": probekit.frozen_mlp}),
        "SGD lr 10 -> SC303": ("overfit-batch", "SC303", lambda s: {
            **_digits(s), "optimizer": {"target": "torch.optim:SGD", "lr": 10.0}}),
        "batch-mixing reshape -> SC1101": ("batch-independence", "SC1101", lambda s: {
            **_digits(s), "model": probekit.mixing_mlp}),
    }
    for label, (check, code, build) in planted.items():
        found, seconds = 0, 0.0
        for seed in range(seeds):
            start = time.perf_counter()
            report = run(build(seed), only=[check])
            seconds += time.perf_counter() - start
            found += any(f.code == code for f in report.findings)
        rows.append((label, f"found {found}/{seeds}", seconds / seeds))
    for label, result, seconds in rows:
        print(f"{label:<34} {result:<22} {seconds:6.2f} s/run")


def _digits(seed, labels=None, inputs=None, train=None):
    (xt, yt), (xv, yv) = casekit.digits(seed=seed)
    if labels is not None:
        yt = labels(yt, seed)
    if inputs is not None:
        xt, xv = inputs(xt), inputs(xv)
    return {"data": {"train": (train or casekit.dataset)(xt, yt), "val": casekit.dataset(xv, yv)},
            "model": lambda: casekit.mlp(64, 10), "loss": probekit.CE, "seed": seed}


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "budgets"
    if what == "budgets":
        budgets(Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT.parent.parent / "shared" / "data" / "mnist.npz")
    elif what == "sweep":
        sweep(int(sys.argv[2]) if len(sys.argv) > 2 else 5)
    else:
        raise SystemExit(__doc__)
