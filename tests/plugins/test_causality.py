"""causality: future leakage in sequence models (SC1701), planted in the ways real code gets it wrong."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

import charlm

CHECK = ["causality"]
TRAIN, VAL, VOCAB = charlm.splits(block_size=32, limit=4000)


def gpt(attention=charlm.CausalSelfAttention):
    return lambda: charlm.GPT(charlm.GPTConfig(block_size=32, vocab_size=VOCAB), attention=attention)


def run_gpt(run_pipeline, model, **config):
    return run_pipeline(only=CHECK, train=TRAIN, val=VAL, model=model, loss="model", task="sequence", **config)


def finding(report):
    found = [f for f in report.findings if f.code == "SC1701"]
    return found[0] if found else None


class NoMask(charlm.CausalSelfAttention):
    """The attention without its mask (the buffer is registered, never applied)."""

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(self.n_embd, dim=2))
        att = F.softmax((q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1)), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class OffByOne(charlm.CausalSelfAttention):
    """A mask built with tril(diagonal=1): position t also sees t+1, the token it predicts."""

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(self.n_embd, dim=2))
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        att = F.softmax(((q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))).masked_fill(~mask, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class Sdpa(charlm.CausalSelfAttention):
    """Flash attention as nanoGPT calls it; `causal` False is the bug."""

    causal = True

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(self.n_embd, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class SdpaNotCausal(Sdpa):
    causal = False


def test_mask_removed_is_an_error_naming_the_attention(run_pipeline):
    f = finding(run_gpt(run_pipeline, gpt(NoMask)))
    assert f is not None and f.severity == "error"
    assert f.evidence["first_mixing_module"] == "transformer.h.0.attn" and f.evidence["module_type"] == "NoMask"
    assert f.evidence["gradient_with_respect_to"] == "transformer.wte" and f.evidence["reach"] == 31
    assert "transformer.h.0.attn" in f.message


def test_off_by_one_mask_reads_one_position_ahead(run_pipeline):
    f = finding(run_gpt(run_pipeline, gpt(OffByOne)))
    # each of the 2 layers reads one position ahead: together, two
    assert f is not None and f.evidence["reach"] == 2 and f.evidence["first_mixing_module"] == "transformer.h.0.attn"


@pytest.mark.parametrize("attention", [charlm.CausalSelfAttention, Sdpa])
def test_causal_gpt_passes(run_pipeline, attention):
    report = run_gpt(run_pipeline, gpt(attention))
    assert report.checks[0].status == "passed", report.checks[0].reason
    assert finding(report) is None


def test_sdpa_without_is_causal_is_found(run_pipeline):
    assert finding(run_gpt(run_pipeline, gpt(SdpaNotCausal))).severity == "error"


class EncoderLM(nn.Module):
    """nn.TransformerEncoder as a language model; `causal` False forgets the mask."""

    def __init__(self, causal: bool):
        super().__init__()
        self.causal = causal
        self.embed = nn.Embedding(VOCAB, 32)
        self.pos = nn.Parameter(torch.zeros(32, 32))
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, VOCAB)

    def forward(self, idx):
        x = self.embed(idx) + self.pos[: idx.shape[1]]
        if self.causal:
            mask = nn.Transformer.generate_square_subsequent_mask(idx.shape[1])
            x = self.encoder(x, mask=mask, is_causal=True)
        else:
            x = self.encoder(x)
        return self.head(x)


def seq_ce(outputs, targets):
    return F.cross_entropy(outputs.flatten(0, 1), targets.flatten())


@pytest.mark.parametrize("causal", [True, False])
def test_transformer_encoder_without_mask(run_pipeline, causal):
    report = run_pipeline(only=CHECK, train=TRAIN, val=VAL, model=lambda: EncoderLM(causal), loss=seq_ce,
                          task="sequence")
    f = finding(report)
    if causal:
        assert f is None and report.checks[0].status == "passed"
    else:
        assert f is not None and f.evidence["first_mixing_module"] == "encoder.layers.0.self_attn"


def test_tagging_targets_skip_with_a_reason(run_pipeline):
    """A bidirectional tagger may read later positions: targets that are not next tokens skip the probe."""
    x = torch.randint(0, 20, (64, 16))
    y = (x % 3)  # a tag per token, not the next token
    data = TensorDataset(x, y)
    model = lambda: nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 3))  # noqa: E731
    report = run_pipeline(only=CHECK, train=data, val=data, model=model, loss=seq_ce, task="sequence")
    assert report.checks[0].status == "skipped" and "not the next tokens" in report.checks[0].reason
    forced = run_pipeline(only=CHECK, train=data, val=data, model=model, loss=seq_ce, task="sequence",
                          checks={"causality": {"causal": True}})
    assert forced.checks[0].status == "passed"


def test_float_inputs_are_probed_directly(run_pipeline):
    """Forecasting from float features (causal: true): a centred moving average looks ahead."""

    class Smooth(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 8, 3, padding=1)  # centred: output t sees t+1
            self.head = nn.Linear(8, 5)

        def forward(self, x):
            return self.head(self.conv(x.transpose(1, 2)).transpose(1, 2))

    x, y = torch.randn(64, 16, 4), torch.randint(0, 5, (64, 16))
    report = run_pipeline(only=CHECK, train=TensorDataset(x, y), val=TensorDataset(x, y), model=Smooth, loss=seq_ce,
                          task="sequence", checks={"causality": {"causal": True}})
    f = finding(report)
    assert f is not None and f.evidence["reach"] == 1 and f.evidence["first_mixing_module"] == "conv"
    assert f.evidence["gradient_with_respect_to"] == "inputs"


def test_other_tasks_skip(run_pipeline):
    import casekit

    (xt, yt), (xv, yv) = casekit.digits()
    report = run_pipeline(only=CHECK, train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv),
                          model=lambda: casekit.mlp(64, 10), loss="torch.nn:CrossEntropyLoss")
    assert report.checks[0].status == "skipped" and "task: classification" in report.checks[0].reason


class Head(nn.Module):
    """One head of self-attention, as in Karpathy's "Let's build GPT" (gpt.py); `masked` False is the bug."""

    def __init__(self, n_embd, head_size, block_size, masked):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))
        self.masked = masked

    def forward(self, x):
        B, T, C = x.shape
        k, q = self.key(x), self.query(x)
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        if self.masked:
            wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = F.softmax(wei, dim=-1)
        return wei @ self.value(x)


