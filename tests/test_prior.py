"""The best input-free predictors of sanitycheck.probing.prior, against brute force."""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

from sanitycheck.probing.prior import position_prior_losses, worst_constant_mcnemar


def test_position_prior_is_the_best_predictor_of_the_position_alone():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, (300, 12))
    y[:40, 7:] = -100  # padding, not counted
    losses = position_prior_losses(y, 6, shift=1, ignore_index=-100)
    kept = y[:, 1:]
    counted = (kept >= 0).sum(1)

    def mean_loss(q):  # q: (positions, classes), any predictor of the position alone
        token = np.where(kept >= 0, -np.log(q[np.arange(kept.shape[1])[None], kept.clip(0)]), 0.0)
        return float((token.sum(1) / counted).mean())

    weights = np.repeat(1 / counted[:, None], kept.shape[1], 1)
    best = np.stack([np.bincount(kept[:, t][kept[:, t] >= 0], weights[:, t][kept[:, t] >= 0], minlength=6)
                     for t in range(kept.shape[1])])
    best /= best.sum(1, keepdims=True)
    assert np.isclose(losses.mean(), mean_loss(best))
    for _ in range(20):  # every other predictor of the position does worse
        other = np.abs(best + rng.normal(0, 0.02, best.shape)) + 1e-9
        assert mean_loss(other / other.sum(1, keepdims=True)) > losses.mean()
    assert np.isnan(position_prior_losses(np.full((2, 4), -1), 6)).all()  # nothing counted: no loss


def test_worst_constant_mcnemar_is_the_largest_p_over_classes():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    correct = (y == 2) | (rng.random(400) < 0.1)  # a model that mostly says "2"
    p, worst = worst_constant_mcnemar(correct, y, 4)
    brute = []
    for c in range(4):
        only_model, only_constant = int((correct & (y != c)).sum()), int((~correct & (y == c)).sum())
        brute.append(binom.sf(only_model - 1, only_model + only_constant, 0.5))
    assert worst == int(np.argmax(brute)) and np.isclose(p, max(brute))
    assert worst_constant_mcnemar(correct, y - 1, 4) is None  # negative ids are not classes
