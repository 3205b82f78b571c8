"""task: sequence and loss: model: a char-level GPT and a Hugging-Face-style model run as users write them.

Planted: targets not aligned with their windows, targets not shifted (the inputs themselves), overlapping windows
split at random, token ids beyond the embedding, a model that returns no loss. Clean: the GPT exits 0 without a
warning, ignore_index is honoured, token ids are not pixels. The causal-mask probe has its own tests
(tests/plugins/test_causality.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset, TensorDataset, random_split
from typer.testing import CliRunner

import casekit
import charlm
from conftest import CASES, codes, loud, pinned_step_cost

GPT_CASE = CASES / "sequence-gpt-clean" / "sanitycheck.yaml"
HF_CASE = CASES / "sequence-hf-clean" / "sanitycheck.yaml"
TRAIN, VAL, VOCAB = charlm.splits(block_size=32, limit=6000)


def make_gpt(vocab: int = VOCAB):
    return lambda: charlm.GPT(charlm.GPTConfig(block_size=32, vocab_size=vocab))


def run_gpt(run_pipeline, only, train=TRAIN, val=VAL, model=None, **config):
    return run_pipeline(only=only, train=train, val=val, model=model or make_gpt(), loss="model", task="sequence",
                        **config)


# ------------------------------------------------------------------------------------------------ clean


def test_clean_gpt_exits_0_without_a_warning():
    from sanitycheck.faces.cli import app

    result = CliRunner().invoke(app, ["run", str(GPT_CASE), "--profile", "fast", "--fail-on", "warning"])
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in result.stdout


def _hf_pipeline():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hf_clean_pipeline", HF_CASE.parent / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("pad_label", [-100, 0])
def test_padding_labelled_with_the_pad_id_is_counted_in_the_loss(run_pipeline, pad_label):
    """One padded line per sample, as instruction data is batched: labels = input_ids keeps the pad id (0) at the
    padded positions, and the loss scores them (SC812); -100 there is right."""
    hf = _hf_pipeline()
    samples = hf.group_texts([line for line in hf.DOCUMENTS[0].splitlines()[:400] if line], hf.BLOCK)  # -100 pads
    for sample in samples if pad_label != -100 else ():
        sample["labels"] = torch.where(sample["attention_mask"] == 1, sample["labels"], pad_label)
    data = hf.LMDataset(samples)
    report = run_pipeline(only=["data-integrity"], train=data, val=data, model=hf.make_model, loss="model",
                          task="sequence")
    found = [f for f in report.findings if f.code == "SC812"]
    if pad_label == -100:
        assert not found
    else:
        assert found and found[0].severity == "warning" and found[0].evidence["share"] > 0.2


def test_a_model_loss_shifted_inside_is_told_apart_at_a_nearly_uniform_initialization():
    """GPT-2-sized vocabulary, small initial logits: the cross-entropy is ln V at either shift, within 1e-3 of the
    model's loss; the closest match, not the first, says where the targets are scored."""
    from sanitycheck.pipeline.losses import ModelLoss

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 50257, (4, 32), generator=g)
    logits = 0.02 * torch.randn(4, 32, 50257, generator=g)
    for shift in (0, 1):
        scored = logits[:, :-1] if shift else logits
        loss = F.cross_entropy(scored.reshape(-1, 50257), labels[:, shift:].reshape(-1))
        inferred = ModelLoss()
        inferred.infer(logits, labels, loss, "sequence")
        assert (inferred.kind, inferred.shift) == ("cross_entropy", shift)


