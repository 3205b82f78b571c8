"""Planted bug: the char-level GPT of sequence-gpt-clean with its causal mask left out of the attention.

Every position attends to every other one, so the output at position t reads token t+1, the very token it is
trained to predict. The training loss falls fast; generation would fail. `causality` must say so (error) and name
the attention module.
"""

import math
import pathlib
import sys

from torch.nn import functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import charlm  # noqa: E402

train, val, vocab_size = charlm.splits(block_size=32)


class SelfAttention(charlm.CausalSelfAttention):
    """The attention as often first written: the mask buffer is registered but never applied."""

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


def make_model():
    config = charlm.GPTConfig(block_size=32, vocab_size=vocab_size, n_layer=2, n_head=4, n_embd=64)
    return charlm.GPT(config, attention=SelfAttention)
