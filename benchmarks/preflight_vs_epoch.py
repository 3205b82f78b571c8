"""What a pre-flight costs next to the training it protects: the whole default suite and ONE epoch of the
pipeline's own training (its loader, its step, a fresh model), timed in the same process, per pipeline.

    python benchmarks/preflight_vs_epoch.py [digits,mnist,gpt,cifar] [--profile default] [--device cpu]
    python benchmarks/preflight_vs_epoch.py neardup [--cleanlab-python /tmp/cleanlab-venv/bin/python]
    python benchmarks/preflight_vs_epoch.py digits --write-costs   # the figures `sanitycheck list` shows

Pipelines (benchmarks/pipelines/): the digits example; PyTorch's examples/mnist conv net on real MNIST
(per-sample Dataset, Adadelta); a 2-layer character-level GPT (``loss: model``, ``task: sequence``; skipped with
a note where this branch's config lacks them); a CIFAR-10-sized pipeline on real CIFAR-10 images (per-sample
Dataset with random crop + flip, five conv+BatchNorm layers, SGD momentum; 50k/10k variants of the 10k real
test images: see pipelines/cifar_sized.py). Beyond the issue's four, by name: ``resnet`` (a small ResNet on
Fashion-MNIST with crop + flip, SGD nesterov, clipping), ``transformer`` (a transformer encoder over MNIST rows,
AdamW, label smoothing), ``frozen`` (a frozen conv backbone and a trained head on Fashion-MNIST: a cheap epoch),
``rnn`` (PyTorch's examples/mnist_rnn: an LSTM over MNIST's rows, Adadelta; an epoch of 4 s).
Each runs in a fresh process, so its peak RSS is its own.
Printed per pipeline: suite seconds (wall and CPU), epoch seconds (torch threads = every available core, as
torch's default gives the user's own training), the ratio suite / epoch, per-check seconds
and the peak RSS after each check, and the load average (other work on a shared machine inflates wall times).

``neardup``: ``leakage`` + ``outliers`` on the 60k CIFAR-sized images behind a per-sample Dataset (no random
augmentation), then cleanlab's ``Datalab`` ``near_duplicate`` issue check on the same images (their 8x8 area-averaged
thumbnails as features: the same representation sanitycheck searches; reading and thumbnailing the images is
*not* counted for cleanlab) in a scratch virtualenv (``python3 -m venv /tmp/cleanlab-venv &&
/tmp/cleanlab-venv/bin/pip install 'cleanlab[datalab]'``: ``Datalab`` needs the extra; never a dependency of ours).
Data: ../shared/data (``SANITYCHECK_DATA`` overrides). Printed: ``sanitycheck_s``, the whole run in a fresh process
(imports, opening, the data pass through ``__getitem__``, both checks) and ``speedup`` against it; ``checks_s``, the two
checks' own seconds after the data pass, timed the way cleanlab is, and ``speedup_checks_only``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

PIPELINES = ("digits", "mnist", "gpt", "cifar")
MODULES = {"digits": "digits", "mnist": "mnist_convnet", "gpt": "char_gpt", "cifar": "cifar_sized",
           # more real-data pipelines written as users write them (not in the list; run by name)
           "resnet": "fmnist_resnet", "transformer": "mnist_transformer", "frozen": "fmnist_frozen",
           "rnn": "mnist_rnn"}


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def child(name: str, args: argparse.Namespace) -> dict:
    import importlib

    module = importlib.import_module(f"pipelines.{MODULES[name]}")
    if hasattr(module, "supported") and module.supported():
        return {"pipeline": name, "skipped": module.supported()}
    import sanitycheck

    config = module.config()
    peaks: dict[str, int] = {}

    def progress(check: str, event) -> None:
        if hasattr(event, "duration_s"):  # a finished CheckResult
            peaks[check] = _peak_mb()

    overrides = {"profile": args.profile, **({"device": args.device} if args.device else {})}
    load_before = os.getloadavg()[0]
    start, cpu = time.perf_counter(), _cpu()
    report = sanitycheck.run(config, progress=progress, **overrides)
    suite, suite_cpu, suite_peak = time.perf_counter() - start, _cpu() - cpu, _peak_mb()
    if args.no_epoch:  # e.g. timing an older sanitycheck's suite (its epoch is the same code)
        return {"pipeline": name, "profile": args.profile, "suite_s": round(suite, 1),
                "suite_cpu_s": round(suite_cpu, 1), "suite_peak_mb": suite_peak, "load_before": round(load_before, 2),
                "load_after": round(os.getloadavg()[0], 2),
                "checks": [{"name": c.name, "status": c.status, "s": round(c.duration_s, 2), "peak_mb": peaks.get(c.name)}
                           for c in report.checks]}
    import torch

    from sanitycheck.engine.threads import cpu_threads

    threads = cpu_threads()  # the epoch runs as the user's training would: torch's default, every available core
    torch.set_num_threads(threads)
    cpu = _cpu()
    ep = module.epoch()
    ep_cpu = _cpu() - cpu
    return {
        "pipeline": name, "profile": args.profile, "suite_s": round(suite, 1), "suite_cpu_s": round(suite_cpu, 1),
        "epoch_s": round(ep["seconds"], 1), "epoch_threads": threads, "epoch_cpu_s": round(ep_cpu, 1), "epoch_steps": ep["steps"],
        "ratio": round(suite / ep["seconds"], 2), "cpu_ratio": round(suite_cpu / max(ep_cpu, 1e-9), 2),
        "suite_peak_mb": suite_peak, "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        "checks": [{"name": c.name, "status": c.status, "s": round(c.duration_s, 2), "peak_mb": peaks.get(c.name)}
                   for c in report.checks],
        "findings": sorted(f"{f.code}:{f.severity}" for f in report.findings if f.severity != "info"),
    }


# ------------------------------------------------------------------------------------------------ neardup

CLEANLAB = r"""
import json, sys, time
import numpy as np
from cleanlab import Datalab
x = np.load(sys.argv[1])  # (n, 32, 32, 3) uint8
f = x.astype(np.float32).reshape(len(x), 8, 4, 8, 4, 3).mean((2, 4)).reshape(len(x), -1)  # 8x8 thumbnails
start = time.perf_counter()
lab = Datalab(data={"label": np.zeros(len(x), dtype=int)}, label_name="label", verbosity=0)
lab.find_issues(features=f, issue_types={"near_duplicate": {}})
seconds = time.perf_counter() - start
issues = lab.get_issues("near_duplicate")
print(json.dumps({"seconds": round(seconds, 2), "flagged": int(issues["is_near_duplicate_issue"].sum())}))
"""


def neardup(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from pipelines import cifar_sized

    tx, ty, vx, vy = cifar_sized.arrays()
    config = {"data": {"train": cifar_sized.CIFAR(tx, ty, train=False), "val": cifar_sized.CIFAR(vx, vy, train=False)},
              "model": cifar_sized.make_model, "loss": torch.nn.CrossEntropyLoss(), "num_classes": 10,
              "batch_size": 128}
    import sanitycheck

    load_before = os.getloadavg()[0]
    start, cpu = time.perf_counter(), _cpu()
    report = sanitycheck.run(config, only=["leakage", "outliers"])
    ours, ours_cpu = time.perf_counter() - start, _cpu() - cpu
    # the checks' own seconds: after the opening and the data pass (reading the 60k images through __getitem__,
    # hashing and thumbnailing them), as cleanlab is timed below (its features given, its imports done)
    checks_s = sum(c.duration_s for c in report.checks)
    out = {"samples": len(tx) + len(vx), "sanitycheck_s": round(ours, 2), "sanitycheck_cpu_s": round(ours_cpu, 2),
           "checks_s": round(checks_s, 2), "peak_mb": _peak_mb(),
           "checks": [(c.name, c.status, c.duration_s) for c in report.checks], "load_before": round(load_before, 2)}
    python = Path(args.cleanlab_python)
    if not python.exists():
        out["cleanlab"] = f"skipped: {python} not found (see the module docstring)"
        return out
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", np.concatenate([tx, vx]))
        (Path(tmp) / "c.py").write_text(CLEANLAB)
        proc = subprocess.run([str(python), str(Path(tmp) / "c.py"), str(Path(tmp) / "x.npy")], capture_output=True,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": str(os.cpu_count())})
    if proc.returncode:
        out["cleanlab"] = f"failed: {proc.stderr[-500:]}"
        return out
    cl = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update({"cleanlab_near_duplicate_s": cl["seconds"], "cleanlab_flagged": cl["flagged"],
                "speedup": round(cl["seconds"] / ours, 2), "speedup_checks_only": round(cl["seconds"] / checks_s, 2),
                "load_after": round(os.getloadavg()[0], 2)})
    return out


# ------------------------------------------------------------------------------------------------ main


def _print(row: dict) -> None:
    if "skipped" in row:
        print(f"{row['pipeline']:<7} skipped: {row['skipped']}")
        return
    if "epoch_s" not in row:
        print(f"{row['pipeline']:<7} suite {row['suite_s']:6.1f} s (CPU {row['suite_cpu_s']:6.1f} s)   peak "
              f"{row['suite_peak_mb']} MB   load {row['load_before']:.2f} -> {row['load_after']:.2f}")
        print("        " + ", ".join(f"{c['name']} {c['s']:.1f}s/{c['peak_mb']}MB" for c in row["checks"]))
        return
    print(f"{row['pipeline']:<7} suite {row['suite_s']:6.1f} s (CPU {row['suite_cpu_s']:6.1f} s)   epoch "
          f"{row['epoch_s']:6.1f} s (CPU {row['epoch_cpu_s']:6.1f} s, {row['epoch_steps']} steps, "
          f"{row['epoch_threads']} threads)   "
          f"ratio {row['ratio']:.2f} (CPU {row['cpu_ratio']:.2f})   peak {row['suite_peak_mb']} MB   "
          f"load {row['load_before']:.2f} -> {row['load_after']:.2f}")
    print("        " + ", ".join(f"{c['name']} {c['s']:.1f}s/{c['peak_mb']}MB" + ("" if c["status"] in
                                   ("passed", "failed") else f" ({c['status']})") for c in row["checks"]))
    if row["findings"]:
        print("        findings above info: " + ", ".join(row["findings"]))


def _write_costs(row: dict) -> None:
    path = ROOT.parent / "sanitycheck" / "faces" / "measured_costs.json"
    where = f"{os.cpu_count()} CPU cores, load {row['load_before']:.1f}"
    data = {"where": where, "command": "python benchmarks/preflight_vs_epoch.py digits --write-costs",
            "checks": {c["name"]: c["s"] for c in row["checks"] if c["status"] != "skipped"}}
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default=",".join(PIPELINES),
                        help="comma-separated pipelines (digits,mnist,gpt,cifar) or 'neardup'")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--device", default=None)
    parser.add_argument("--cleanlab-python", default="/tmp/cleanlab-venv/bin/python")
    parser.add_argument("--json", action="store_true", help="print each result as one JSON line too")
    parser.add_argument("--no-epoch", action="store_true", help="time the suite only")
    parser.add_argument("--write-costs", action="store_true", help="with digits: write each check's seconds to "
                        "sanitycheck/faces/measured_costs.json (what `sanitycheck list` shows)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row = neardup(args) if args.child == "neardup" else child(args.child, args)
        print(json.dumps(row))
        return 0
    names = ["neardup"] if args.what == "neardup" else [n for n in args.what.split(",") if n]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    for name in names:
        cmd = [sys.executable, __file__, "--child", name, "--profile", args.profile,
               "--cleanlab-python", args.cleanlab_python] + (["--device", args.device] if args.device else []) \
            + (["--no-epoch"] if args.no_epoch else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr[-3000:]}")
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        if args.json:
            print(json.dumps(row))
        if name == "neardup":
            print(json.dumps(row, indent=1))
        else:
            _print(row)
        if name == "digits" and args.write_costs and "checks" in row:
            _write_costs(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
