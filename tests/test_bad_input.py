"""Every bad input of the foundation issue: one clear message naming the key, path or sample, exit code 2,
no traceback (and a traceback with --debug)."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from sanitycheck.faces.cli import app

PIPELINE = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    train = TensorDataset(x, y)
    val = TensorDataset(x[:16], y[:16])
    loader = DataLoader(train, batch_size=8)
    not_a_dataset = 42
    empty = TensorDataset(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long))

    class Singles(Dataset):
        def __len__(self):
            return 10
        def __getitem__(self, i):
            return x[i]

    class Dicts(Dataset):
        def __len__(self):
            return 10
        def __getitem__(self, i):
            return {"image": x[i], "label": y[i]}

    class Ragged(Dataset):
        def __len__(self):
            return 10
        def __getitem__(self, i):
            return [x[i], [1, 2, 3]], y[i]

    singles = Singles()
    dicts = Dicts()
    ragged = Ragged()

    def make_model():
        return nn.Linear(8, 3)

    def raising_model():
        raise RuntimeError("checkpoint not found")

    def wrong_width_model():
        return nn.Linear(5, 3)

    def bad_loss(outputs, targets):
        return nn.functional.mse_loss(outputs, targets)
''')

BASE = {
    "data": {"train": "pipeline:train", "val": "pipeline:val"},
    "model": "pipeline:make_model",
    "loss": "torch.nn:CrossEntropyLoss",
}


def _yaml(config: dict) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture
def invoke(tmp_path):
    (tmp_path / "pipeline.py").write_text(PIPELINE)

    def _invoke(config: dict | str | None, *args: str):
        path = tmp_path / "sanitycheck.yaml"
        if config is not None:
            path.write_text(config if isinstance(config, str) else _yaml(config))
        result = CliRunner().invoke(app, ["run", str(path), "--quiet", *args])
        return result

    return _invoke


def _merge(**changes):
    config = {**BASE, "data": dict(BASE["data"])}
    for key, value in changes.items():
        if key.startswith("data_"):
            config["data"][key[5:]] = value
        else:
            config[key] = value
    return config


CASES = [
    ("missing file", None, "config file not found"),
    ("yaml syntax", "task: classification\ndata: {train: [\n  model: x\n", "YAML syntax error at line"),
    ("unknown key", {**BASE, "optimiser": {"lr": 0.1}}, "unknown key 'optimiser' (did you mean 'optimizer'?)"),
    ("unknown nested key", _merge(data_trian="pipeline:train"), "unknown key 'data.trian' (did you mean 'data.train'?)"),
    ("wrong type", {**BASE, "batch_size": "big"}, "key 'batch_size'"),
    ("bad enum", {**BASE, "task": "segmentation"}, "key 'task'"),
    ("module does not import", _merge(model="pipelinez:make_model"), "model: cannot import module 'pipelinez'"),
    ("no such attribute", _merge(model="pipeline:make_modle"), "did you mean 'make_model'?"),
    ("not module:attr", _merge(loss="CrossEntropyLoss"), "expected 'module:attr'"),
    ("not a dataset", _merge(data_train="pipeline:not_a_dataset"), "data.train: got an object of type int; expected a torch Dataset"),
    ("empty dataset", _merge(data_val="pipeline:empty"), "data.val: the dataset is empty"),
    ("not (input, target)", _merge(data_train="pipeline:singles"), "data.train: train sample 0 is a Tensor"),
    ("dict without keys", _merge(data_train="pipeline:dicts"), "name the input and target with data.input_key"),
    ("input NumPy cannot read", _merge(data_train="pipeline:ragged"), "data.train: sample 0's input or target cannot"),
    ("model factory raises", _merge(model="pipeline:raising_model"), "checkpoint not found"),
    ("model fails on a batch", _merge(model="pipeline:wrong_width_model"), "inputs shape (8, 8) float32"),
    ("loss fails", _merge(loss="pipeline:bad_loss"), "outputs shape (8, 3) float32 and targets shape (8,) int64"),
    ("num_classes disagrees", {**BASE, "num_classes": 2}, "num_classes: 2 disagrees with the labels"),
    ("unknown check setting", {**BASE, "checks": {"overfit-batch": {"stepz": 3}}}, "did you mean 'checks.overfit-batch.steps'?"),
    ("unknown check", {**BASE, "checks": {"overfit-bach": {}}}, "did you mean 'overfit-batch'?"),
    ("cuda unavailable", {**BASE, "device": "cuda:7"}, "device: 'cuda:7' requested"),
]


@pytest.mark.parametrize("name,config,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_message(invoke, name, config, message):
    result = invoke(config)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 2  # one message (a long one may wrap once)


def test_debug_shows_the_traceback(invoke):
    result = invoke(_merge(model="pipeline:raising_model"), "--debug")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "checkpoint not found" in result.stderr


def test_unknown_check_on_the_command_line(invoke):
    result = invoke(BASE, "--only", "overfit-bath")
    assert result.exit_code == 2
    assert "--only: unknown check 'overfit-bath' (did you mean 'overfit-batch'?)" in result.stderr


def test_dict_samples_with_keys_work(invoke):
    result = invoke({**_merge(data_train="pipeline:dicts", data_val="pipeline:dicts"),
                     "data": {"train": "pipeline:dicts", "val": "pipeline:dicts", "input_key": "image",
                              "target_key": "label"}}, "--only", "data-integrity")
    assert result.exit_code in (0, 1), result.output


def test_class_ids_beyond_the_outputs_fail_before_the_loss_runs():
    """On a GPU, cross_entropy with a class id out of range trips a device-side assert that surfaces later under
    another call; the preflight says it in the CPU's words first (ignored positions, -100, are not class ids)."""
    import torch

    from sanitycheck.engine.errors import UsageError
    from sanitycheck.pipeline.preflight import _targets_in_range

    outputs = torch.zeros(4, 10)
    with pytest.raises(UsageError, match=r"^loss: .*IndexError: Target 10 is out of bounds\.$"):
        _targets_in_range(torch.nn.CrossEntropyLoss(), outputs, torch.tensor([1, 10, 3, 2]))
    with pytest.raises(UsageError, match="Target -1 is out of bounds"):
        _targets_in_range(torch.nn.functional.nll_loss, outputs, torch.tensor([1, -1, 3, 2]))
    _targets_in_range(torch.nn.CrossEntropyLoss(), outputs, torch.tensor([1, -100, 9, 0]))  # in range: silent
    _targets_in_range(lambda out, y: out.sum(), outputs, torch.tensor([1, 10, 3, 2]))  # a loss of its own: its business
