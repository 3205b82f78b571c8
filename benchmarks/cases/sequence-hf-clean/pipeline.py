"""Clean: a small causal language model written the Hugging Face way, without depending on transformers.

Dict samples `{input_ids, attention_mask, labels}` (labels = input_ids, -100 on padding; the model shifts them
itself), chunked like `run_clm.py`'s `group_texts` per document, the last chunk of each document padded.
`forward(input_ids, attention_mask=None, labels=None)` returns a `ModelOutput`-like object with `.loss` and
`.logits`; attention is `F.scaled_dot_product_attention(..., is_causal=True)`. The config names no input/target
keys (`input_ids` and `labels` are understood) and says `loss: model`. Every check must stay quiet.
"""

import fnmatch
import glob
import inspect
import string
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

BLOCK = 32
DOCUMENTS = [inspect.getsource(m) for m in (string, glob, fnmatch)]
CHARS = sorted(set("".join(DOCUMENTS)))
PAD = 0
VOCAB = ["<pad>"] + CHARS
STOI = {c: i + 1 for i, c in enumerate(CHARS)}


def group_texts(documents, block_size):
    """Every document cut into blocks of block_size ids; a document's last block padded (labels -100 there)."""
    blocks = []
    for doc in documents:
        ids = [STOI[c] for c in doc]
        for start in range(0, len(ids), block_size):
            chunk = ids[start:start + block_size]
            pad = block_size - len(chunk)
            blocks.append({
                "input_ids": torch.tensor(chunk + [PAD] * pad),
                "attention_mask": torch.tensor([1] * len(chunk) + [0] * pad),
                "labels": torch.tensor(chunk + [-100] * pad),
            })
    return blocks


class LMDataset(Dataset):
    def __init__(self, blocks):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return self.blocks[i]


_blocks = group_texts(DOCUMENTS, BLOCK)
_cut = int(0.9 * len(_blocks))
train_dataset, eval_dataset = LMDataset(_blocks[:_cut]), LMDataset(_blocks[_cut:])


def train_loader():
    return DataLoader(train_dataset, batch_size=16, shuffle=True)


def val_loader():
    return DataLoader(eval_dataset, batch_size=16)


@dataclass
class CausalLMOutput:
    """What transformers' CausalLMOutputWithPast carries that matters here."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class Block(nn.Module):
    def __init__(self, d_model, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln_2(x))


class TinyCausalLM(nn.Module):
    def __init__(self, vocab_size=len(VOCAB), d_model=64, n_head=4, n_layer=2, max_positions=BLOCK):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.embed_positions = nn.Embedding(max_positions, d_model)
        self.layers = nn.ModuleList([Block(d_model, n_head) for _ in range(n_layer)])
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.embed_tokens(input_ids) + self.embed_positions(positions)
        for layer in self.layers:
            x = layer(x)
        logits = self.lm_head(self.norm(x))
        loss = None
        if labels is not None:
            shift_logits = logits[..., :-1, :].contiguous()
            shift_labels = labels[..., 1:].contiguous()
            loss = F.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1))
        return CausalLMOutput(loss=loss, logits=logits)


def make_model():
    return TinyCausalLM()
