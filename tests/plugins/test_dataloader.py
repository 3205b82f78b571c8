"""dataloader: plant a sorted unshuffled loader, random val labels, workers replaying one random stream and a
1-sample last batch with BatchNorm; clean loaders stay quiet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import casekit
from conftest import codes, loud

CE = "torch.nn:CrossEntropyLoss"


def digits_run(run_pipeline, train, val=None, model=None, seed=0):
    (_, _), (xv, yv) = casekit.digits(seed=seed)
    return run_pipeline(only=["dataloader"], train=train, val=val if val is not None else casekit.dataset(xv, yv),
                        model=model or (lambda: casekit.mlp(64, 10)), loss=CE, num_classes=10, seed=seed)


def test_sorted_unshuffled_loader_is_an_error(run_pipeline):
    (xt, yt), _ = casekit.digits()
    order = torch.argsort(yt, stable=True)
    report = digits_run(run_pipeline, DataLoader(casekit.dataset(xt[order], yt[order]), batch_size=32))
    finding = next(f for f in report.findings if f.code == "SC1201")
    assert finding.severity == "error"
    assert finding.evidence["majority_share"] > 0.9 and finding.evidence["shuffled_majority_share"] < 0.4
    assert finding.samples["train"]


@pytest.mark.parametrize("seed", range(5))
def test_shuffled_loader_is_quiet(run_pipeline, seed):
    (xt, yt), _ = casekit.digits(seed=seed)
    order = torch.argsort(yt, stable=True)  # sorted data, but the loader shuffles it
    loader = DataLoader(casekit.dataset(xt[order], yt[order]), batch_size=32, shuffle=True)
    report = digits_run(run_pipeline, loader, seed=seed)
    assert not loud(report, "dataloader") and not codes(report, "dataloader")


def test_unsorted_unshuffled_loader_is_info(run_pipeline):
    (xt, yt), _ = casekit.digits()
    report = digits_run(run_pipeline, DataLoader(casekit.dataset(xt, yt), batch_size=32))
    assert codes(report, "dataloader") == {"SC1202"}


class RandomLabels(Dataset):
    """Validation labels re-drawn on every read (a label augmentation left on the val split)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        y = self.y[i] if np.random.rand() < 0.5 else torch.tensor(np.random.randint(10))
        return self.x[i], y


def test_random_val_labels(run_pipeline):
    (xt, yt), (xv, yv) = casekit.digits()
    report = digits_run(run_pipeline, casekit.dataset(xt, yt), val=RandomLabels(xv, yv))
    finding = next(f for f in report.findings if f.code == "SC1203")
    assert finding.severity == "error" and finding.samples["val"]


class Drawn(Dataset):
    """A split generated at each read, as PyTorch's regression example draws its data: a new input, its target."""

    def __len__(self):
        return 300

    def __getitem__(self, i):
        x = torch.randn(64)
        return x, (x[:10].argmax())


def test_a_validation_split_drawn_at_each_read_is_a_warning(run_pipeline):
    (xt, yt), _ = casekit.digits()
    finding = next(f for f in digits_run(run_pipeline, casekit.dataset(xt, yt), val=Drawn()).findings
                   if f.code == "SC1203")
    assert finding.severity == "warning" and finding.evidence["inputs_changed_too"]


class Jitter(Dataset):
    """Adds NumPy noise in __getitem__: a random augmentation drawn from the global NumPy state."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i] + torch.from_numpy(np.random.normal(0, 0.05, self.x[i].shape).astype(np.float32)), self.y[i]


def constant_seed(worker_id):
    np.random.seed(0)


def per_worker_seed(worker_id):
    np.random.seed(torch.initial_seed() % 2**32)


def test_workers_repeating_augmentation(run_pipeline):
    (xt, yt), _ = casekit.digits()
    loader = DataLoader(Jitter(xt, yt), batch_size=32, shuffle=True, num_workers=2, worker_init_fn=constant_seed)
    report = digits_run(run_pipeline, loader)
    finding = next(f for f in report.findings if f.code == "SC1204")
    assert finding.evidence["identical_across_workers"] and finding.evidence["identical_across_epochs"]


def test_workers_seeded_per_worker_are_quiet(run_pipeline):
    (xt, yt), _ = casekit.digits()
    loader = DataLoader(Jitter(xt, yt), batch_size=32, shuffle=True, num_workers=2, worker_init_fn=per_worker_seed)
    report = digits_run(run_pipeline, loader)
    assert "SC1204" not in codes(report, "dataloader")


def bn_mlp():
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 10))


def test_one_sample_last_batch_with_batchnorm(run_pipeline):
    (xt, yt), _ = casekit.digits()
    n = 32 * (len(yt) // 32) + 1  # 1 sample left over
    report = digits_run(run_pipeline, DataLoader(casekit.dataset(xt[:n], yt[:n]), batch_size=32, shuffle=True),
                        model=bn_mlp)
    finding = next(f for f in report.findings if f.code == "SC1205")
    assert finding.severity == "error" and finding.evidence["last_batch"] == 1
    # drop_last fixes it
    report = digits_run(run_pipeline, DataLoader(casekit.dataset(xt[:n], yt[:n]), batch_size=32, shuffle=True,
                                                 drop_last=True), model=bn_mlp)
    assert "SC1205" not in codes(report, "dataloader")


class Slow(Dataset):
    """A dataset whose __getitem__ costs real time (decoding an image, say)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        import time

        time.sleep(0.002)
        return self.x[i], self.y[i]


def test_slow_loading_in_main_process_gets_a_measured_hint(run_pipeline):
    (xt, yt), _ = casekit.digits()
    loader = DataLoader(Slow(xt[:400], yt[:400]), batch_size=16, shuffle=True)
    report = run_pipeline(only=["dataloader"], train=loader, val=None, model=lambda: casekit.mlp(64, 10), loss=CE,
                          num_classes=10, checks={"dataloader": {"speed_seconds": 0.5}})
    finding = next(f for f in report.findings if f.code == "SC1206")
    assert finding.severity == "info"
    ev = finding.evidence
    assert ev["seconds_per_batch_main_process"] / ev["seconds_per_batch_2_workers"] >= 1.5


class Stream(torch.utils.data.IterableDataset):
    """A streaming dataset (WebDataset / HF streaming style): yields (input, label), split across workers."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rows = range(len(self.y)) if info is None else range(info.id, len(self.y), info.num_workers)
        for i in rows:
            yield self.x[i], self.y[i]


def test_a_streaming_iterable_dataset_is_read_without_its_sampler(run_pipeline):
    # its batch sampler yields None for every index: the order probe crashed with a TypeError
    (xt, yt), (xv, yv) = casekit.digits()
    report = run_pipeline(only=["dataloader", "label-shuffle"],
                          train=torch.utils.data.DataLoader(Stream(xt, yt), batch_size=32, num_workers=2),
                          val=casekit.dataset(xv, yv), model=lambda: casekit.mlp(64, 10),
                          loss="torch.nn:CrossEntropyLoss", batch_size=32)
    assert not report.crashed and all(c.status != "error" for c in report.checks), \
        [(c.name, c.reason) for c in report.checks if c.status == "error"]
    assert not codes(report, at_least="warning")
