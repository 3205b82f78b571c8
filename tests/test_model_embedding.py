"""The shared embedding from the model's penultimate features (config ``embedding: {source: model, layer: ...}``).

What the model sees decides what counts as a neighbour: a model that cannot tell two inputs apart makes them
duplicates, one that sees a pattern the 8x8 thumbnails average away makes its carriers outliers.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from typer.testing import CliRunner

from conftest import codes
from sanitycheck.faces.cli import app
from sanitycheck.engine.config import load_config
from sanitycheck.pipeline.context import PipelineContext
from sanitycheck.pipeline.tensors import to_numpy
from sanitycheck.probing.embedding import embed, embedding, hashes, source
from sanitycheck.pipeline.features import raw_features
from sanitycheck.probing.neighbors import knn


def images(n=300, seed=0):
    """Smooth random pictures (3, 32, 32) and labels."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, 3, 4, 4)).astype(np.float32)
    x = torch.nn.functional.interpolate(torch.from_numpy(base), size=(32, 32), mode="bilinear")
    return x, torch.from_numpy(rng.integers(0, 10, n))


class MirrorBlind(nn.Module):
    """Features that cannot tell an image from its mirror image: 4x4 averages of x + flip(x)."""

    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(x + x.flip(-1), 4).flatten(1)


def mirror_blind_model():
    return nn.Sequential(MirrorBlind(), nn.Linear(48, 10))


def open_ctx(train, val=None, model=mirror_blind_model, **config):
    data = {"train": train} if val is None else {"train": train, "val": val}
    return PipelineContext.open(load_config({"data": data, "model": model, "loss": "torch.nn:CrossEntropyLoss", **config}))


def test_mirrored_copies_are_duplicates_for_a_mirror_blind_model_but_not_in_pixels():
    x, y = images(300)
    mirrored = TensorDataset(x[:40].flip(-1).clone(), y[:40])  # look different: a thumbnail sees another picture
    nearest = {}
    for src in ("pixels", "model"):
        ctx = open_ctx(TensorDataset(x, y), mirrored, embedding={"source": src})
        assert source(ctx) == src
        d, i = knn(embedding(ctx, ctx.val), embedding(ctx, ctx.train), 1, exact=True)
        nearest[src] = (d[:, 0], i[:, 0])
        assert np.array_equal(hashes(ctx, ctx.val), ctx.val.data_pass().hashes)  # exact hashes stay on the inputs
    d, i = nearest["model"]
    assert (i == np.arange(40)).all() and d.max() < 1e-2  # each copy lands on its original
    d, i = nearest["pixels"]
    assert (i == np.arange(40)).mean() < 0.2 and np.median(d) > 0.5


def test_default_is_pixels():
    x, y = images(60)
    ctx = open_ctx(TensorDataset(x, y))
    assert ctx.config.embedding.source == "pixels" and ctx.config.embedding.layer is None
    assert source(ctx) == "pixels"
    assert np.array_equal(embedding(ctx, ctx.train), raw_features(x.numpy())[0])  # today's 8x8 thumbnails


def test_model_embedding_is_the_centred_unit_length_input_of_the_last_linear():
    torch.manual_seed(0)
    x = torch.randn(120, 20)
    y = torch.randint(0, 3, (120,))

    def model():
        return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))

    ctx = open_ctx(TensorDataset(x, y), model=model, embedding={"source": "model"})
    net = ctx.make_model("embedding").eval()  # the seeded model the embedding uses
    with torch.no_grad():
        feats = net[:4](x).numpy().astype(np.float64)
    want = feats - feats.mean(0)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    got = embedding(ctx, ctx.train)
    assert got.shape == (120, 8) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5

    # layer: the input of another submodule (a dotted name; Sequential children are "0", "1", ...)
    ctx = open_ctx(TensorDataset(x, y), model=model, embedding={"source": "model", "layer": "2"})
    with torch.no_grad():
        feats = ctx.make_model("embedding")[:2](x).numpy().astype(np.float64)
    want = feats - feats.mean(0)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.abs(embedding(ctx, ctx.train) - want).max() < 1e-5


