"""Near duplicates in real photographs: our `leakage` check and the tools a user would pick instead, side by side.

    python benchmarks/near_duplicates.py [--tools ours,cleanlab,fastdup,cleanvision,imagededup-phash,...]
        [--peers-python /tmp/peers/bin/python] [--cleanlab-python /tmp/peers-cl/bin/python]
        [--review-out DIR] [--json FILE] [--clean]

Data (../shared/data, see its README): the 10,000 real CIFAR-10 test images and ciFAIR's 39 human-verified duplicate
pairs inside them. Two settings, as a user meets them:

- **cross**: the 10k split into a "train" and a "val" part (seeded, half each) so that every human pair straddles the
  split (a pair's images on opposite sides); a tool should report those pairs as validation samples duplicated
  in train.
- **in-split**: the 10k as one split; a tool should group each pair's images together.

Metrics, the same for every tool (each tool's output is read as pairs; a set of n images is its n(n-1)/2 pairs):

- *recall*: the fraction of the 39 human pairs whose two images end up in one group of what the tool reported
  (connected through its pairs; cross: its cross-split pairs plus, for tools that report them, pairs inside each
  part). Shown for all 39 and for two halves of them (dev/held-out, split by connected group with a fixed seed: our
  rule was designed without tuning on either; the halves show how much the number moves).
- *precision*: among the flagged images (cross: the images of cross-split pairs), the fraction with at least one
  reported partner that is a real duplicate: a human pair, or a pair outside the human list that a reviewer judged
  a duplicate by looking at it (``benchmarks/data/cifar10_test_reviewed_pairs.csv``: verdict 1 = the same shot
  post-processed, 2 = a very similar shot, 0 = not a duplicate; the review pooled the top pairs of several
  representations and then every tool's flagged pairs, blind to which tool found them). An image with no partner
  known to be a duplicate is judged by its closest partner (8x8 thumbnails); ``unreviewed`` counts those whose
  closest partner was not reviewed, and precision counts them as wrong (a lower bound). ``--review-out DIR``
  writes those pairs as a PNG sheet and a CSV to review.
- *other pairs*: reported pairs that are not in the human list (to eyeball).
- *seconds*: wall time of the tool's own work (ours: the whole `leakage` check through ``sanitycheck.run``, data
  pass included; peers: encoding and searching; writing the PNG folder they read is not counted). Peers run in
  their own virtual environments through a subprocess (``benchmarks/near_duplicates_peers.py``); ours runs here.

``--clean`` adds real train/test splits with no planted copies (MNIST, Fashion-MNIST): how many samples our check
flags there (their real cross-split near duplicates exist, so a few are expected; the point is that the count
does not explode).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SANITYCHECK_DATA", ROOT.parent.parent / "shared" / "data"))
if not DATA.exists():
    DATA = Path("/work/shared/data")
REVIEWED = ROOT / "data" / "cifar10_test_reviewed_pairs.csv"
PEERS = ("cleanlab", "cleanlab-thumbnails", "fastdup", "cleanvision", "imagededup-phash", "imagededup-dhash", "imagededup-whash",
         "imagededup-ahash")


# ------------------------------------------------------------------------------------------------ data


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = np.load(DATA / "cifar10_test.npz")
    pairs = np.loadtxt(DATA / "cifar10_test_duplicates.csv", delimiter=",", skiprows=1)[:, :2].astype(int)
    return c["x_test"], c["y_test"], pairs


def reviewed() -> dict[tuple[int, int], int]:
    out = {}
    if REVIEWED.exists():
        for line in REVIEWED.read_text().splitlines()[1:]:
            a, b, verdict = line.split(",")[:3]
            if verdict.strip():
                out[_key(int(a), int(b))] = int(verdict)
    return out


def _key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def components(links, n: int) -> np.ndarray:
    parent = np.arange(n)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in links:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


def two_split(pairs: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """0 (train) or 1 (val) per image, every human pair straddling (its groups are trees: 2-colourable); the rest
    at random, half each."""
    adj = collections.defaultdict(list)
    for a, b in pairs:
        adj[a].append(b)
        adj[b].append(a)
    side = -np.ones(n, dtype=int)
    rng = np.random.default_rng(seed)
    for s in sorted(adj):
        if side[s] >= 0:
            continue
        side[s] = rng.integers(2)
        stack = [s]
        while stack:
            u = stack.pop()
            for v in adj[u]:
                if side[v] < 0:
                    side[v] = 1 - side[u]
                    stack.append(v)
                elif side[v] == side[u]:
                    raise ValueError("the human pairs do not form a 2-colourable graph")
    rest = side < 0
    side[rest] = rng.integers(0, 2, int(rest.sum()))
    return side


def halves(pairs: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """0 (dev) or 1 (held-out) per human pair, by connected group (pairs sharing an image stay together)."""
    comp = components(pairs, n)
    groups = sorted({comp[a] for a, _ in pairs})
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    held = set(groups[len(groups) // 2:])
    return np.array([int(comp[a] in held) for a, _ in pairs])


# ------------------------------------------------------------------------------------------------ tools


def run_ours(x: np.ndarray, y: np.ndarray, side: np.ndarray, settings: dict | None = None) -> dict:
    """Our `leakage` check through the public API: the cross setting, then the in-split one."""
    import torch
    from torch.utils.data import TensorDataset

    import sanitycheck

    class ToFloat(torch.nn.Module):
        def forward(self, t):
            return t.float() / 255

    def model():
        return torch.nn.Sequential(ToFloat(), torch.nn.Flatten(), torch.nn.Linear(int(np.prod(x.shape[1:])), 10))

    def ds(idx):
        return TensorDataset(torch.from_numpy(np.ascontiguousarray(x[idx].transpose(0, 3, 1, 2))),
                             torch.from_numpy(y[idx].astype(np.int64)))

    def scan(train_idx, val_idx):
        start = time.perf_counter()
        report = sanitycheck.run({"data": {"train": ds(train_idx), "val": ds(val_idx) if val_idx is not None else None},
                                  "model": model, "loss": "torch.nn:CrossEntropyLoss", "num_classes": 10,
                                  "checks": {"leakage": settings or {}}}, only=["leakage"])
        return report, time.perf_counter() - start

    tr, va = np.flatnonzero(side == 0), np.flatnonzero(side == 1)
    ids = {"train": tr, "val": va}
    report, cross_seconds = scan(tr, va)
    cross, inside = [], []
    for f in report.findings:
        for name, rows in f.export.items():
            if name == "SC101":
                cross += [(int(va[r["index"]]), int(tr[r["partner"]])) for r in rows]
            elif name.startswith("SC103-"):
                m = ids[name.split("-", 1)[1]]
                inside += [(int(m[r["index"]]), int(m[r["partner"]])) for r in rows]
    every = np.arange(len(x))
    report, in_seconds = scan(every, None)
    whole = [(int(r["index"]), int(r["partner"])) for f in report.findings for name, rows in f.export.items()
             if name.startswith("SC103-") for r in rows]
    histogram = next((f.evidence.get("score_histogram") for f in report.findings if f.code == "SC103"), None)
    return {"cross": cross, "cross_inside": inside, "cross_seconds": cross_seconds, "in_split": whole,
            "in_split_seconds": in_seconds, "histogram": histogram,
            "note": "leakage check, defaults (plain, aligned and colour looks)"}


def run_peer(tool: str, python: str, images: Path, work: Path, timeout: int) -> dict:
    cmd = [python, str(ROOT / "near_duplicates_peers.py"), tool, str(images), str(work)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return {"error": f"{python} not found (create the peers' venv, see the module docstring)"}
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    out = json.loads(lines[-1])
    pairs = [tuple(p) for p in out["pairs"]]
    return {"pairs": pairs, "seconds": out["seconds"], "note": out["note"]}


# ------------------------------------------------------------------------------------------------ metrics


def thumbs(x: np.ndarray) -> np.ndarray:
    """Centred, unit 8x8 thumbnails: which of an image's partners is closest, to review that one."""
    t = x.reshape(len(x), 8, 4, 8, 4, 3).astype(np.float32).mean((2, 4)).reshape(len(x), -1)
    t -= t.mean(1, keepdims=True)
    return t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-6)