def test_hf_style_output_object_and_dict_batches():
    """model(**batch) returning an object with .loss and .logits; input_ids / labels found without keys."""
    from sanitycheck.engine.config import load_config
    from sanitycheck.engine.runner import run
    from sanitycheck.pipeline.context import PipelineContext

    ctx = PipelineContext.open(load_config(HF_CASE))
    assert (ctx.train.input_key, ctx.train.target_key) == ("input_ids", "labels")
    assert ctx.loss_fn.kind == "cross_entropy" and ctx.loss_fn.shift == 1  # labels == input_ids, shifted inside
    assert ctx.token_embedding().name == "embed_tokens"
    assert ctx.num_classes == ctx.token_embedding().num_embeddings  # the output width: the vocabulary
    report = run(HF_CASE, only=["init-loss", "overfit-batch", "gradients", "batch-independence", "causality",
                                "data-integrity", "leakage"])
    assert not report.crashed, report.crashed
    assert not [f for f in report.findings if f.severity in ("error", "warning")], report.findings
    statuses = {c.name: c.status for c in report.checks}
    assert statuses["causality"] == statuses["batch-independence"] == "passed"


# -------------------------------------------------------------------------------------------- init loss


class MaskedLM(nn.Module):
    """A per-position model returning (logits, loss) with F.cross_entropy's default ignore_index=-100."""

    def __init__(self, vocab: int = 50):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.head = nn.Linear(16, vocab)

    def forward(self, idx, targets=None):
        logits = self.head(self.embed(idx))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def test_ignore_index_is_honoured_in_init_loss(run_pipeline):
    """Targets -100 on three quarters of the positions: the loss and the target entropy count the others only."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 50, (256, 16), generator=g)
    y = torch.full_like(x, -100)
    y[:, ::4] = x[:, ::4] % 2  # the counted targets: two classes only (entropy ln 2), out of 50 outputs
    data = TensorDataset(x, y)
    report = run_pipeline(only=["init-loss", "data-integrity"], train=data, val=data, model=MaskedLM, loss="model",
                          task="sequence")
    assert not report.crashed and not loud(report, "init-loss") and not loud(report, "data-integrity")
    assert {c.name: c.status for c in report.checks} == {"init-loss": "passed", "data-integrity": "passed"}
    # the expectation: ln 50 per counted token; -100 positions neither counted nor treated as labels
    with_evidence = run_pipeline(only=["init-loss"], train=data, val=data, model=_overconfident, loss="model",
                                 task="sequence")
    f = next(f for f in with_evidence.findings if f.code == "SC901")
    assert f.evidence["expected"] == pytest.approx(math.log(50), rel=1e-4)
    assert f.evidence["lowest_plausible"] == pytest.approx(math.log(2), rel=1e-3)


def _overconfident():
    model = MaskedLM()
    with torch.no_grad():
        model.head.weight.mul_(400)  # confident random predictions: the loss far above ln 50
    return model


# ---------------------------------------------------------------------------------------- data integrity


def test_token_ids_are_not_flagged_as_unscaled(run_pipeline):
    report = run_gpt(run_pipeline, ["data-integrity"])
    assert "SC809" not in codes(report) and not loud(report, "data-integrity")


def test_token_id_outside_the_vocabulary(run_pipeline):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 50, (128, 16), generator=g)
    x[7, 3] = 50  # one id the embedding has no row for
    y = torch.roll(x, -1, 1).clamp(max=49)
    report = run_pipeline(only=["data-integrity"], train=TensorDataset(x, y), val=TensorDataset(x[:32], y[:32]),
                          model=MaskedLM, loss="model", task="sequence")
    f = next(f for f in report.findings if f.code == "SC810")
    assert f.severity == "error" and f.samples["train"] == [7] and f.evidence["num_embeddings"] == 50


def test_sequence_mixing_across_the_batch_is_found_through_the_embedding(run_pipeline):
    class BatchMean(MaskedLM):  # "normalizes" with the batch's mean: sample i sees sample j
        def forward(self, idx, targets=None):
            h = self.embed(idx)
            logits = self.head(h - h.mean(0, keepdim=True))
            return logits, None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    x = torch.randint(0, 50, (128, 16), generator=torch.Generator().manual_seed(2))
    data = TensorDataset(x, torch.roll(x, -1, 1))
    report = run_pipeline(only=["batch-independence"], train=data, val=data, model=BatchMean, loss="model",
                          task="sequence")
    f = next(f for f in report.findings if f.code == "SC1101")
    assert f.evidence["gradient_with_respect_to"] == "embed"
    clean = run_pipeline(only=["batch-independence"], train=data, val=data, model=MaskedLM, loss="model",
                         task="sequence")
    assert clean.checks[0].status == "passed"


def test_channel_first_outputs_with_a_plain_cross_entropy(run_pipeline):
    """PyTorch's own layout (B, C, T) with nn.CrossEntropyLoss: C is read from dim 1."""
    class ChannelFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.head = nn.Embedding(50, 16), nn.Linear(16, 50)

        def forward(self, idx):
            return self.head(self.embed(idx)).transpose(1, 2)

    x = torch.randint(0, 50, (128, 16), generator=torch.Generator().manual_seed(3))
    data = TensorDataset(x, torch.roll(x, -1, 1))
    report = run_pipeline(only=["init-loss", "data-integrity"], train=data, val=data, model=ChannelFirst,
                          loss="torch.nn:CrossEntropyLoss", task="sequence")
    assert [c.status for c in report.checks] == ["passed", "passed"], report.findings


