"""Planted bug: the char-level GPT of sequence-gpt-clean on windows that forgot the shift.

minGPT's CharDataset returns ``chunk[:-1], chunk[1:]``; this one returns the window as its own target, so every
position is scored against the token it reads. The loss falls to zero and the model learns nothing. `target-leakage`
must say so (error); the model itself is causal, so `causality` stays quiet.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import charlm  # noqa: E402


class Unshifted(charlm.CharDataset):
    def __getitem__(self, idx: int):
        chunk = self.data[idx:idx + self.block_size]
        return chunk, chunk.clone()


_train, _val, vocab_size = charlm.splits(block_size=32)
train, val = Unshifted(_train.data, 32), Unshifted(_val.data, 32)


def make_model():
    return charlm.GPT(charlm.GPTConfig(block_size=32, vocab_size=vocab_size, n_layer=2, n_head=4, n_embd=64))
