"""Realistic near-duplicate transforms for leakage benchmarks: what real copies of an image look like.

Each takes a float image batch ``(m, C, H, W)`` in [0, 1] and a seeded generator and returns a batch of
the same shape: JPEG-like re-encoding (8x8 block DCT quantization), 1-2 pixel shifts, 1-2 pixel crops
resized back, brightness/contrast changes, and down-then-up resizes; on request also per-channel colour casts.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def jpeg_like(x: torch.Tensor, rng: np.random.Generator, quality_step: float = 0.06) -> torch.Tensor:
    """Quantize the 8x8 block DCT coefficients (coarser for high frequencies), like JPEG at medium quality."""
    from scipy.fft import dctn, idctn

    a = x.numpy().astype(np.float64)
    m, c, h, w = a.shape
    ph, pw = (-h) % 8, (-w) % 8
    a = np.pad(a, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
    blocks = a.reshape(m, c, a.shape[2] // 8, 8, a.shape[3] // 8, 8).transpose(0, 1, 2, 4, 3, 5)
    coef = dctn(blocks, axes=(-2, -1), norm="ortho")
    u = np.arange(8)
    step = quality_step * (1 + (u[:, None] + u[None, :]) / 2.0)
    coef = np.round(coef / step) * step
    back = idctn(coef, axes=(-2, -1), norm="ortho").transpose(0, 1, 2, 4, 3, 5).reshape(a.shape)
    back = np.round(np.clip(back, 0, 1) * 255) / 255  # stored as 8-bit again
    return torch.from_numpy(back[:, :, :h, :w].astype(np.float32))


def _translate(x: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
    """Image i moved by ``offsets[i]`` = (dy, dx) pixels (edges replicated)."""
    s = int(np.abs(offsets).max()) if len(offsets) else 0
    h, w = x.shape[2:]
    p = F.pad(x, (s, s, s, s), mode="replicate")
    return torch.stack([p[i, :, s + dy:s + dy + h, s + dx:s + dx + w] for i, (dy, dx) in enumerate(offsets)])


def shift(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Translate by 1-2 pixels in a random direction (edges replicated)."""
    offsets = rng.integers(-2, 3, size=(len(x), 2))
    offsets[(offsets == 0).all(1), 1] = 1
    return _translate(x, offsets)


def crop_resize(x: torch.Tensor, rng: np.random.Generator, low: int = 1, high: int = 2) -> torch.Tensor:
    """Crop ``low``-``high`` pixels off each side (random amounts) and resize back to the original size."""
    h, w = x.shape[2:]
    out = torch.empty_like(x)
    for i in range(len(x)):
        t, b, l, r = rng.integers(low, high + 1, size=4)
        crop = x[i:i + 1, :, t:h - b, l:w - r]
        out[i] = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[0]
    return out


def brightness_contrast(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Scale contrast by 0.7-1.3 and shift brightness by -0.15..0.15 (clipped to [0, 1])."""
    m = len(x)
    gain = torch.from_numpy(rng.uniform(0.7, 1.3, size=(m, 1, 1, 1)).astype(np.float32))
    bias = torch.from_numpy(rng.uniform(-0.15, 0.15, size=(m, 1, 1, 1)).astype(np.float32))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * gain + mean + bias).clamp(0, 1)


def colour(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A colour cast: each channel's gain 0.8-1.2 and offset -0.08..0.08 drawn on its own (clipped to [0, 1])."""
    m, c = x.shape[:2]
    gain = torch.from_numpy(rng.uniform(0.8, 1.2, size=(m, c, 1, 1)).astype(np.float32))
    bias = torch.from_numpy(rng.uniform(-0.08, 0.08, size=(m, c, 1, 1)).astype(np.float32))
    return (x * gain + bias).clamp(0, 1)


def resize(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Down-scale to 60-85% and back up (bilinear), as a re-published thumbnail."""
    h, w = x.shape[2:]
    out = torch.empty_like(x)
    for i in range(len(x)):
        f = rng.uniform(0.6, 0.85)
        small = F.interpolate(x[i:i + 1], size=(max(4, int(h * f)), max(4, int(w * f))), mode="bilinear",
                              align_corners=False, antialias=True)
        out[i] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0]
    return out


#: The kinds of near copy the leakage targets are stated for.
TRANSFORMS = {"jpeg": jpeg_like, "shift": shift, "crop": crop_resize, "brightness": brightness_contrast,
              "resize": resize}
def far_shift(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Translate by 3-4 pixels along each axis (edges replicated): beyond the aligned look's exhaustive shifts."""
    return _translate(x, rng.integers(3, 5, size=(len(x), 2)) * rng.choice([-1, 1], size=(len(x), 2)))


def far_crop(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Crop 3-4 pixels off each side (random amounts) and resize back: beyond the aligned look's zoom range."""
    return crop_resize(x, rng, 3, 4)


#: More kinds real copies come in, measured on request (``--kinds``).
EXTRA = {"colour": colour, "far_shift": far_shift, "far_crop": far_crop}


def near_copies(x: torch.Tensor, rng: np.random.Generator, kinds: list[str] | None = None) -> tuple[torch.Tensor, list[str]]:
    """Each image gets one transform (cycling through ``kinds``, default TRANSFORMS), plus JPEG re-encoding on
    top for half of them."""
    names = kinds or list(TRANSFORMS)
    every = {**TRANSFORMS, **EXTRA}
    out, used = torch.empty_like(x), []
    for j, name in enumerate(names):
        sel = np.arange(j, len(x), len(names))
        if len(sel):
            out[sel] = every[name](x[sel], rng)
    again = np.flatnonzero(rng.random(len(x)) < 0.5)
    if len(again):
        out[again] = jpeg_like(out[again], rng)
    used = [names[i % len(names)] + ("+jpeg" if i in set(again.tolist()) else "") for i in range(len(x))]
    return out, used