# ------------------------------------------------------------------------------------------ leakage


def test_repeated_text_is_not_leakage_but_a_random_split_of_windows_is(run_pipeline):
    clean = run_gpt(run_pipeline, ["leakage"])
    assert not loud(clean, "leakage")
    windows = charlm.splits(block_size=32, limit=3000)[0]
    train, val = random_split(windows, [0.9, 0.1], generator=torch.Generator().manual_seed(0))
    leaked = run_gpt(run_pipeline, ["leakage"], train=train, val=val)
    f = next(f for f in leaked.findings if f.code == "SC101")
    assert f.severity == "error" and f.evidence["shifted"] > 0.5 * len(val)


# ----------------------------------------------------------------------------------- target-leakage


class Unshifted(Dataset):
    """A language model's windows that forgot the shift: the target is the input itself."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, _ = self.base[i]
        return x, x.clone()


def test_targets_that_are_the_tokens_read_are_an_error_and_shifted_ones_are_not(run_pipeline):
    broken = run_gpt(run_pipeline, ["target-leakage"], train=Unshifted(TRAIN), val=Unshifted(VAL))
    f = next(f for f in broken.findings if f.code == "SC1802")
    assert f.severity == "error" and f.evidence["share"] == 1.0 and f.evidence["loss_shift"] == 0
    clean = run_gpt(run_pipeline, ["target-leakage"])
    assert [c.status for c in clean.checks] == ["passed"] and not clean.findings


def test_labels_equal_to_input_ids_are_right_when_the_model_shifts_them():
    """Hugging Face style: labels == input_ids, the model's loss shifts them (found by matching its loss)."""
    from sanitycheck.engine.runner import run

    report = run(HF_CASE, only=["target-leakage"])
    assert [c.status for c in report.checks] == ["passed"] and not report.findings


# ------------------------------------------------------------------------------------ label-shuffle