def evaluate(links, scope_links, human: np.ndarray, half: np.ndarray, labels: dict, n: int,
             near: np.ndarray | None = None) -> dict:
    """``links``: everything the tool reported (groups are formed over them); ``scope_links``: the pairs whose
    images are judged for precision (cross: the cross-split ones)."""
    comp = components(links, n)
    found = np.array([comp[a] == comp[b] for a, b in human])
    hs = {_key(int(a), int(b)) for a, b in human}
    partners: dict[int, set[int]] = collections.defaultdict(set)
    for a, b in scope_links:
        if a != b:
            partners[int(a)].add(int(b))
            partners[int(b)].add(int(a))
    correct = unknown = 0
    unresolved = []
    for s, ps in partners.items():
        verdicts = [1 if _key(s, t) in hs else labels.get(_key(s, t), -1) for t in ps]
        if any(v > 0 for v in verdicts):
            correct += 1
            continue
        # no partner known to be a duplicate: judged by its closest partner (if that one is no duplicate, the
        # others hardly are); unreviewed while that one is
        ps = list(ps)
        closest = min(ps, key=lambda t: float(np.sum((near[s] - near[t]) ** 2))) if near is not None else ps[0]
        if _key(s, closest) not in hs and _key(s, closest) not in labels:
            unknown += 1
            unresolved.append(_key(s, closest))
    flagged = len(partners)
    pairs = {_key(int(a), int(b)) for a, b in scope_links if a != b}
    return {"recall": round(float(found.mean()), 3), "recall_dev": round(float(found[half == 0].mean()), 3),
            "recall_held_out": round(float(found[half == 1].mean()), 3), "found": int(found.sum()),
            "flagged": flagged, "precision": round(correct / flagged, 3) if flagged else None,
            "unreviewed": unknown, "other_pairs": len(pairs - hs), "unresolved": sorted(set(unresolved))}


