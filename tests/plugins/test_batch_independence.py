"""batch-independence: a reshape that mixes samples is an error naming the module; BatchNorm in train mode is
info; a non-BatchNorm layer that mixes only in training is a warning; clean pipelines stay quiet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import casekit
import probekit
from conftest import codes, loud

CHECK = ["batch-independence"]


def run_kind(run_pipeline, kind="mlp", seed=0, **changes):
    return probekit.run_clean(run_pipeline, CHECK, kind, seed, **changes)




def test_reshape_that_mixes_samples_is_found_and_located(run_pipeline):
    finding = probekit.finding(run_kind(run_pipeline, model=probekit.mixing_mlp), "SC1101")
    assert finding.severity == "error"
    assert finding.evidence["first_mixing_module"] == "2 (MixBatch)"
    assert finding.samples["train"]  # the probed sample


def test_reduction_over_the_batch_in_eval_mode(run_pipeline):
    class Centered(nn.Module):
        def forward(self, x):
            return x - x.mean(0)  # BUG: the batch mean, at inference too

    model = lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), Centered(), nn.Linear(32, 10))  # noqa: E731
    finding = probekit.finding(run_kind(run_pipeline, model=model), "SC1101")
    assert finding.evidence["first_mixing_module"] == "3 (Centered)" and 0 < finding.evidence["ratio"] < 1


def test_batchnorm_in_train_mode_is_info(run_pipeline):
    report = run_kind(run_pipeline, "cnn")
    finding = probekit.finding(report, "SC1102")
    assert finding.severity == "info" and finding.evidence["module_type"] == "BatchNorm2d"
    assert not loud(report, "batch-independence")


def test_other_train_mode_mixing_is_a_warning(run_pipeline):
    finding = probekit.finding(run_kind(run_pipeline, model=probekit.train_mode_mixing_mlp), "SC1102")
    assert finding.severity == "warning" and finding.evidence["module_type"] == "TrainModeCentering"


class CastsToFloat(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(64, 10)

    def forward(self, x):
        return self.net(x.float() / 16)


def test_integer_inputs_no_embedding_reads_are_skipped_with_a_reason(run_pipeline):
    (xt, yt), (xv, yv) = casekit.digits()
    as_ids = lambda x: (x * 16).long()  # noqa: E731

    def report(model):
        return run_pipeline(only=CHECK, train=casekit.dataset(as_ids(xt), yt), val=casekit.dataset(as_ids(xv), yv),
                            model=model, loss=probekit.CE)

    status = report(CastsToFloat).checks[0]
    assert status.status == "skipped" and "floating-point" in status.reason
    # ids an nn.Embedding reads are probed through its output
    embedded = report(lambda: nn.Sequential(nn.Embedding(17, 4), nn.Flatten(), nn.Linear(256, 10))).checks[0]
    assert embedded.status == "passed", embedded.reason


@pytest.mark.parametrize("kind", probekit.KINDS)
def test_clean_pipelines_stay_quiet_over_seeds(run_pipeline, kind):
    for seed in range(5):
        report = run_kind(run_pipeline, kind, seed=seed)
        assert not report.crashed
        assert not loud(report, "batch-independence")
        assert "SC1101" not in codes(report)


@pytest.mark.parametrize("mixing", [False, True])
def test_a_model_of_several_inputs_is_probed_through_its_image(run_pipeline, mixing):
    """Inputs that are a tuple (an image and its metadata) were skipped ("not a floating-point tensor"); the
    gradient is now taken with respect to the first floating-point one."""
    (xt, yt), (xv, yv) = casekit.digits(image=True)
    report = run_pipeline(only=CHECK, train=probekit.WithMetadata(xt, yt), val=probekit.WithMetadata(xv, yv),
                          model=lambda: probekit.ImageAndMeta(mixing), loss=probekit.CE)
    assert report.checks[0].status == ("failed" if mixing else "passed"), report.checks[0].reason
    assert ("SC1101" in codes(report, at_least="error")) == mixing


class BatchStandardizedText(probekit.MeanPooledText):
    """A text classifier that standardizes its pooled features over the batch, in eval mode too."""

    def forward(self, input_ids, attention_mask, labels=None):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp_min(1)
        logits = self.head((pooled - pooled.mean(0)) / (pooled.std(0) + 1e-5))  # BUG: statistics of the batch
        return {"loss": None if labels is None else nn.functional.cross_entropy(logits, labels), "logits": logits}


def test_text_classifiers_are_probed_through_their_embedding(run_pipeline):
    # token ids were probed only with task: sequence: a text classifier was skipped ("not a floating-point tensor")
    pipeline = probekit.text_pipeline()
    clean = run_pipeline(only=["batch-independence"], **pipeline)
    assert [c.status for c in clean.checks] == ["passed"] and not loud(clean, "batch-independence")
    vocab = pipeline["model"]().embed.num_embeddings
    mixed = run_pipeline(only=["batch-independence"], **{**pipeline, "model": lambda: BatchStandardizedText(vocab)})
    assert "SC1101" in codes(mixed, at_least="error")
