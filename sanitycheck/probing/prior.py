"""What a model that ignores its inputs can score on held-out samples, computed instead of trained.

``label-shuffle`` compares the real-input model with one trained on zeroed inputs (SC204). When zeroing the inputs
leaves a batch with nothing that tells its samples apart, such a model gives every held-out sample the same
outputs (per position, for sequences): it is a *constant predictor*, and no constant predictor can do better than
the best one for the held-out targets themselves, which is known without training:

- classification by correctness: always predicting one class ``c``; :func:`worst_constant_mcnemar` gives the
  exact McNemar p-value of the real model against the hardest ``c``;
- next-token losses (task: sequence): the per-position frequencies of the held-out targets (weighted so that each
  sequence counts once); :func:`position_prior_losses` gives each sequence's mean cross-entropy under them, the
  lowest mean loss any input-free model can reach on these sequences.

:func:`zeroed_outputs_constant` checks the premise on the real model: with the inputs zeroed, are the outputs of
every sample in a batch the same? Anything else the batch carries (attention masks, side features) or randomness
at evaluation shows up there, and then the zeroed model is trained as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Outputs of two samples count as the same within this relative tolerance (float32 rounding of batched kernels).
SAME_OUTPUTS_RTOL = 1e-4
#: Held-out samples the premise is checked on (one batch).
CHECK_SAMPLES = 32


def zeroed_outputs_constant(ctx: Any, model: Any, split: Any, indices: np.ndarray, transform: Any) -> int | None:
    """The outputs' class count when ``model`` (evaluated, no gradients) gives every sample of a batch of
    ``split[indices]`` with ``transform``-ed inputs (None: as they are) the same outputs (per position); ``None``
    when the outputs differ, are not one tensor, or fewer than 2 samples are given."""
    import torch

    from sanitycheck.probing.trainer import prepared_batch

    indices = np.asarray(indices)[:CHECK_SAMPLES]
    if len(indices) < 2:
        return None
    batch, _, _ = prepared_batch(ctx, split, indices, np.arange(len(indices)), None, transform)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = ctx.outputs(model, batch)
    except Exception:
        return None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim < 2 or out.shape[0] != len(indices):
        return None
    out = out.detach().float()
    spread = (out - out[:1]).abs().max()
    if not bool(torch.isfinite(out).all()) or float(spread) > SAME_OUTPUTS_RTOL * (1.0 + float(out.abs().max())):
        return None
    return int(out.shape[-1])


def worst_constant_mcnemar(correct: np.ndarray, targets: np.ndarray, classes: int) -> tuple[float, int] | None:
    """The largest exact McNemar p-value (one-sided: the model is better) of a model's per-sample correctness
    against each "always predict class c" (c < ``classes``), and that class; ``None`` for targets that are not
    class ids."""
    from scipy.stats import binom

    y = np.asarray(targets).reshape(-1)
    if len(y) != len(correct) or not (np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0)):
        return None
    y = y.astype(np.int64)
    if len(y) == 0 or y.min() < 0:
        return None
    classes = max(classes, int(y.max()) + 1)
    right = np.asarray(correct, dtype=bool)
    only_model = int(right.sum()) - np.bincount(y[right], minlength=classes)  # right where "c" is wrong
    only_constant = np.bincount(y[~right], minlength=classes)  # wrong where "c" is right
    n = only_model + only_constant
    p = np.where(n > 0, binom.sf(only_model - 1, n, 0.5), 1.0)
    worst = int(np.argmax(p))
    return float(p[worst]), worst


def position_prior_losses(targets: np.ndarray, classes: int, shift: int = 0,
                          ignore_index: int | None = None) -> np.ndarray:
    """Each sequence's mean cross-entropy (nats, over the positions whose target counts) under the per-position
    frequencies of ``targets`` themselves, each sequence weighted by 1 / its counted positions: the minimum of
    the mean per-sequence loss over every predictor that depends on the position only. NaN for a sequence with
    no counted position.

    ``targets``: ``(N, T)`` class ids; the positions that count follow the evaluation's per-sample loss
    (:func:`sanitycheck.pipeline.losses.token_cross_entropy`): ids in ``[0, classes)``, not ``ignore_index``,
    after dropping the first ``shift`` positions (a model that shifts its targets itself)."""
    y = np.asarray(targets).reshape(len(targets), -1)[:, shift:].astype(np.int64)
    keep = (y >= 0) & (y < classes)
    if ignore_index is not None:
        keep &= y != ignore_index
    counted = keep.sum(1)
    rows, cols = np.nonzero(keep)
    weight = 1.0 / counted[rows]
    # per (position, class) weighted counts, over the pairs that occur only (a vocabulary can be large)
    pairs, which = np.unique(cols * classes + y[rows, cols], return_inverse=True)
    mass = np.bincount(which, weight)
    per_position = np.bincount(pairs // classes, mass)
    token = -np.log(mass[which] / per_position[cols])
    sums = np.bincount(rows, token, minlength=len(y))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, sums / counted, np.nan)
