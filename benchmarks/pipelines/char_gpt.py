"""A character-level GPT in the style of nanoGPT / minGPT: 2 layers of causal self-attention, ``forward(idx,
targets) -> (logits, loss)``, AdamW. The corpus is text every Python install has (the standard library's own
sources, about 1 MB), blocks of 64 characters; the model computes its own loss (config ``loss: model``,
``task: sequence``: per-position classes)."""

from __future__ import annotations

import functools
import sysconfig
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import run_epoch

BLOCK, BATCH, EMBED, HEADS, LAYERS = 64, 32, 128, 4, 2


def corpus(chars: int = 1_000_000) -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text, size = [], 0
    for path in sorted(stdlib.glob("*.py")):
        t = path.read_text(errors="ignore")
        text.append(t)
        size += len(t)
        if size >= chars:
            break
    return "".join(text)[:chars]


class Chars(Dataset):
    """Non-overlapping blocks: input = BLOCK characters, target = the same shifted by one."""

    def __init__(self, ids: np.ndarray):
        self.ids = ids

    def __len__(self) -> int:
        return (len(self.ids) - 1) // BLOCK

    def __getitem__(self, i: int):
        chunk = torch.from_numpy(self.ids[i * BLOCK:i * BLOCK + BLOCK + 1].astype(np.int64))
        return chunk[:-1], chunk[1:]


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(EMBED, 3 * EMBED)
        self.proj = nn.Linear(EMBED, EMBED)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(EMBED, dim=2)
        q, k, v = (z.view(b, t, HEADS, c // HEADS).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.attn, self.ln2 = nn.LayerNorm(EMBED), SelfAttention(), nn.LayerNorm(EMBED)
        self.mlp = nn.Sequential(nn.Linear(EMBED, 4 * EMBED), nn.GELU(), nn.Linear(4 * EMBED, EMBED))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, EMBED), nn.Embedding(BLOCK, EMBED)
        self.blocks = nn.Sequential(*[Block() for _ in range(LAYERS)])
        self.ln, self.head = nn.LayerNorm(EMBED), nn.Linear(EMBED, vocab, bias=False)

    def forward(self, idx, targets=None):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        logits = self.head(self.ln(self.blocks(x)))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


@functools.cache
def _splits():
    text = corpus()
    vocab = sorted(set(text))
    ids = np.searchsorted(np.array(vocab), np.array(list(text))).astype(np.int16)
    cut = int(len(ids) * 0.9)
    return len(vocab), Chars(ids[:cut]), Chars(ids[cut:])


def make_model() -> nn.Module:
    return GPT(_splits()[0])


def train_step(model, batch, loss_fn, optimizer):
    idx, targets = batch
    model.train()
    optimizer.zero_grad(set_to_none=True)
    _, loss = model(idx, targets)
    loss.backward()
    optimizer.step()
    return loss


def train_loader() -> DataLoader:
    return DataLoader(_splits()[1], batch_size=BATCH, shuffle=True)


def config() -> dict:
    return {"task": "sequence", "data": {"train": train_loader(), "val": _splits()[2]}, "model": make_model,
            "loss": "model", "optimizer": {"target": torch.optim.AdamW, "lr": 1e-3}, "train_step": train_step,
            "batch_size": BATCH, "num_classes": _splits()[0]}


def epoch() -> dict:
    return run_epoch(train_loader(), make_model, lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3), None,
                     train_step)


def supported() -> str | None:
    """None when this branch's config has ``task: sequence`` and ``loss: model``, else why not."""
    from sanitycheck.engine.config import Config

    task = Config.model_fields["task"].annotation
    if "sequence" not in getattr(task, "__args__", ()):
        return "this branch's config has no `task: sequence` / `loss: model` yet (being built in another branch)"
    return None