class HeadFirst(nn.Module):
    """The head is defined before the backbone, and an auxiliary Linear after it is never used."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.body = nn.Sequential(nn.Linear(20, 8), nn.Tanh())
        self.aux = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.body(x))


def test_default_layer_is_the_last_linear_the_forward_pass_calls():
    torch.manual_seed(0)
    x, y = torch.randn(100, 20), torch.randint(0, 3, (100,))
    ctx = open_ctx(TensorDataset(x, y), model=HeadFirst, embedding={"source": "model"})
    with torch.no_grad():
        feats = ctx.make_model("embedding").body(x).numpy().astype(np.float64)
    want = feats - feats.mean(0)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.abs(embedding(ctx, ctx.train) - want).max() < 1e-5


def test_wide_features_are_projected_and_extra_inputs_share_the_space():
    x, y = images(150)
    x8 = (x * 255).round().to(torch.uint8)  # the user's format: uint8 images the model scales itself

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
            self.head = nn.Linear(8 * 32 * 32, 10)  # penultimate features: 8192 wide

        def forward(self, x):
            return self.head(self.body(x.float() / 255).flatten(1))

    ctx = open_ctx(TensorDataset(x8, y), model=Net, embedding={"source": "model"})
    e = embedding(ctx, ctx.train)
    assert e.shape == (150, 256) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    # extra inputs (float32 arrays, as augmentation passes them) are collated like the training samples
    assert np.abs(embed(ctx, x8[:10].numpy().astype(np.float32)) - e[:10]).max() < 1e-4
    assert np.abs(embed(ctx, [x8[3], x8[4]]) - e[3:5]).max() < 1e-4
    assert ctx.shared("embedding:train", lambda: None) is e  # computed once, shared


class DictImages(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"image": self.x[i], "label": self.y[i], "id": i}


def test_dict_samples_are_fed_in_the_users_format():
    x, y = images(80)
    ctx = open_ctx(DictImages(x, y), embedding={"source": "model"},
                   data={"train": DictImages(x, y), "input_key": "image", "target_key": "label"})
    e = embedding(ctx, ctx.train)
    assert e.shape == (80, 48)
    assert np.abs(embed(ctx, x[:5]) - e[:5]).max() < 1e-5


def test_outliers_see_what_the_model_sees(run_pipeline):
    """A faint checkerboard that 8x8 averaging erases, but a feature of the model responds to strongly."""
    x, y = images(300)
    planted = [17, 123, 250]
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * 2.0 - 1.0
    rng = np.random.default_rng(1)
    for i in planted:
        x[i] += float(rng.uniform(0.02, 0.04)) * checker

    class CheckerDetector(nn.Module):
        def forward(self, x):
            response = (x * checker).mean((1, 2, 3)).abs()[:, None] * 1000.0
            return torch.cat([nn.functional.adaptive_avg_pool2d(x, 4).flatten(1), response.expand(-1, 4)], 1)

    def model():
        return nn.Sequential(CheckerDetector(), nn.Linear(52, 10))

    flagged = {}
    for src in ("pixels", "model"):
        report = run_pipeline(only=["outliers"], train=TensorDataset(x, y), model=model,
                              loss="torch.nn:CrossEntropyLoss", embedding={"source": src})
        assert report.checks[0].status in ("passed", "failed"), report.checks[0]
        found = [f for f in report.findings if f.code == "SC601"]
        flagged[src] = set(found[0].samples["train"]) if found else set()
    assert set(planted) <= flagged["model"]
    assert not set(planted) & flagged["pixels"]
    assert "SC601" in codes(run_pipeline(only=["outliers"], train=TensorDataset(x, y), model=model,
                                         loss="torch.nn:CrossEntropyLoss", embedding={"source": "model"}))


# ------------------------------------------------------------------------------------------- bad config

PIPELINE = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    train = TensorDataset(x, y)

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
            self.fc = nn.Linear(16, 3)
            self.unused = nn.Linear(16, 3)
        def forward(self, x):
            return self.fc(self.body(x))

    class NoLinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(8, 3))
        def forward(self, x):
            return x @ self.w

    def make_model():
        return Head()

    def no_linear():
        return NoLinear()
''')

BASE = {"data": {"train": "pipeline:train"}, "model": "pipeline:make_model", "loss": "torch.nn:CrossEntropyLoss"}

BAD = [
    ("unknown key", {"source": "model", "layr": "fc"}, "unknown key 'embedding.layr' (did you mean 'embedding.layer'?)"),
    ("unknown source", {"source": "features"}, "key 'embedding.source': Input should be 'pixels' or 'model'"),
    ("not a mapping", "model", "key 'embedding'"),
    ("layer without model source", {"layer": "fc"}, "embedding.layer 'fc' is only used with source: model"),
    ("no such layer", {"source": "model", "layer": "body.2"}, "embedding.layer: the model has no submodule 'body.2'"),
    ("misspelt layer", {"source": "model", "layer": "fcc"}, "did you mean 'fc'?"),
    ("layer never called", {"source": "model", "layer": "unused"}, "embedding.layer: 'unused' was not called"),
    ("no linear", {"source": "model"}, "embedding.layer: the model has no nn.Linear"),
]


@pytest.fixture
def invoke(tmp_path):
    import yaml

    (tmp_path / "pipeline.py").write_text(PIPELINE)

    def _invoke(config: dict):
        path = tmp_path / "sanitycheck.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return CliRunner().invoke(app, ["run", str(path), "--quiet", "--only", "outliers"])

    return _invoke


@pytest.mark.parametrize("name,value,message", BAD, ids=[c[0] for c in BAD])
def test_bad_embedding_config_is_one_clear_message(invoke, name, value, message):
    config = {**BASE, "embedding": value}
    if name == "no linear":
        config["model"] = "pipeline:no_linear"
    result = invoke(config)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 2


def test_good_embedding_config_runs(invoke):
    for value in (None, {"source": "pixels"}, {"source": "model"}, {"source": "model", "layer": "body.1"}):
        result = invoke({**BASE, "embedding": value})
        assert result.exit_code in (0, 1), (value, result.output)