def review_sheet(x: np.ndarray, pairs: list[tuple[int, int]], out: Path) -> None:
    """The unreviewed pairs as a PNG sheet (row-major, 4 pairs a row) and a CSV to fill in."""
    sys.path.insert(0, str(ROOT.parent))
    from sanitycheck.probing.thumbnails import _png

    out.mkdir(parents=True, exist_ok=True)
    (out / "to_review.csv").write_text("a,b,verdict\n" + "".join(f"{a},{b},\n" for a, b in pairs))
    for k in range(0, len(pairs), 40):
        chunk = pairs[k:k + 40]
        tiles = [np.concatenate([x[a], np.full((32, 4, 3), 255, np.uint8), x[b]], 1) for a, b in chunk]
        tiles = [np.repeat(np.repeat(t, 3, 0), 3, 1) for t in tiles]
        h, w = tiles[0].shape[:2]
        rows = (len(tiles) + 3) // 4
        sheet = np.full((rows * (h + 8), 4 * (w + 16), 3), 128, np.uint8)
        for i, t in enumerate(tiles):
            r, c = divmod(i, 4)
            sheet[r * (h + 8):r * (h + 8) + h, c * (w + 16):c * (w + 16) + w] = t
        (out / f"to_review_{k // 40:02d}.png").write_bytes(_png(sheet))


def sheet(x: np.ndarray, pairs: list[tuple[int, int]], path: Path, per_row: int = 6) -> None:
    """Pairs side by side (3x), ``per_row`` pairs a row, as one PNG."""
    sys.path.insert(0, str(ROOT.parent))
    from sanitycheck.probing.thumbnails import _png

    if not pairs:
        return
    tiles = [np.concatenate([x[a], np.full((32, 3, 3), 255, np.uint8), x[b]], 1) for a, b in pairs]
    tiles = [np.repeat(np.repeat(t, 3, 0), 3, 1) for t in tiles]
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + per_row - 1) // per_row
    out = np.full((rows * (h + 8), per_row * (w + 12), 3), 200, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, per_row)
        out[r * (h + 8):r * (h + 8) + h, c * (w + 12):c * (w + 12) + w] = t
    path.write_bytes(_png(out))


