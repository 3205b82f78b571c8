"""BUG planted: every image is paired with the mask of another image (image and mask file lists sorted apart).
Otherwise the segmentation of real MNIST digits of benchmarks/cases/segkit.py."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from segkit import FCN, loaders  # noqa: E402,F401

train_loader, test_loader = loaders(mask_of=np.random.default_rng(0).permutation(6000))
