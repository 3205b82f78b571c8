"""The shared trainer: budgets, seeding, label and input replacement, per-sample results, the reference model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import casekit
import probekit
from sanitycheck.probing import trainer
from sanitycheck.engine.config import load_config
from sanitycheck.pipeline.context import PipelineContext


def open_ctx(kind="mlp", seed=0, **overrides):
    spec = probekit.clean(kind, seed)
    data = {"train": spec.pop("train"), "val": spec.pop("val"), **overrides.pop("data", {})}
    return PipelineContext.open(load_config({"data": data, **spec, **overrides}))


@pytest.fixture(scope="module")
def ctx():
    return open_ctx()


def test_train_records_every_step_and_is_seeded(ctx):
    idx = ctx.sample_indices(ctx.train, 256, "t")
    a = trainer.train(ctx, ctx.train, idx, steps=40, tag="same")
    b = trainer.train(ctx, ctx.train, idx, steps=40, tag="same")
    assert a.steps == 40 and len(a.accuracies) == 40 and a.stopped == "steps"
    assert a.losses == b.losses  # same tag: same initialization and batch order
    assert all(0 <= v <= 1 for v in a.accuracies)
    assert np.mean(a.losses[-10:]) < a.losses[0]  # it trains
    c = trainer.train(ctx, ctx.train, idx, steps=40, tag="other")
    assert c.losses != a.losses


def test_final_evaluation_is_per_sample_and_consistent(ctx):
    idx = ctx.sample_indices(ctx.train, 200, "t")
    result = trainer.train(ctx, ctx.train, idx, steps=60, tag="t", eval_split=ctx.val,
                           eval_indices=ctx.sample_indices(ctx.val, 100, "e"))
    final = result.final
    assert final.n == 200 and final.losses.shape == (200,) and final.correct.shape == (200,)
    # Margins are positive exactly where the prediction is right; the mean per-sample loss is the loss.
    assert np.array_equal(final.margins > 0, final.correct)
    assert math.isclose(final.mean_loss, ctx.evaluate_loss(result.model.eval(), ctx.train, idx), rel_tol=1e-4)
    assert result.eval.n == 100 and result.eval.metric == "accuracy" and 0 <= result.eval.score <= 1


def test_labels_and_inputs_transform_replace_what_the_model_sees(ctx):
    idx = ctx.sample_indices(ctx.train, 64, "t")
    wrong = (ctx.train.data_pass().targets[idx] + 1) % 10
    result = trainer.train(ctx, ctx.train, idx, steps=150, labels=wrong, tag="t")
    assert np.array_equal(result.final.targets, wrong)  # scored against the labels it was trained on
    assert result.final.accuracy > 0.8  # and it memorized them
    zeroed = trainer.train(ctx, ctx.train, idx, steps=30, inputs_transform=torch.zeros_like, tag="t")
    assert np.unique(zeroed.final.predictions).size == 1  # every input is the same: one prediction for all


def test_fit_threshold_and_time_budget_stop_early(ctx):
    idx = ctx.sample_indices(ctx.train, 32, "t")
    fit = trainer.train(ctx, ctx.train, idx, steps=1000, fit_threshold=0.9, fit_every=5, tag="t")
    assert fit.stopped == "fit" and fit.steps_to_fit == fit.steps < 1000 and fit.steps % 5 == 0
    assert fit.final.accuracy >= 0.9
    timed = trainer.train(ctx, ctx.train, idx, steps=10**6, seconds=0.2, tag="t", evaluate_train=False)
    assert timed.stopped == "seconds" and timed.steps < 10**6 and timed.final is None


def test_reference_model_is_shared_and_held_out(ctx):
    first = trainer.reference_model(ctx)
    assert trainer.reference_model(ctx) is first
    plan = trainer.reference_plan(ctx)
    assert plan.eval_split == "val" and first.eval.n == len(plan.eval_indices)
    assert first.eval.accuracy > 0.8  # digits are learnable in the reference budget


def test_without_val_the_reference_holds_out_part_of_train():
    ctx = open_ctx(data={"val": None})
    plan = trainer.reference_plan(ctx)
    assert plan.eval_split == "train" and not set(plan.train_indices) & set(plan.eval_indices)


def test_regression_scores_r2():
    ctx = open_ctx("regression")
    result = trainer.reference_model(ctx)
    assert result.eval.metric == "r2" and result.eval.correct is None
    assert 0.2 < result.eval.r2 < 1  # diabetes: a real but modest signal


def test_binary_single_logit_and_dict_batches():
    (xt, yt), (xv, yv) = casekit.breast_cancer()

    class Dicts(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y.float()[:, None]

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"features": self.x[i], "label": self.y[i]}

    ctx = PipelineContext.open(load_config({
        "data": {"train": Dicts(xt, yt), "val": Dicts(xv, yv), "input_key": "features", "target_key": "label"},
        "model": lambda: casekit.mlp(30, 1), "loss": "torch.nn:BCEWithLogitsLoss",
    }))
    idx = ctx.sample_indices(ctx.train, 128, "t")
    labels = 1 - ctx.train.data_pass().targets[idx]
    result = trainer.train(ctx, ctx.train, idx, steps=100, labels=labels, tag="t",
                           eval_split=ctx.val, eval_indices=np.arange(len(ctx.val)))
    assert result.final.metric == "accuracy" and result.final.accuracy > 0.8  # fits the flipped labels
    assert result.eval.accuracy < 0.3  # which are wrong on the real held-out labels


def test_tracking_the_held_out_loss_does_not_change_the_run(ctx):
    idx = ctx.sample_indices(ctx.train, 256, "t")
    held_out = ctx.sample_indices(ctx.val, 64, "e")
    plain = trainer.train(ctx, ctx.train, idx, steps=25, tag="track")
    tracked = trainer.train(ctx, ctx.train, idx, steps=25, tag="track", track_split=ctx.val, track_indices=held_out,
                            track_every=10)
    assert tracked.losses == plain.losses  # eval-mode evaluations draw no randomness and update nothing
    assert [p.step for p in tracked.tracked] == [0, 10, 20, 25]
    assert tracked.tracked[0].train_loss is None
    assert tracked.tracked[1].train_loss == pytest.approx(np.mean(plain.losses[:10]))
    assert tracked.tracked[-1].train_loss == pytest.approx(np.mean(plain.losses[20:]))
    assert tracked.tracked[-1].held_out_loss == pytest.approx(ctx.evaluate_loss(tracked.model.eval(), ctx.val, held_out),
                                                             rel=1e-4)
    assert tracked.tracked[-1].held_out_loss < tracked.tracked[0].held_out_loss


def test_a_model_computing_its_own_cross_entropy_is_evaluated_in_batches():
    """An HF-style classifier (``loss: model``, one class id per sample): per-sample losses come from one forward
    pass of the batch, not one pass per sample (which made its evaluations 10x slower than the plan assumed, and
    the randomization test ran out of time)."""
    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.calls = casekit.mlp(64, 10), 0

        def forward(self, x, labels=None):
            self.calls += 1
            logits = self.net(x)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    ctx = open_ctx(model=Classifier, loss="model")
    model = ctx.make_model("t")
    idx = np.arange(64)
    result = trainer.evaluate(ctx, model, ctx.val, idx)
    assert model.calls == 1 and np.isfinite(result.losses).all()
    batch = ctx.batch(ctx.val, idx)
    x, y = ctx.val.unpack(batch)
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model.net(x), y, reduction="none").numpy()
    assert np.allclose(result.losses, expected, atol=1e-5)
