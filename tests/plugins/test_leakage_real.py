"""leakage on real photographs: real CIFAR-10 test images with real-style copies planted (a colour cast, a translation
or a crop resized back, then JPEG-like re-encoding), across and inside splits; real images with nothing planted stay
quiet; the drop list removes every duplicate and keeps one of each group.

The CIFAR-10 images come from the shared benchmark data (../shared/data, see its README); without it these tests
are skipped (the package never needs it). The drop-list test uses scikit-learn's digits and always runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import casekit
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from neardup import jpeg_like  # noqa: E402

DATA = Path(os.environ.get("SANITYCHECK_DATA", ROOT.parent / "shared" / "data"))
CE = "torch.nn:CrossEntropyLoss"


@pytest.fixture(scope="module")
def cifar():
    """Real CIFAR-10 test images (uint8, N x 3 x 32 x 32) with every known duplicate left out (the human list and the
    pairs a reviewer judged duplicates), and their labels."""
    path = DATA / "cifar10_test.npz"
    if not path.exists():
        pytest.skip(f"no CIFAR-10 data at {path}")
    c = np.load(path)
    known = np.loadtxt(DATA / "cifar10_test_duplicates.csv", delimiter=",", skiprows=1)[:, :2].astype(int).ravel()
    reviewed = np.loadtxt(ROOT / "benchmarks" / "data" / "cifar10_test_reviewed_pairs.csv", delimiter=",", skiprows=1,
                          dtype=int)
    known = np.union1d(known, reviewed[reviewed[:, 2] > 0, :2].ravel())
    keep = np.setdiff1d(np.arange(len(c["x_test"])), known)
    return c["x_test"][keep].transpose(0, 3, 1, 2).copy(), c["y_test"][keep]


def real_style_copies(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (n, 3, h, w) -> copies the way real photos get copied: a colour cast, then (cycling) a 1-2 pixel
    translation, a crop of 1-3 pixels per side resized back, or both, then JPEG-like re-encoding."""
    t = torch.from_numpy(x.astype(np.float32) / 255)
    n, c, h, w = t.shape
    gain = torch.from_numpy(rng.uniform(0.85, 1.15, (n, c, 1, 1)).astype(np.float32))
    offset = torch.from_numpy(rng.uniform(-0.06, 0.06, (n, c, 1, 1)).astype(np.float32))
    t = (t * gain + offset).clamp(0, 1)
    out = torch.empty_like(t)
    for i in range(n):
        img = t[i:i + 1]
        if i % 3 in (0, 2):  # translate, edges replicated
            dy, dx = rng.integers(1, 3, 2) * rng.choice([-1, 1], 2)
            pad = torch.nn.functional.pad(img, (2, 2, 2, 2), mode="replicate")
            img = pad[:, :, 2 + dy:2 + dy + h, 2 + dx:2 + dx + w]
        if i % 3 in (1, 2):  # crop, resized back
            top, bottom, left, right = rng.integers(1, 4, 4)
            img = torch.nn.functional.interpolate(img[:, :, top:h - bottom, left:w - right], size=(h, w),
                                                  mode="bilinear", align_corners=False)
        out[i] = img[0]
    out = jpeg_like(out, rng)
    return np.round(out.numpy() * 255).astype(np.uint8)


class ToFloat(torch.nn.Module):
    def forward(self, x):
        return x.float() / 255


def run(run_pipeline, train, val=None, **config):
    model = lambda: torch.nn.Sequential(ToFloat(), torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))  # noqa: E731
    return run_pipeline(only=["leakage"], train=train, val=val, model=model, loss=CE, num_classes=10, **config)


def ds(x, y):
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))