class LectureGPT(nn.Module):
    """gpt.py's model: forward(idx, targets=None) -> (logits, loss), logits flattened to (B*T, C) with targets."""

    def __init__(self, masked=True, n_embd=32, block_size=32):
        super().__init__()
        self.token_embedding_table = nn.Embedding(VOCAB, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.sa_heads = nn.ModuleList([Head(n_embd, n_embd // 4, block_size, masked) for _ in range(4)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, VOCAB)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.token_embedding_table(idx) + self.position_embedding_table(torch.arange(T, device=idx.device))
        x = x + torch.cat([h(x) for h in self.sa_heads], dim=-1)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        B, T, C = logits.shape
        logits = logits.view(B * T, C)
        return logits, F.cross_entropy(logits, targets.view(B * T))


@pytest.mark.parametrize("masked", [True, False])
def test_lecture_gpt_with_flattened_logits(run_pipeline, masked):
    report = run_pipeline(only=CHECK + ["init-loss"], train=TRAIN, val=VAL, model=lambda: LectureGPT(masked),
                          loss="model", task="sequence")
    statuses = {c.name: c.status for c in report.checks}
    assert statuses["init-loss"] == "passed"
    f = finding(report)
    if masked:
        assert f is None and statuses["causality"] == "passed"
    else:
        assert f is not None and f.evidence["first_mixing_module"] == "sa_heads.0"
