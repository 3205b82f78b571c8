"""Inputs that are several tensors: ``forward(x, lengths)`` on batches ``((padded, lengths), labels)`` gets them as
separate arguments (an RNN over packed sequences of different lengths, padded by the loader's collate_fn), a
``forward(pair)`` gets its tuple whole; the suite runs through either without a crash or a false alarm, and a
planted bug is still found."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from torch.utils.data import DataLoader, Dataset

import casekit
import probekit
from conftest import codes


class DigitRows(Dataset):
    """Each digit image as the sequence of its first 6, 7 or 8 rows (by index): sequences of different lengths."""

    def __init__(self, x, y):
        self.x, self.y = x.reshape(-1, 8, 8), y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i, :8 - i % 3], self.y[i]


def pad_batch(batch):
    seqs, labels = zip(*batch)
    return (pad_sequence(seqs, batch_first=True), torch.tensor([len(s) for s in seqs])), torch.stack(labels)


class RowGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 32, batch_first=True)
        self.fc = nn.Linear(32, 10)

    def forward(self, x, lengths):
        _, h = self.gru(pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False))
        return self.fc(h[-1])


def step(model, batch, loss_fn, optimizer):
    model.train()
    (x, lengths), y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x, lengths), y)
    loss.backward()
    optimizer.step()
    return loss


def run_rows(run_pipeline, labels=None, only=None):
    (xt, yt), (xv, yv) = casekit.digits()
    train = DataLoader(DigitRows(xt, yt if labels is None else labels(yt)), batch_size=32, shuffle=True,
                       collate_fn=pad_batch)
    val = DataLoader(DigitRows(xv, yv), batch_size=64, collate_fn=pad_batch)
    return run_pipeline(only=only, train=train, val=val, model=RowGRU, loss="torch.nn:CrossEntropyLoss",
                        train_step=step, optimizer={"target": "torch.optim:Adam", "lr": 0.01}, batch_size=32)


def test_sequences_of_different_lengths_through_forward_x_lengths(run_pipeline):
    report = run_rows(run_pipeline, only=["data-integrity", "leakage", "label-shuffle", "overfit-batch", "gradients"])
    assert not report.crashed and all(c.status != "error" for c in report.checks), \
        [(c.name, c.reason) for c in report.checks if c.status == "error"]
    assert not codes(report, at_least="warning"), [(f.code, f.message) for f in report.findings]
    shapes = probekit.finding(report, "SC805")  # reported, as information: the collate_fn pads them
    assert shapes.severity == "info" and "collate_fn" in shapes.message


def test_a_planted_bug_is_found_through_forward_x_lengths(run_pipeline):
    report = run_rows(run_pipeline, labels=probekit.permuted, only=["label-shuffle"])
    assert "SC201" in codes(report, at_least="error")


def test_a_forward_of_one_tuple_gets_it_whole():
    from sanitycheck.pipeline.adapter import call_model

    class Pair(nn.Module):
        def forward(self, pair):
            a, b = pair
            return a - b

    class Two(nn.Module):
        def forward(self, a, b):
            return a - b

    a, b = torch.ones(2, 3), torch.zeros(2, 3)
    assert torch.equal(call_model(Pair(), (a, b)), a - b) and torch.equal(call_model(Two(), (a, b)), a - b)
    assert torch.equal(call_model(nn.Identity(), a), a)
