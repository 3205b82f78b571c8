"""Pipelines for the training probes (label-shuffle, overfit-batch, gradients, batch-independence): the clean
MLP / CNN / binary / regression pipelines that must stay quiet, and the pieces that plant each bug.

Shared by the benchmark cases (`<probe>-*/pipeline.py`) and the tests (`tests/plugins/test_<probe>.py`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import casekit

CE = "torch.nn:CrossEntropyLoss"


def clean(kind: str, seed: int = 0) -> dict:
    """Keyword arguments of a clean pipeline (for `run_pipeline` / `sanitycheck.run`): data, model, loss, task."""
    if kind == "mlp":
        (xt, yt), (xv, yv) = casekit.digits(seed=seed)
        model, loss, task = (lambda: casekit.mlp(64, 10)), CE, "classification"
    elif kind == "cnn":
        (xt, yt), (xv, yv) = casekit.digits(seed=seed, image=True)
        model, loss, task = casekit.cnn, CE, "classification"
    elif kind == "binary":  # one logit per sample, float 0/1 targets of shape (N, 1)
        (xt, yt), (xv, yv) = casekit.breast_cancer(seed=seed)
        yt, yv = yt.float()[:, None], yv.float()[:, None]
        model, loss, task = (lambda: casekit.mlp(30, 1)), "torch.nn:BCEWithLogitsLoss", "classification"
    elif kind == "regression":
        (xt, yt), (xv, yv) = casekit.diabetes(seed=seed)
        model, loss, task = (lambda: casekit.mlp(10, 1)), "torch.nn:MSELoss", "regression"
    else:
        raise ValueError(kind)
    return {"train": casekit.dataset(xt, yt), "val": casekit.dataset(xv, yv), "model": model, "loss": loss,
            "task": task, "seed": seed}


KINDS = ("mlp", "cnn", "binary", "regression")


# ------------------------------------------------------------------------------------------ planted bugs


def permuted(targets: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The labels in a random order: each input now carries another sample's label."""
    return targets[torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))]


def step_without_optimizer_step(model, batch, loss_fn, optimizer):
    """A train_step that computes gradients but never applies them."""
    inputs, targets = batch
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    return loss  # BUG: optimizer.step() is missing


def step_without_zero_grad(model, batch, loss_fn, optimizer):
    """A train_step that never clears the gradients: every step applies the sum of all gradients so far."""
    inputs, targets = batch
    model.train()
    loss = loss_fn(model(inputs), targets)  # BUG: optimizer.zero_grad() is missing
    loss.backward()
    optimizer.step()
    return loss


def frozen_mlp() -> nn.Module:
    model = casekit.mlp(64, 10)
    for p in model.parameters():
        p.requires_grad = False  # BUG: meant to freeze a backbone, froze everything
    return model


def softmax_mlp() -> nn.Module:
    return casekit.mlp(64, 10, last=nn.Softmax(dim=1))  # BUG: CrossEntropyLoss applies log_softmax itself


class MixBatch(nn.Module):
    """`x.t().reshape(batch, -1)`: a transpose then reshape that moves features across samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.t().reshape(x.shape[0], -1)


def mixing_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), MixBatch(), nn.Linear(64, 10))


class TrainModeCentering(nn.Module):
    """Subtracts the batch mean in training only: samples mix in train mode, and it is not BatchNorm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0, keepdim=True) if self.training else x


def train_mode_mixing_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), TrainModeCentering(), nn.ReLU(), nn.Linear(64, 10))


class WithMetadata(Dataset):
    """Each digit image (1 x 8 x 8) with two metadata floats: ``((image, meta), label)``, a model of several inputs;
    ``named``: ``({"image": image, "meta": meta}, label)``, named inputs the model reads by key."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, named: bool = False):
        self.x, self.y, self.named = x, y, named

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        image, meta = self.x[i], self.x[i].mean((1, 2)).repeat(2)
        return ({"image": image, "meta": meta} if self.named else (image, meta)), self.y[i]


class ImageAndMeta(nn.Module):
    """``forward(image, meta)``, or ``forward(inputs)`` with a dict of both (WithMetadata's samples);
    ``centre_over_batch``: the image features lose their batch mean in eval mode too, so samples mix (SC1101)."""

    def __init__(self, centre_over_batch: bool = False):
        super().__init__()
        self.centre_over_batch = centre_over_batch
        self.image, self.meta = nn.Sequential(nn.Flatten(), nn.Linear(64, 32)), nn.Linear(2, 8)
        self.head = nn.Linear(40, 10)

    def forward(self, image, meta=None):
        if isinstance(image, dict):
            image, meta = image["image"], image["meta"]
        features = self.image(image)
        if self.centre_over_batch:
            features = features - features.mean(0, keepdim=True)
        return self.head(torch.cat([torch.relu(features), torch.relu(self.meta(meta))], 1))


class WithTrueLabels(Dataset):
    """(input, label, true label): lets a train_step read labels from outside the batch's target slot."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.data = TensorDataset(x, y, y.clone())

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.data[i]


def step_reading_side_labels(model, batch, loss_fn, optimizer):
    """A train_step that trains on the third field instead of the batch's targets (a label side channel)."""
    inputs, _targets, side = batch
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), side)  # BUG: not the targets of the batch
    loss.backward()
    optimizer.step()
    return loss