class Misaligned(Dataset):
    """Windows whose targets come from another part of the text: y is not x shifted."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return self.base[i][0], self.base[(i + 1777) % len(self.base)][1]


def test_label_shuffle_finds_targets_not_aligned_with_their_windows(run_pipeline):
    """Targets permuted across sequences are learned as well as these: an error (and the inputs are no use: SC204).
    The clean GPT passes the same test in test_clean_gpt_exits_0_without_a_warning."""
    tiny = lambda: charlm.GPT(charlm.GPTConfig(block_size=32, vocab_size=VOCAB, n_layer=1, n_head=2, n_embd=32))  # noqa: E731
    broken = run_gpt(run_pipeline, ["label-shuffle"], train=Misaligned(TRAIN), val=Misaligned(VAL), model=tiny,
                     batch_size=16)
    assert {"SC201", "SC204"} <= codes(broken, "label-shuffle", "error")
    sc204 = next(f for f in broken.findings if f.code == "SC204")
    assert sc204.evidence["scores"]["zeroed_inputs"] is not None  # not beaten: the zeroed model was trained


def _token_arrays(dataset):
    x, y = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(x).numpy(), torch.stack(y).numpy()


def test_input_tokens_predict_the_targets_of_their_own_windows_only():
    """The training-free signal: a table of target given input token beats the targets' frequencies on real
    windows (by far: the target at t is the input at t + 1), and not at all when the targets are another window's."""
    from sanitycheck.probing.token_signal import token_signal
    from sanitycheck_plugins.label_shuffle import sign_flip

    rng = np.random.default_rng(0)
    test = lambda diff: sign_flip(diff, rng, 999)  # noqa: E731
    x, y = _token_arrays(TRAIN)
    aligned = token_signal(x, y, None, rng, test)
    assert aligned.offset == 1 and aligned.p_value < 0.01 and aligned.gain > 0.9
    for other in (rng.permutation(len(y)), np.roll(np.arange(len(y)), 1777)):
        misaligned = token_signal(x, y[other], None, rng, test)
        assert misaligned.p_value == 1.0 and misaligned.gain < 0, misaligned
    hf = np.where(np.arange(x.shape[1]) < 28, x, -100)  # labels = input_ids, padding ignored
    assert token_signal(x, hf, -100, rng, test).offset == 0
    assert token_signal(x + 0.5, y, None, rng, test) is None  # not token ids


@pytest.mark.parametrize("aligned", [True, False])
def test_targets_of_other_windows_are_an_error_even_where_the_budget_fits_nothing(run_pipeline, monkeypatch, aligned):
    """A fitted budget in which the model does not even fit its training samples leaves "not learned" undecided,
    unless the input tokens do not predict the targets at all: then the targets belong to other windows (SC201).
    Real windows in the same budget are never an error."""
    from sanitycheck_plugins import label_shuffle

    pinned_step_cost(monkeypatch, 0.001, 0.002, 0.0005)  # the default budget: far over the cap
    fits = label_shuffle.fits_training_samples
    monkeypatch.setattr(label_shuffle, "fits_training_samples", lambda *a: (False, fits(*a)[1]))
    train, val = (TRAIN, VAL) if aligned else (Misaligned(TRAIN), Misaligned(VAL))
    report = run_gpt(run_pipeline, ["label-shuffle"], train=train, val=val, batch_size=16)
    if aligned:
        assert not codes(report, "label-shuffle", "error"), [f.message for f in report.findings]
        return
    sc201 = next((f for f in report.findings if f.code == "SC201"), None)
    assert sc201, [(f.code, f.message, f.evidence.get("input_label_signal")) for f in report.findings]
    assert sc201.severity == "error" and sc201.evidence["budget"]["fitted_to_step_time"]
    assert sc201.evidence["input_label_signal"]["absent"] and "did not fit its own training samples" in sc201.message


def test_clean_gpt_is_compared_with_the_best_input_free_predictor_untrained(run_pipeline, monkeypatch):
    """Zeroed token ids leave only the position: the per-position frequencies of the held-out targets are the best
    such a model can do, so it is not trained, and the clean GPT beats them."""
    from sanitycheck.probing import trainer

    # the step cost this GPT measures on a quiet 2-core machine: under load the measured cost grows, the fitted
    # budget shrinks (fewer steps, fewer held-out samples), and the comparison loses the power it is tested for
    pinned_step_cost(monkeypatch, 0.0055, 0.0004, 0.00019)
    zeroed, train = [], trainer.train
    monkeypatch.setattr(trainer, "train", lambda *a, **k: (zeroed.append(k.get("tag")) if k.get("inputs_transform")
                                                            else None) or train(*a, **k))
    report = run_gpt(run_pipeline, ["label-shuffle"])
    assert not loud(report, "label-shuffle"), [f.message for f in report.findings]
    assert zeroed == []