def figures(x: np.ndarray, human: np.ndarray, labels: dict, ours: dict, folder: Path) -> dict:
    """Our in-split result as pictures: the pairs outside the human list that a reviewer judged duplicates (the
    list's gaps), those judged not duplicates (our false alarms), the human pairs we did not group, and the
    score histogram with its cutoff (SVG, as the HTML report draws it)."""
    folder.mkdir(parents=True, exist_ok=True)
    hs = {_key(int(a), int(b)) for a, b in human}
    links = sorted({_key(a, b) for a, b in ours["in_split"] if a != b})
    extra = [p for p in links if p not in hs and labels.get(p, -1) > 0]
    false = [p for p in links if p not in hs and labels.get(p, -1) == 0]
    comp = components(ours["in_split"], len(x))
    missed = [(int(a), int(b)) for a, b in human if comp[a] != comp[b]]
    sheet(x, extra, folder / "neardup-found-beyond-the-list.png")
    sheet(x, false, folder / "neardup-false-alarms.png")
    sheet(x, missed, folder / "neardup-missed-human-pairs.png")
    if ours.get("histogram"):
        sys.path.insert(0, str(ROOT.parent))
        from sanitycheck.faces.report.html import score_chart

        svg = score_chart(ours["histogram"], "SC103: scores and cutoff")
        start, end = svg.index("<svg"), svg.index("</svg>") + len("</svg>")
        (folder / "neardup-score-histogram.svg").write_text(svg[start:end])
    return {"beyond_the_list": len(extra), "false_alarms": len(false), "missed": missed}


