"""Planted bug: the char-level GPT of sequence-gpt-clean whose windows take their targets from another window.

``__getitem__`` reads the target chunk at a wrong index (``(i * 7919 + 13) % len``), in both splits: every target
sequence is real text, but not the continuation of its input. `label-shuffle` must call it an error (SC201, and
SC204: zeroed inputs do as well), whether or not the budget lets the model fit its training windows.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import charlm  # noqa: E402


class OtherWindows(charlm.CharDataset):
    def __getitem__(self, idx: int):
        x, _ = super().__getitem__(idx)
        _, y = super().__getitem__((idx * 7919 + 13) % len(self))
        return x, y


_train, _val, vocab_size = charlm.splits(block_size=32)
train, val = OtherWindows(_train.data, 32), OtherWindows(_val.data, 32)


def make_model():
    return charlm.GPT(charlm.GPTConfig(block_size=32, vocab_size=vocab_size, n_layer=2, n_head=4, n_embd=64))
