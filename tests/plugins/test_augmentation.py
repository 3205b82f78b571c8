"""augmentation: plant upside-down digits, noise that erases the signal and random augmentation on val; a
realistic +-1-pixel shift stays quiet over 5 seeds; the dataset's own randomness is tested without data.augment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import casekit
from conftest import codes, loud

CE = "torch.nn:CrossEntropyLoss"
#: The default profile: at "fast" the shared reference training (75 steps, a 2.5 s cap) is too short for a
#: stable with/without comparison on a loaded machine (measured: 32 steps done, clean accuracy 0.48).
PROFILE = "default"


def upside_down(x):
    """Rotates a digit by 180 degrees: a 6 becomes a 9 but keeps its label."""
    return torch.flip(x, dims=(-2, -1))


def heavy_noise(x):
    """Gaussian noise with 3x the pixel range: nothing of the digit is left."""
    return x + 3 * torch.randn_like(x)


def shift(x):
    """A realistic augmentation: move the digit by up to one pixel in each direction (zero fill)."""
    dy, dx = torch.randint(-1, 2, (2,)).tolist()
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def model():
    return torch.nn.Sequential(torch.nn.Flatten(), casekit.mlp(64, 10))


def run(run_pipeline, augment=None, seed=0, train=None, val=None):
    (xt, yt), (xv, yv) = casekit.digits(seed=seed, image=True)
    return run_pipeline(only=["augmentation"], train=train or casekit.dataset(xt, yt),
                        val=val or casekit.dataset(xv, yv), augment=augment, model=model, loss=CE,
                        num_classes=10, seed=seed, profile=PROFILE)


def test_upside_down_digits_change_the_label(run_pipeline):
    report = run(run_pipeline, upside_down)
    finding = next(f for f in report.findings if f.code == "SC401")
    ev = finding.evidence
    assert finding.severity == "error"
    assert ev["clean_val_accuracy_without"] - ev["clean_val_accuracy_with"] >= 0.1
    assert ev["mcnemar"]["p_value"] < 0.01
    # 6 and 9 trade places: the confusions that appear include one of them
    assert any({c["true"], c["predicted"]} & {6, 9} for c in ev["new_confusions"][:5])
    worst = {row["class"] for row in ev["per_class"][:5]}
    assert worst & {6, 9}
    # the grid: original and augmented side by side
    groups = {t["group"] for t in ev["thumbnails"]}
    assert len(ev["thumbnails"]) == 2 * len(groups) and {t["caption"] for t in ev["thumbnails"]} == {"original",
                                                                                                    "augmented"}


def test_noise_that_erases_the_signal(run_pipeline):
    report = run(run_pipeline, heavy_noise)
    finding = next(f for f in report.findings if f.code == "SC402")
    assert finding.severity == "error"
    assert finding.evidence["augmented_val_accuracy_with"] < 0.4
    assert "SC401" not in codes(report)  # one story per augmentation: the signal is gone
    realism = next(f for f in report.findings if f.code == "SC403")
    assert realism.evidence["real_vs_augmented_auc"] >= 0.99


@pytest.mark.parametrize("seed", range(5))
def test_one_pixel_shift_is_quiet(run_pipeline, seed):
    report = run(run_pipeline, shift, seed=seed)
    assert not loud(report, "augmentation")
    summary = next(f for f in report.findings if f.code == "SC405")
    assert summary.evidence["thumbnails"]


class Jittered(Dataset):
    """Adds fresh noise on every read: a random augmentation inside the dataset itself."""

    def __init__(self, x, y, scale):
        self.x, self.y, self.scale = x, y, scale

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i] + self.scale * torch.randn_like(self.x[i]), self.y[i]


def test_random_augmentation_on_val(run_pipeline):
    (xt, yt), (xv, yv) = casekit.digits(image=True)
    report = run(run_pipeline, val=Jittered(xv, yv, 0.05), train=casekit.dataset(xt, yt))
    finding = next(f for f in report.findings if f.code == "SC404")
    assert finding.severity == "warning" and finding.samples["val"]
    assert finding.evidence["thumbnails"]


def test_dataset_randomness_is_the_augmentation(run_pipeline):
    (xt, yt), _ = casekit.digits(image=True)
    report = run(run_pipeline, train=Jittered(xt, yt, 0.05))
    summary = next(f for f in report.findings if f.code == "SC405")
    assert summary.evidence["mode"] == "dataset randomness"
    assert not loud(report, "augmentation")


def test_no_augmentation_is_skipped(run_pipeline):
    report = run(run_pipeline)
    assert report.checks[0].status == "skipped"


class FlippedDigitMasks(Dataset):
    """Segmentation of the digits (each pixel: the digit plus one where the stroke is, else 0), randomly flipped in
    ``__getitem__`` as a user writes it: ``joint`` (one coin for both), ``coins`` (a coin each: the bug),
    ``image`` (the image's transform only: the bug), ``jitter`` (brightness on the image only: fine)."""

    def __init__(self, x, y, how):
        self.x, self.masks, self.how = x, casekit.digit_masks(x, y), how

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x, mask = self.x[i], self.masks[i]
        if self.how == "jitter":
            return x * (0.8 + 0.4 * torch.rand(())), mask
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
            mask = mask.flip(-1) if self.how == "joint" else mask
        if self.how == "coins" and torch.rand(()) < 0.5:
            mask = mask.flip(-1)
        return x, mask


@pytest.mark.parametrize("how,apart", [("joint", False), ("jitter", False), ("coins", True), ("image", True)])
def test_flips_that_move_images_and_their_masks_apart(run_pipeline, how, apart):
    (xt, yt), (xv, yv) = casekit.digits(image=True)
    model = lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),  # noqa: E731
                                        torch.nn.Conv2d(8, 11, 3, padding=1))
    report = run_pipeline(only=["augmentation"], train=FlippedDigitMasks(xt, yt, how),
                          val=casekit.dataset(xv, casekit.digit_masks(xv, yv)), model=model, loss=CE, num_classes=11,
                          profile=PROFILE)
    assert not report.crashed
    if apart:
        finding = next(f for f in report.findings if f.code == "SC406")
        assert finding.severity == "error" and finding.evidence["apart"] >= 8
    else:
        assert "SC406" not in codes(report)
