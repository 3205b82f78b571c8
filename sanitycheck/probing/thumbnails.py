"""Small PNG pictures of samples, embedded in findings so reports can show what a check saw.

Convention (read by the report formats that draw pictures): a finding's ``evidence["thumbnails"]`` is a
list of ``{"split": "train", "index": 17, "caption": "label 3", "png": "data:image/png;base64,...",
"group": 0}``; items sharing a ``group`` are drawn side by side (a duplicate pair, original vs augmented).
Keep a finding to about 24 thumbnails: they travel inside the JSON report.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import numpy as np


def is_image(x: np.ndarray) -> bool:
    """(H, W), (C, H, W) with C in 1/3/4, or (H, W, C): something worth drawing."""
    if x.ndim == 2:
        return min(x.shape) >= 4
    if x.ndim == 3:
        return (x.shape[0] in (1, 3, 4) and min(x.shape[1:]) >= 4) or (x.shape[2] in (1, 3, 4) and min(x.shape[:2]) >= 4)
    return False


def png_data_uri(x: Any, size: int = 48) -> str | None:
    """A sample input as a ``data:image/png`` URI (min-max scaled, nearest-neighbour resized), or None if not an image."""
    a = np.asarray(x, dtype=np.float64)
    if not is_image(a):
        return None
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # CHW -> HWC
    elif a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] in (1, 3, 4) and a.shape[0] < a.shape[2]:
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3:
        a = a[..., :3] if a.shape[2] >= 3 else a[..., 0]
    finite = np.isfinite(a)
    lo, hi = (a[finite].min(), a[finite].max()) if finite.any() else (0.0, 1.0)
    a = np.where(finite, (a - lo) / (hi - lo if hi > lo else 1.0), 0.0)
    h, w = a.shape[:2]
    scale = max(1, size // max(h, w))
    a = np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
    pixels = (a * 255).round().astype(np.uint8)
    return "data:image/png;base64," + base64.b64encode(_png(pixels)).decode()


def _png(pixels: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) gray or (H, W, 3) RGB array as PNG (zlib only, no imaging library)."""
    h, w = pixels.shape[:2]
    color = 2 if pixels.ndim == 3 else 0
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def thumbnail(ctx: Any, split_name: str, index: int, caption: str = "", group: int | None = None) -> dict | None:
    """A thumbnail entry for sample ``index`` of a split (see the module docstring), or None for non-images."""
    from sanitycheck.pipeline.tensors import to_numpy

    split = ctx.train if split_name == "train" else ctx.val
    uri = png_data_uri(to_numpy(split.sample(index)[0]))
    if uri is None:
        return None
    item = {"split": split_name, "index": int(index), "caption": caption, "png": uri}
    if group is not None:
        item["group"] = group
    return item
