"""Do a sequence model's input tokens predict its target tokens, without training anything?

The training-free counterpart, for ``task: sequence``, of ``label-shuffle``'s nearest-neighbour vote: a table of
how often each target token follows each input token at a fixed offset ``k`` (target position ``t`` against input
position ``t + k``), counted on the lower half (by index) of a sample of the training sequences, predicts the
targets of the upper half. It is
compared with the targets' own frequencies counted on the same half. Offsets -1, 0 and 1 cover the common layouts:
``y`` = ``x`` shifted by one (nanoGPT: the current token predicts the next, a bigram table), ``labels`` =
``input_ids`` (Hugging Face: the shift happens in the loss; offset 0 is then the identity), and per-token tags.

When targets were paired with another sequence's inputs (a wrong index in ``__getitem__``), no offset's table
does better than the frequencies. In a real text it does far better. Measured on 64-character blocks of the
standard library's sources (``benchmarks/pipelines/char_gpt.py``), the loss falls below the frequencies' by 9% at
offset -1, 20% at offset 0 (the bigrams) and 99.9% at offset 1 (the target is the next input). With the targets
taken from other blocks, every offset's table loses 1.5-1.6%.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: Offsets (target position t, input position t + k) whose tables are tried; the p-values are Bonferroni-corrected.
OFFSETS = (-1, 0, 1)
#: Most training sequences counted (a seeded sample): the table's gain is clear long before this.
MAX_SEQUENCES = 4000
#: Fewest sequences in each half, else no answer.
MIN_SEQUENCES = 20
#: Token ids at or above this are not a vocabulary's (the tables are indexed by id).
MAX_VOCAB = 1 << 22
#: Pseudo-count of the table's backoff to the frequencies: a pair seen a few times moves the estimate little.
SMOOTHING = 4.0


@dataclass
class TokenSignal:
    offset: int  # the best offset
    table_loss: float  # mean per-sequence loss (nats per token) of that offset's table on the held-out half
    frequency_loss: float  # ... of the targets' own frequencies
    p_value: float  # one-sided sign-flip test of the table against the frequencies, Bonferroni over OFFSETS
    sequences: int  # held-out sequences scored

    @property
    def gain(self) -> float:
        """How much lower the table's loss is, as a fraction of the frequencies' loss."""
        return (self.frequency_loss - self.table_loss) / self.frequency_loss if self.frequency_loss > 0 else 0.0


def token_signal(inputs: np.ndarray, targets: np.ndarray, ignore: int | None, rng: np.random.Generator,
                 paired_test: Callable[[np.ndarray], float]) -> TokenSignal | None:
    """The signal of token ids ``inputs`` ``(n, T)`` (integer values; the data pass keeps ids as float32) for
    integer ``targets`` ``(n, T)``; targets below 0 or equal to ``ignore`` do not count. ``paired_test(differences)`` is the one-sided p-value that their mean is above 0.
    ``None`` when the arrays are not that (shapes, dtypes) or too few sequences count."""
    if inputs is None or targets is None or inputs.ndim != 2 or inputs.shape != targets.shape:
        return None
    if not (_integral(inputs) and _integral(targets)):
        return None
    x, y = inputs.astype(np.int64), targets.astype(np.int64)
    if x.min() < 0 or max(x.max(), y.max()) >= MAX_VOCAB:
        return None
    # the halves are the lower and upper indices of a seeded sample, not a random split: overlapping windows
    # (minGPT's CharDataset: window i starts at character i) would otherwise put the same character pairs in both
    # halves, and a table would "predict" even targets taken from a fixed distance away by remembering them
    order = np.sort(rng.permutation(len(x))[:MAX_SEQUENCES])
    half = len(order) // 2
    if half < MIN_SEQUENCES:
        return None
    fit, held = order[:half], order[half:]
    vocab = int(max(x.max(), y.max())) + 1
    best = None
    for k in OFFSETS:
        losses = _held_out_losses(x, y, fit, held, k, vocab, ignore)
        if losses is None:
            continue
        table, frequency = losses
        p = min(1.0, len(OFFSETS) * paired_test(frequency - table))
        if best is None or p < best.p_value or (p == best.p_value and table.mean() < best.table_loss):
            best = TokenSignal(k, float(table.mean()), float(frequency.mean()), p, len(table))
    return best


def _integral(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.integer) or bool(np.all(np.mod(a, 1) == 0))


def _held_out_losses(x: np.ndarray, y: np.ndarray, fit: np.ndarray, held: np.ndarray, k: int, vocab: int,
                     ignore: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Per held-out sequence, the mean loss of offset ``k``'s table and of the frequencies (both counted on
    ``fit``), over the positions with a counted target and an input at ``t + k``."""
    T = x.shape[1]
    t = np.arange(max(0, -k), min(T, T - k))
    if len(t) == 0:
        return None

    def pairs(rows):
        src, dst = x[rows][:, t + k], y[rows][:, t]
        keep = (dst >= 0) & (dst != ignore if ignore is not None else True)
        return src, dst, keep

    src, dst, keep = pairs(fit)
    if not keep.any():
        return None
    key = src[keep] * vocab + dst[keep]
    pair_keys, pair_counts = np.unique(key, return_counts=True)
    source_counts = np.bincount(src[keep], minlength=vocab).astype(np.float64)
    frequency = (np.bincount(dst[keep], minlength=vocab) + 0.5) / (keep.sum() + 0.5 * vocab)  # add-half: no zeros

    src, dst, keep = pairs(held)
    dst = np.where(keep, dst, 0)
    found = np.searchsorted(pair_keys, src * vocab + dst).clip(0, len(pair_keys) - 1)
    count = np.where(pair_keys[found] == src * vocab + dst, pair_counts[found], 0)
    p_table = (count + SMOOTHING * frequency[dst]) / (source_counts[src] + SMOOTHING)
    per_position = np.stack([-np.log(p_table), -np.log(frequency[dst])])
    counted = keep.sum(1)
    rows = counted > 0
    if rows.sum() < MIN_SEQUENCES:
        return None
    means = (per_position * keep).sum(2)[:, rows] / counted[rows]
    return means[0], means[1]
