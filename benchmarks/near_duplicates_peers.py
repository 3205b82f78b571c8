"""Peer tools for benchmarks/near_duplicates.py, run in their own virtual environment (never our dependencies).

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install 'cleanlab[datalab]' fastdup imagededup cleanvision
    /tmp/peers/bin/python benchmarks/near_duplicates_peers.py TOOL IMAGES.npy WORKDIR

Reads ``IMAGES.npy`` ((n, 32, 32, 3) uint8), runs one tool with its documented defaults on all n images and prints
one JSON line: ``{"tool", "seconds", "pairs": [[i, j], ...], "note"}`` — every pair of images the tool reports
as (near) duplicates (sets are expanded to their pairs). ``seconds`` is the tool's own work (for tools that read
files: encoding the folder and searching it; the PNG folder is written beforehand, untimed). Nothing is downloaded:
fastdup's model ships inside its wheel; imagededup's CNN needs downloaded weights and is not run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

os.environ.setdefault("SENTRY_OPT_OUT", "1")  # fastdup telemetry (no network here anyway)


def _folder(images: np.ndarray, work: Path) -> Path:
    """The images as PNG files 00000.png ... (written once, untimed)."""
    from PIL import Image

    folder = work / "images"
    if not (folder / f"{len(images) - 1:05d}.png").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(images):
            Image.fromarray(im).save(folder / f"{i:05d}.png")
    return folder


def _index(path: str) -> int:
    return int(Path(path).stem)


def _set_pairs(sets) -> list[tuple[int, int]]:
    out = set()
    for s in sets:
        for a, b in combinations(sorted(int(i) for i in s), 2):
            out.add((a, b))
    return sorted(out)


def cleanlab_pixels(images: np.ndarray, work: Path) -> tuple[list, str]:
    """cleanlab Datalab's near_duplicate issue on raw pixels (no pretrained features can be downloaded here)."""
    from cleanlab import Datalab

    feats = images.reshape(len(images), -1).astype(np.float32) / 255
    lab = Datalab(data={"label": np.zeros(len(images), dtype=int)}, label_name="label", verbosity=0)
    lab.find_issues(features=feats, issue_types={"near_duplicate": {}})
    sets = lab.get_info("near_duplicate")["near_duplicate_sets"]
    return _set_pairs([[i, *s] for i, s in enumerate(sets) if len(s)]), "features: raw pixels (flattened, /255); default threshold 0.13"


def cleanlab_thumbnails(images: np.ndarray, work: Path) -> tuple[list, str]:
    """cleanlab Datalab's near_duplicate issue on the features our check searches (8x8 per-channel thumbnails,
    centred, unit length): the same representation, cleanlab's rule and search."""
    from cleanlab import Datalab

    n, h, w, c = images.shape
    t = images.reshape(n, 8, h // 8, 8, w // 8, c).astype(np.float32).mean((2, 4)).reshape(n, -1)
    t -= t.mean(1, keepdims=True)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-6)
    lab = Datalab(data={"label": np.zeros(n, dtype=int)}, label_name="label", verbosity=0)
    lab.find_issues(features=t, issue_types={"near_duplicate": {}})
    sets = lab.get_info("near_duplicate")["near_duplicate_sets"]
    return _set_pairs([[i, *s] for i, s in enumerate(sets) if len(s)]), "features: 8x8 thumbnails (our embedding); default threshold 0.13"


def cleanvision(images: np.ndarray, work: Path) -> tuple[list, str]:
    from cleanvision import Imagelab

    folder = _folder(images, work)
    start = time.perf_counter()
    lab = Imagelab(data_path=str(folder))
    lab.find_issues({"near_duplicates": {}, "exact_duplicates": {}})
    sets = lab.info["near_duplicates"]["sets"] + lab.info["exact_duplicates"]["sets"]
    return _set_pairs([[_index(p) for p in s] for s in sets]), "near_duplicates + exact_duplicates, defaults (perceptual hash)"


def _imagededup(method: str):
    def run(images: np.ndarray, work: Path) -> tuple[list, str]:
        from imagededup import methods

        folder = _folder(images, work)
        hasher = getattr(methods, method)()
        enc = hasher.encode_images(image_dir=str(folder))
        dup = hasher.find_duplicates(encoding_map=enc)  # default max_distance_threshold=10
        return _set_pairs([[_index(k), *(_index(v) for v in vs)] for k, vs in dup.items() if vs]), \
            f"{method}, default max_distance_threshold=10"
    return run


def fastdup_default(images: np.ndarray, work: Path) -> tuple[list, str]:
    import fastdup

    folder = _folder(images, work)
    out = work / "fastdup"
    fd = fastdup.create(work_dir=str(out), input_dir=str(folder))
    fd.run(overwrite=True, verbose=False)
    cc = fd.connected_components()
    comps = cc[0] if isinstance(cc, tuple) else cc
    sets = {}
    col = "component_id" if "component_id" in comps.columns else comps.columns[0]
    for path, comp in zip(comps["filename"], comps[col]):
        sets.setdefault(comp, []).append(_index(path))
    return _set_pairs([s for s in sets.values() if len(s) > 1]), "connected components at the default ccthreshold (0.96), bundled model"


TOOLS = {"cleanlab": cleanlab_pixels, "cleanlab-thumbnails": cleanlab_thumbnails, "cleanvision": cleanvision, "imagededup-phash": _imagededup("PHash"),
         "imagededup-dhash": _imagededup("DHash"), "imagededup-whash": _imagededup("WHash"),
         "imagededup-ahash": _imagededup("AHash"), "fastdup": fastdup_default}


def main() -> int:
    tool, path, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    images = np.load(path)
    work.mkdir(parents=True, exist_ok=True)
    if tool in ("cleanvision", "fastdup") or tool.startswith("imagededup"):
        _folder(images, work)  # untimed
    start = time.perf_counter()
    pairs, note = TOOLS[tool](images, work)
    seconds = time.perf_counter() - start
    print(json.dumps({"tool": tool, "seconds": round(seconds, 2), "pairs": [list(map(int, p)) for p in pairs], "note": note}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
