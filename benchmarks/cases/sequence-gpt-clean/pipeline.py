"""Clean: a 2-layer character-level GPT (nanoGPT-style, see charlm.py) on standard-library source text.

The model computes its own loss (`loss: model`), the targets are the inputs shifted by one (`task: sequence`).
Every check must stay quiet: token ids are not pixels, repeated lines of source text are not leaked images.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import charlm  # noqa: E402

train, val, vocab_size = charlm.splits(block_size=32)


def make_model():
    return charlm.GPT(charlm.GPTConfig(block_size=32, vocab_size=vocab_size, n_layer=2, n_head=4, n_embd=64))