def test_real_style_copies_are_found_across_and_inside_splits(run_pipeline, cifar):
    x, y = cifar
    rng = np.random.default_rng(0)
    tx, ty = x[:2500].copy(), y[:2500].copy()
    vx, vy = x[2500:3100].copy(), y[2500:3100].copy()
    # 40 validation images replaced by copies of training images
    src = rng.choice(2470, 40, replace=False)
    vx[:40], vy[:40] = real_style_copies(tx[src], rng), ty[src]
    # 30 training images (the last 30) replaced by copies of other training images
    inner = rng.choice(np.setdiff1d(np.arange(2470), src), 30, replace=False)
    tx[2470:], ty[2470:] = real_style_copies(tx[inner], rng), ty[inner]
    report = run(run_pipeline, ds(tx, ty), ds(vx, vy))
    assert not report.crashed, report.checks
    sc101 = next(f for f in report.findings if f.code == "SC101")
    assert sc101.severity == "error"
    matched = {r["index"]: r["partner"] for r in sc101.export["SC101"]}
    hits = [i for i in range(40) if matched.get(i) == int(src[i])]
    assert len(hits) >= 36, f"{len(hits)} of 40 validation copies found with their original"
    assert len(set(matched) - set(range(40))) <= 3, "clean validation images flagged"
    sc103 = next(f for f in report.findings if f.code == "SC103" and "train" in f.samples)
    together = {(r["index"], r["partner"]) for r in sc103.export["SC103-train"]}
    found = sum((2470 + j, int(inner[j])) in together or (int(inner[j]), 2470 + j) in together
                or _same_group(sc103.export["SC103-train"], 2470 + j, int(inner[j])) for j in range(30))
    assert found >= 27, f"{found} of 30 copies inside the training split grouped with their original"
    planted = set(range(2470, 2500)) | set(inner.tolist())
    assert len({r["index"] for r in sc103.export["SC103-train"]} - planted) <= 6
    assert "score_histogram" in sc101.evidence and sum(sc101.evidence["score_histogram"]["counts"]) > 0


def _same_group(rows, a, b):
    group = {r["index"]: r["group"] for r in rows}
    return a in group and group.get(a) == group.get(b)


def test_real_images_with_nothing_planted_stay_quiet(run_pipeline, cifar):
    x, y = cifar
    # real photographs: a few pairs still match by chance (look-alike planes on a blue sky), as info
    report = run(run_pipeline, ds(x[:2500], y[:2500]), ds(x[2500:3500], y[2500:3500]))
    loud = [(f.code, f.message) for f in report.findings if f.severity in ("error", "warning")]
    assert not loud, loud


def test_the_drop_list_removes_every_duplicate_and_keeps_one_per_group(run_pipeline):
    (xt, yt), (xv, yv) = casekit.digits(seed=0)
    xt, yt, xv, yv = xt.clone(), yt.clone(), xv.clone(), yv.clone()
    xt[10:14] = xt[5]  # a group of 5 exact copies inside train
    xt[20] = xt[21] * 1.05 + 0.02  # a near pair inside train
    xv[0:3] = xt[5]  # validation copies of that train group: one group across both splits
    xv[3] = xt[30]
    xv[4] = xt[30]  # two validation copies of one training sample
    xv[50:52] = xv[60]  # a group inside val only
    model = lambda: torch.nn.Sequential(torch.nn.Flatten(), casekit.mlp(64, 10))  # noqa: E731
    report = run_pipeline(only=["leakage"], train=TensorDataset(xt, yt), val=TensorDataset(xv, yv), model=model,
                          loss=CE, num_classes=10)
    holder = next(f for f in report.findings if "drop" in f.export)
    drop = holder.export["drop"]
    dropped = {(r["split"], r["index"]) for r in drop}
    assert ("train", 5) not in dropped and {("train", i) for i in range(10, 14)} <= dropped
    assert {("val", 0), ("val", 1), ("val", 2), ("val", 3), ("val", 4)} <= dropped  # train copies are kept
    assert ("train", 30) not in dropped
    assert len(dropped & {("val", 50), ("val", 51), ("val", 60)}) == 2  # one of the val-only group stays
    # every link a finding reported joins two samples of which at most one survives per group
    kept_of = {(r["split"], r["index"]): (r["keep_split"], r["keep_index"]) for r in drop}
    assert all(k not in dropped for k in kept_of.values())
    # after dropping, no duplicate is left
    keep_t = [i for i in range(len(xt)) if ("train", i) not in dropped]
    keep_v = [i for i in range(len(xv)) if ("val", i) not in dropped]
    again = run_pipeline(only=["leakage"], train=TensorDataset(xt[keep_t], yt[keep_t]),
                         val=TensorDataset(xv[keep_v], yv[keep_v]), model=model, loss=CE, num_classes=10)
    left = [f for f in again.findings if f.code in ("SC101", "SC103") and (f.evidence.get("exact", 0)
                                                                             or f.evidence.get("exact_groups", 0))]
    assert not left, [(f.code, f.message) for f in left]
    for f in again.findings:
        if f.code == "SC101":
            assert all(p["kind"] != "exact" for p in f.evidence["pairs"])