class TokenDicts(Dataset):
    """Texts as Hugging Face's tokenizers give them: ``{"input_ids", "attention_mask", "labels"}``, padded with id 0
    to ``length`` tokens (longer texts cut)."""

    def __init__(self, ids: list[list[int]], labels, length: int = 24):
        self.ids, self.labels, self.length = ids, labels, length

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        ids = self.ids[i][:self.length]
        pad = self.length - len(ids)
        return {"input_ids": torch.tensor(ids + [0] * pad), "attention_mask": torch.tensor([1] * len(ids) + [0] * pad),
                "labels": torch.tensor(int(self.labels[i]))}


class TokenLists(Dataset):
    """Texts as a Hugging Face dataset tokenized without padding gives them: ``{"input_ids", "attention_mask",
    "label"}`` of Python lists, one length per text; :func:`pad_texts` batches them."""

    def __init__(self, ids: list[list[int]], labels):
        self.ids, self.labels = ids, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": list(self.ids[i]), "attention_mask": [1] * len(self.ids[i]), "label": int(self.labels[i])}


def pad_texts(features: list[dict]) -> dict:
    """Hugging Face's DataCollatorWithPadding for :class:`TokenLists`: pads with id 0 to the longest text of the
    batch and renames ``label`` to ``labels``."""
    longest = max(len(f["input_ids"]) for f in features)
    pad = [longest - len(f["input_ids"]) for f in features]
    return {"input_ids": torch.tensor([f["input_ids"] + [0] * p for f, p in zip(features, pad)]),
            "attention_mask": torch.tensor([f["attention_mask"] + [0] * p for f, p in zip(features, pad)]),
            "labels": torch.tensor([f["label"] for f in features])}


class MeanPooledText(nn.Module):
    """A text classifier computing its own loss, Hugging Face-style: ``model(input_ids, attention_mask, labels)``
    returns ``{"loss", "logits"}``; token embeddings averaged over the unmasked positions."""

    def __init__(self, vocab: int, classes: int = 2, dim: int = 32):
        super().__init__()
        self.embed, self.head = nn.Embedding(vocab, dim), nn.Linear(dim, classes)

    def forward(self, input_ids, attention_mask, labels=None):
        mask = attention_mask.unsqueeze(-1).float()
        logits = self.head((self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp_min(1))
        return {"loss": None if labels is None else nn.functional.cross_entropy(logits, labels), "logits": logits}


def text_pipeline(permute: bool = False) -> dict:
    """Keyword arguments of a text-classification pipeline on :func:`casekit.stdlib_lines` (json against email lines,
    :class:`TokenDicts`, :class:`MeanPooledText`); ``permute``: the training labels permuted."""
    ids, labels, vocab = casekit.stdlib_lines()
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0)).tolist()
    train, val = order[:len(ids) * 4 // 5], order[len(ids) * 4 // 5:]
    train_labels = torch.tensor([labels[i] for i in train])
    return {"train": TokenDicts([ids[i] for i in train], permuted(train_labels) if permute else train_labels),
            "val": TokenDicts([ids[i] for i in val], [labels[i] for i in val]),
            "model": lambda: MeanPooledText(vocab), "loss": "model", "batch_size": 32}



# ------------------------------------------------------------------------------------------ test helpers


def run_clean(run_pipeline, only: list[str], kind: str = "mlp", seed: int = 0, **changes):
    """Run the checks named in ``only`` on the clean ``kind`` pipeline with ``changes`` (a planted bug) applied."""
    return run_pipeline(only=only, **{**clean(kind, seed), **changes})


def slow_conv_net_on_digits(run_pipeline, only):
    """A small conv net on 8x8 digits with plain SGD at lr 0.001 and batches of 4: it learns nothing in the
    default budget, as PyTorch's 60-minute-blitz CIFAR net at its lr 0.001 does not."""
    (xt, yt), (xv, yv) = casekit.digits(image=True)
    net = lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3), torch.nn.ReLU(), torch.nn.Flatten(),  # noqa: E731
                                      torch.nn.Linear(6 * 6 * 6, 10))
    return run_pipeline(only=only, train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv), model=net,
                        loss=CE, optimizer={"target": "torch.optim:SGD", "lr": 0.001}, batch_size=4)


def finding(report, code: str):
    """The first finding with ``code`` (StopIteration, i.e. a failed test, when there is none)."""
    return next(f for f in report.findings if f.code == code)