def clean_splits() -> list[dict]:
    """Our check on real train/test splits with nothing planted: flagged counts per finding."""
    import torch
    from torch.utils.data import TensorDataset

    import sanitycheck
    from leakage_scale import fashion_arrays, mnist_arrays

    class ToFloat(torch.nn.Module):
        def forward(self, t):
            return t.float() / 255

    out = []
    for name, get in (("mnist", mnist_arrays), ("fashion-mnist", fashion_arrays)):
        xtr, ytr, xte, yte = get()
        ds = lambda a, b: TensorDataset(torch.from_numpy(a[:, None].copy()), torch.from_numpy(b.astype(np.int64)))  # noqa: E731
        start = time.perf_counter()
        report = sanitycheck.run({"data": {"train": ds(xtr, ytr), "val": ds(xte, yte)},
                                  "model": lambda: torch.nn.Sequential(ToFloat(), torch.nn.Flatten(), torch.nn.Linear(784, 10)),
                                  "loss": "torch.nn:CrossEntropyLoss", "num_classes": 10}, only=["leakage"])
        seconds = time.perf_counter() - start
        out.append({"data": name, "seconds": round(seconds, 1),
                    "findings": [{"code": f.code, "severity": f.severity, "message": f.message,
                                  "rows": {table: len(rows) for table, rows in f.export.items()}}
                                 for f in report.findings]})
    return out


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default="ours," + ",".join(PEERS))
    parser.add_argument("--peers-python", default="/tmp/peers/bin/python")
    parser.add_argument("--cleanlab-python", default="/tmp/peers-cl/bin/python",
                        help="cleanlab's Datalab needs pyarrow with NumPy 2, fastdup pins NumPy 1: two venvs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--review-out", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--clean", action="store_true")
    parser.add_argument("--figures", type=Path, help="write our in-split result as pictures here (docs/img)")
    parser.add_argument("--reuse", type=Path, help="keep each peer's answer in this folder and reuse it on the next "
                        "run (to review pairs or change the metrics without running the slow tools again)")
    parser.add_argument("--ours-settings", default="{}", help="checks.leakage settings for ours, as JSON")
    args = parser.parse_args()

    x, y, human = load()
    n = len(x)
    side = two_split(human, n, args.seed)
    half = halves(human, n)
    labels = reviewed()
    near = thumbs(x)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images.npy"
        np.save(images, x)
        for tool in [t for t in args.tools.split(",") if t]:
            print(f"running {tool} ...", file=sys.stderr, flush=True)
            if tool == "ours":
                r = run_ours(x, y, side, json.loads(args.ours_settings))
                if args.figures:
                    print("figures:", json.dumps(figures(x, human, labels, r, args.figures)), file=sys.stderr)
                cross_links = r["cross"]
                every = r["cross"] + r["cross_inside"]
                row = {"tool": "ours", "note": r["note"], "seconds_cross": round(r["cross_seconds"], 1),
                       "seconds_in_split": round(r["in_split_seconds"], 1),
                       "cross": evaluate(every, cross_links, human, half, labels, n, near),
                       "in_split": evaluate(r["in_split"], r["in_split"], human, half, labels, n, near)}
            else:
                python = args.cleanlab_python if tool.startswith("cleanlab") else args.peers_python
                cached = args.reuse / f"{tool}.json" if args.reuse else None
                if cached is not None and cached.exists():
                    r = json.loads(cached.read_text())
                    r["pairs"] = [tuple(p) for p in r.get("pairs", [])]
                else:
                    r = run_peer(tool, python, images, Path(tmp) / tool, args.timeout)
                    if cached is not None and "error" not in r:
                        cached.parent.mkdir(parents=True, exist_ok=True)
                        cached.write_text(json.dumps(r))
                if "error" in r:
                    results.append({"tool": tool, "error": r["error"]})
                    continue
                cross_links = [p for p in r["pairs"] if side[p[0]] != side[p[1]]]
                row = {"tool": tool, "note": r["note"], "seconds_cross": r["seconds"], "seconds_in_split": r["seconds"],
                       "cross": evaluate(r["pairs"], cross_links, human, half, labels, n, near),
                       "in_split": evaluate(r["pairs"], r["pairs"], human, half, labels, n, near)}
            results.append(row)
            print(json.dumps({k: v for k, v in row.items()}, default=str)[:600], file=sys.stderr, flush=True)
    print(table(results), flush=True)
    clean = clean_splits() if args.clean else None
    if clean:
        print("\nclean real splits (nothing planted):")
        for c in clean:
            print(json.dumps(c))
    print(f"\nload average: {os.getloadavg()[0]:.2f} (2-core machine; other work inflates wall times)")
    if args.review_out:
        # the tools whose flags can be reviewed (one flagging most of the data is wrong on its face)
        todo = sorted({p for r in results if "cross" in r and r["in_split"]["flagged"] < n // 10
                       for s in ("cross", "in_split") for p in r[s]["unresolved"]})
        if todo:
            review_sheet(x, todo, args.review_out)
            print(f"{len(todo)} unreviewed pairs written to {args.review_out}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "clean": clean}, indent=1, default=str))
    return 0


def table(results: list[dict]) -> str:
    head = ("| tool | cross: recall (dev / held-out) | cross: precision | cross: other pairs | in-split: recall "
            "(dev / held-out) | in-split: precision | in-split: other pairs | seconds (cross / in-split) |\n"
            "|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['tool']} | could not run: {r['error']} |||||||")
            continue
        c, i = r["cross"], r["in_split"]

        def prec(m):
            if m["precision"] is None:
                return "-"
            return f"{m['precision']:.2f} of {m['flagged']}" + (f" ({m['unreviewed']} unreviewed)" if m["unreviewed"] else "")

        lines.append(f"| {r['tool']} | {c['recall']:.2f} ({c['recall_dev']:.2f} / {c['recall_held_out']:.2f}) | "
                     f"{prec(c)} | {c['other_pairs']} | {i['recall']:.2f} ({i['recall_dev']:.2f} / "
                     f"{i['recall_held_out']:.2f}) | {prec(i)} | {i['other_pairs']} | "
                     f"{r['seconds_cross']} / {r['seconds_in_split']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
