"""The windows of sanitycheck.probing.alignment: thumbnails of shifted and zoomed windows, and the crop search."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sanitycheck.probing.alignment import crop_distance, per_channel, shift_windows, window_thumbnails
from sanitycheck.pipeline.features import as_chw, raw_features


def pictures(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((n, 3, 10, 10)).astype(np.float32))
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def test_the_unshifted_window_is_the_shared_embedding_whatever_the_size():
    for size in (32, 28, 13):  # 28 and 13 do not divide into 8 cells of whole pixels
        x = pictures(5, size)
        windows = window_thumbnails(x, shift_windows())
        plain = windows[:, len(shift_windows()) // 2]
        assert np.abs(plain.numpy() - raw_features(x.numpy())[0]).max() < 1e-5


def test_a_shifted_window_is_the_thumbnail_of_the_shifted_image():
    x = pictures(4)
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    got = window_thumbnails(x, [(1.0, 1.0, 2.0, -1.0)])[:, 0]
    want, _ = raw_features(padded[:, :, 4:36, 1:33].numpy())  # the image moved up 2 rows and right 1 column
    assert np.abs(got.numpy() - want).max() < 1e-5


def test_crop_distance_undoes_a_crop_resized_back_and_not_another_picture():
    x = pictures(40, seed=1)
    rng = np.random.default_rng(1)
    crops = []
    for img in x:
        t, b, l, r = rng.integers(1, 3, size=4)
        crops.append(F.interpolate(img[None, :, t:32 - b, l:32 - r], size=(32, 32), mode="bilinear",
                                   align_corners=False)[0])
    crops = torch.stack(crops)
    thumbs = lambda images: torch.from_numpy(raw_features(images.numpy())[0])  # noqa: E731
    plain = (thumbs(crops) - thumbs(x)).norm(dim=1)
    undone = crop_distance(x, thumbs(crops)[:, None])[:, 0]  # the original's best window against the crop
    other = crop_distance(x.roll(1, 0), thumbs(crops)[:, None])[:, 0]  # another picture's best window
    assert (undone < 0.5 * plain).float().mean() > 0.9
    assert (undone < 0.5 * other).all()


def test_per_channel_thumbnails_ignore_a_colour_cast():
    x = pictures(6)
    cast = x * torch.tensor([0.6, 1.0, 1.4])[:, None, None] + torch.tensor([0.1, 0.0, -0.1])[:, None, None]
    a = per_channel(torch.from_numpy(raw_features(x.numpy())[0]), 3)
    b = per_channel(torch.from_numpy(raw_features(cast.numpy())[0]), 3)
    assert (a - b).norm(dim=1).max() < 1e-4
    assert np.allclose(a.norm(dim=1).numpy(), 1, atol=1e-5)


def test_as_chw_reads_every_image_layout():
    x = pictures(2)
    assert torch.equal(as_chw(x.numpy()), x)
    assert torch.equal(as_chw(x.permute(0, 2, 3, 1).numpy()), x)  # HWC
    assert torch.equal(as_chw(x[:, 0].numpy()), x[:, :1])  # HW