# -------------------------------------------------------------------------------- loss: model, other forms


class DigitsNet(nn.Module):
    """Classification with the loss inside: forward(x, y=None) -> (logits, loss)."""

    def __init__(self):
        super().__init__()
        self.net = casekit.mlp(64, 10)

    def forward(self, x, y=None):
        logits = self.net(x)
        return logits, (F.cross_entropy(logits, y) if y is not None else None)


class LossOnly(DigitsNet):
    def forward(self, x, y):
        return super().forward(x, y)[1]


def _digits():
    (xt, yt), (xv, yv) = casekit.digits()
    return casekit.dataset(xt, yt), casekit.dataset(xv, yv)


PROBES = ["init-loss", "overfit-batch", "gradients", "label-shuffle", "influence", "batch-independence"]


def test_classification_model_computing_its_loss_is_quiet(run_pipeline):
    train, val = _digits()
    report = run_pipeline(only=PROBES, train=train, val=val, model=DigitsNet, loss="model", profile="fast")
    assert not report.crashed, report.crashed
    assert not [f for f in report.findings if f.severity in ("error", "warning")], report.findings
    assert {c.name: c.status for c in report.checks}["init-loss"] == "passed"


def test_model_returning_only_its_loss(run_pipeline):
    train, val = _digits()
    report = run_pipeline(only=["init-loss", "overfit-batch", "label-shuffle"], train=train, val=val, model=LossOnly,
                          loss="model", profile="fast")
    assert not report.crashed, report.crashed
    status = {c.name: c for c in report.checks}
    assert status["init-loss"].status == "skipped" and status["overfit-batch"].status == "passed"
    assert not loud(report, "label-shuffle")


def test_user_train_step_with_a_model_loss(run_pipeline):
    def step(model, batch, loss_fn, optimizer):
        x, y = batch
        optimizer.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        return loss

    train, val = _digits()
    report = run_pipeline(only=["overfit-batch"], train=train, val=val, model=DigitsNet, loss="model", train_step=step)
    assert report.checks[0].status == "passed"


def test_model_without_a_loss_is_a_usage_error():
    from sanitycheck.engine.errors import UsageError
    from sanitycheck.engine.runner import run

    class LogitsOnly(DigitsNet):
        def forward(self, x, y=None):
            return self.net(x)

    train, val = _digits()
    with pytest.raises(UsageError, match="forward pass model\\(inputs, targets\\) failed .* takes 2 positional"):
        run({"data": {"train": train, "val": val}, "model": lambda: casekit.mlp(64, 10), "loss": "model"})
    with pytest.raises(UsageError, match="loss: model: model\\(inputs, targets\\) returned shape \\(8, 10\\)"):
        run({"data": {"train": train, "val": val}, "model": LogitsOnly, "loss": "model"})


def test_plain_loss_on_flattened_outputs(run_pipeline):
    """A bigram model that flattens its logits to (B*T, C) and a plain loss written for them, on real text."""

    class Flat(MaskedLM):
        def forward(self, idx):
            return self.head(self.embed(idx)).flatten(0, 1)

    def loss(outputs, targets):
        return F.cross_entropy(outputs, targets.reshape(-1))

    report = run_pipeline(only=["init-loss", "causality", "label-shuffle"], train=TRAIN, val=VAL,
                          model=lambda: Flat(VOCAB), loss=loss, task="sequence", profile="fast",
                          optimizer={"lr": 0.01})
    assert not report.crashed, report.crashed
    status = {c.name: c.status for c in report.checks}
    assert status["causality"] == "passed", report.checks
    assert not loud(report, "label-shuffle"), [f.message for f in report.findings]
