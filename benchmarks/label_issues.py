"""Label issues on real MNIST: sanitycheck's `influence` scan side by side with cleanlab's standard recipe.

The data: the first 20k MNIST training digits with 5% of the labels moved to another class (seeded). Both
tools see the same noisy labels in the same run:

- cleanlab (run in its own interpreter, e.g. a scratch venv: cleanlab is not a dependency of sanitycheck):
  5-fold cross-validated LogisticRegression pred_probs on the raw pixels, then
  `cleanlab.filter.find_label_issues(labels, pred_probs)`.
- sanitycheck: `sanitycheck.run(...)` with only the `influence` check (label scan; TracIn off), wall time of
  the whole run (pipeline materialization, data pass and embedding included).

Prints precision, recall, F1 and seconds for each. Usage:

    python benchmarks/label_issues.py [--mnist ../shared/data/mnist.npz] [--cleanlab-python /tmp/cl/bin/python]
                                      [--n 20000] [--noise 0.05] [--seed 0]

Without the MNIST file it falls back to scikit-learn's digits (same noise), so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLEANLAB_RECIPE = r"""
import json, sys, time, warnings
import numpy as np
warnings.filterwarnings("ignore")
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from cleanlab.filter import find_label_issues
d = np.load(sys.argv[1]); x, y = d["x"], d["y"]
start = time.perf_counter()
pred_probs = cross_val_predict(LogisticRegression(), x, y, cv=5, method="predict_proba")
issues = find_label_issues(labels=y, pred_probs=pred_probs)
print(json.dumps({"flagged": np.flatnonzero(issues).tolist(), "seconds": time.perf_counter() - start}))
"""


def load(path: Path | None, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    if path is not None and path.is_file():
        d = np.load(path)
        return d["x_train"][:n].astype(np.float32) / 255.0, d["y_train"][:n].astype(np.int64), f"MNIST first {n}"
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data.reshape(-1, 8, 8) / 16.0).astype(np.float32), d.target.astype(np.int64), "sklearn digits (fallback)"


def flip(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(y), int(round(fraction * len(y))), replace=False)
    noisy = y.copy()
    noisy[idx] = (y[idx] + rng.integers(1, 10, len(idx))) % 10
    return noisy, idx


def scores(flagged: set[int], truth: set[int]) -> dict[str, float]:
    tp = len(flagged & truth)
    p = tp / max(len(flagged), 1)
    r = tp / max(len(truth), 1)
    return {"flagged": len(flagged), "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(2 * p * r / max(p + r, 1e-12), 3)}


def ours(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[set[int], float, float]:
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from sanitycheck.engine.runner import run

    train = TensorDataset(torch.from_numpy(x[:, None]), torch.from_numpy(y))
    side = x.shape[1]

    def model():
        return nn.Sequential(nn.Flatten(), nn.Linear(side * side, 128), nn.ReLU(), nn.Linear(128, 10))

    start = time.perf_counter()
    report = run({"data": {"train": train}, "model": model, "loss": "torch.nn:CrossEntropyLoss", "num_classes": 10,
                  "seed": seed, "checks": {"influence": {"influential": False}}}, only=["influence"])
    wall = time.perf_counter() - start
    finding = next((f for f in report.findings if f.code == "SC701"), None)
    return set(finding.samples["train"]) if finding else set(), wall, report.checks[0].duration_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/mnist.npz")
    parser.add_argument("--cleanlab-python", default=None, help="an interpreter with cleanlab and scikit-learn")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, y, name = load(args.mnist, args.n)
    noisy, idx = flip(y, args.noise, args.seed)
    truth = set(idx.tolist())
    print(f"data: {name}, {len(y)} samples, {len(truth)} labels flipped ({args.noise:.0%})")
    rows = []
    if args.cleanlab_python:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "data.npz"
            np.savez(path, x=x.reshape(len(x), -1), y=noisy)
            start = time.perf_counter()
            out = subprocess.run([args.cleanlab_python, "-c", CLEANLAB_RECIPE, str(path)], capture_output=True,
                                 text=True, check=True)
            wall = time.perf_counter() - start
            result = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(("cleanlab (5-fold LogisticRegression + find_label_issues)",
                     scores(set(result["flagged"]), truth), result["seconds"], wall))
    flagged, wall, check_s = ours(x, noisy, args.seed)
    rows.append(("sanitycheck influence (label scan)", scores(flagged, truth), check_s, wall))
    print(f"{'method':58} {'flagged':>7} {'prec':>6} {'recall':>6} {'F1':>6} {'method_s':>8} {'wall_s':>7}")
    for label, s, method_s, wall_s in rows:
        print(f"{label:58} {s['flagged']:7d} {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f} "
              f"{method_s:8.1f} {wall_s:7.1f}")
    if len(rows) == 2:
        print(f"time ratio (wall, ours / cleanlab): {rows[1][3] / rows[0][3]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
