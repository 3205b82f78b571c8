"""Budgets from measured cost (sanitycheck/probing/budget.py)."""

from __future__ import annotations

import dataclasses

import torch
from torch.utils.data import TensorDataset

import casekit
from conftest import pinned_step_cost

from sanitycheck.probing.budget import FLOOR_S, MIN_CAP_S, budget_seconds, epoch_seconds, fit_budget, mlp_step_seconds, \
    time_cap
from sanitycheck.probing.trainer import REFERENCE_MIN_SECONDS, REFERENCE_SECONDS, reference_plan, reference_seconds, \
    step_cost


def test_fit_budget_shrinks_only_expensive_work_and_keeps_the_minimum():
    assert fit_budget(10.0, 0.01, default=300, minimum=30) == 300  # cheap: the default
    assert fit_budget(10.0, 0.1, default=300, minimum=30) == 100  # 30 s of work, 10 s of budget
    assert fit_budget(1.0, 1.0, default=300, minimum=30) == 30  # never below what the verdict needs
    assert fit_budget(0.5, 0.005, default=300, minimum=30) == 300  # 1.5 s: below NEVER_SHRINK_S, left alone


def test_step_cost_is_measured_once_per_run_with_the_users_step():
    from sanitycheck.engine.config import load_config
    from sanitycheck.pipeline.context import PipelineContext

    calls = []

    def step(model, batch, loss_fn, optimizer):
        calls.append(len(batch[0]))
        optimizer.zero_grad()
        loss = loss_fn(model(batch[0]), batch[1])
        loss.backward()
        optimizer.step()
        return loss

    x, y = torch.randn(500, 8), torch.randint(0, 3, (500,))
    ctx = PipelineContext.open(load_config({"data": {"train": TensorDataset(x, y)}, "train_step": step,
                                            "model": lambda: torch.nn.Linear(8, 3), "batch_size": 50,
                                            "loss": "torch.nn:CrossEntropyLoss"}))
    calls.clear()
    cost = step_cost(ctx, 50)
    assert step_cost(ctx, 50) is cost and calls and set(calls) == {50}  # the user's step, on batches of batch_size
    assert epoch_seconds(ctx) == cost.step(50) * 10 > 0
    timed = len(calls)
    # a known cheap cost, so the default plan fits however loaded the machine (a plan that does not fit times
    # a smaller batch too): the reference plan then reuses the measurement and runs no step of its own
    ctx.cache["trainer:step-cost:50"] = dataclasses.replace(cost, base=0.0, per_sample=1e-5)
    reference_plan(ctx)
    assert len(calls) == timed
    assert budget_seconds(ctx) == FLOOR_S  # a cheap epoch: the floor
    assert time_cap(ctx, 10.0) == MIN_CAP_S and time_cap(ctx, 1.0) == 1.0  # shortened, never above the default
    # the guard rule: 300 steps of 0.5 ms fit the 2 s short cap, so the default stays the guard; 300 of 10 ms do not
    assert time_cap(ctx, 10.0, steps=300) == 10.0
    ctx.cache["trainer:step-cost:50"] = dataclasses.replace(cost, base=0.0, per_sample=2e-4)
    assert time_cap(ctx, 10.0, steps=300) == MIN_CAP_S
    # the reference run's cap: 30% of a cheap epoch, never below the 5 s its verdicts were measured to need
    assert reference_plan(ctx).seconds == REFERENCE_MIN_SECONDS
    for per_sample, cap in ((0.04, 6.0), (0.1, REFERENCE_SECONDS)):  # epochs of 20 s and 50 s (10 steps of 50)
        ctx.cache["trainer:step-cost:50"] = dataclasses.replace(cost, base=0.0, per_sample=per_sample)
        assert abs(reference_seconds(ctx) - cap) < 1e-9
    ctx.cache["trainer:step-cost:50"] = dataclasses.replace(cost, base=0.0, per_sample=1e-5)
    ctx.config.profile = "fast"  # the fast profile keeps its fixed cap; thorough scales the floor up
    assert reference_seconds(ctx) == 0.25 * REFERENCE_SECONDS
    ctx.config.profile = "thorough"
    assert reference_seconds(ctx) == 4.0 * REFERENCE_MIN_SECONDS
    assert mlp_step_seconds(ctx, 16, 32, 3) > 0


def _ctx_with_step(step):
    from sanitycheck.engine.config import load_config
    from sanitycheck.pipeline.context import PipelineContext

    x, y = torch.randn(400, 8), torch.randint(0, 3, (400,))
    return PipelineContext.open(load_config({"data": {"train": TensorDataset(x, y)}, "train_step": step,
                                             "model": lambda: torch.nn.Linear(8, 3), "batch_size": 50,
                                             "loss": "torch.nn:CrossEntropyLoss"}))


def _step_slower_on(threads_that_wait):
    """A user step that takes 20 ms longer on the given thread counts (how a dispatch-bound step or a
    compute-bound one behaves), recording the thread count of each call."""
    import time

    seen = []

    def step(model, batch, loss_fn, optimizer):
        seen.append(torch.get_num_threads())
        if threads_that_wait(torch.get_num_threads()):
            time.sleep(0.02)
        optimizer.zero_grad()
        loss = loss_fn(model(batch[0]), batch[1])
        loss.backward()
        optimizer.step()
        return loss

    return step, seen


def test_a_short_step_faster_on_one_thread_trains_on_one_thread(monkeypatch):
    from sanitycheck.engine.threads import torch_threads
    from sanitycheck.probing import budget
    from sanitycheck.probing.trainer import train

    monkeypatch.setattr(budget, "SHORT_STEP_S", 1.0)  # the rule, not the 10 ms threshold a loaded machine can pass

    step, seen = _step_slower_on(lambda threads: threads > 1)
    with torch_threads(2):
        ctx = _ctx_with_step(step)
        assert step_cost(ctx, 50).threads == 1
        seen.clear()
        train(ctx, ctx.train, list(range(200)), steps=5)
        assert seen == [1] * 5 and torch.get_num_threads() == 2  # one thread inside training only


def test_a_step_faster_on_more_threads_keeps_the_policy(monkeypatch):
    from sanitycheck.engine.threads import torch_threads
    from sanitycheck.probing import budget
    from sanitycheck.probing.trainer import train

    monkeypatch.setattr(budget, "SHORT_STEP_S", 1.0)

    step, seen = _step_slower_on(lambda threads: threads == 1)
    with torch_threads(2):
        ctx = _ctx_with_step(step)
        assert step_cost(ctx, 50).threads == 0
        seen.clear()
        train(ctx, ctx.train, list(range(200)), steps=5)
        assert seen == [2] * 5


def test_a_fitted_plan_makes_room_for_the_held_out_loss_it_tracks(monkeypatch):
    """The reference run evaluates its tracked held-out samples at 21 points; on a model slow to evaluate that took
    2 s of a 5 s cap and stopped the run early. A fitted plan counts it and tracks fewer samples (at least 64)."""
    from sanitycheck.engine.config import load_config
    from sanitycheck.pipeline.context import PipelineContext
    from sanitycheck.probing import trainer

    pinned_step_cost(monkeypatch, 0.002, 0.0005, 0.0005)  # 18 ms a step of 32, 0.5 ms an eval
    x, y = torch.randn(3000, 8), torch.randint(0, 3, (3000,))
    ctx = PipelineContext.open(load_config({"data": {"train": TensorDataset(x[:2000], y[:2000]),
                                                     "val": TensorDataset(x[2000:], y[2000:])},
                                            "model": lambda: torch.nn.Linear(8, 3), "batch_size": 32,
                                            "loss": "torch.nn:CrossEntropyLoss"}))
    plan = reference_plan(ctx)
    tracked = len(trainer.tracked_indices(ctx, plan))
    assert plan.fitted and plan.decisive and trainer.MIN_TRACK <= tracked < trainer.REFERENCE_TRACK_SAMPLES
    cost = plan.cost
    planned = plan.steps * cost.step(plan.batch_size) + cost.eval_per_sample * (
        len(plan.train_indices) + len(plan.eval_indices) + (trainer.REFERENCE_TRACK_POINTS + 1) * tracked)
    assert planned <= 1.01 * trainer.PLAN_SHARE * plan.seconds  # (the subset settles in rounds: within 1%)


def test_a_long_step_is_timed_once_and_scaled_to_other_batch_sizes(monkeypatch):
    """A step of seconds (an LBFGS step of 20 evaluations: 15 s on PyTorch's time-sequence example) is timed once
    after its warm-up instead of twice, and other batch sizes are scaled from it, not timed again."""
    import time

    from sanitycheck.probing import budget

    monkeypatch.setattr(budget, "LONG_STEP_S", 0.03)  # a "long" step in test time
    calls = []

    def step(model, batch, loss_fn, optimizer):
        calls.append(len(batch[0]))
        time.sleep(0.04)
        return casekit.default_step(model, batch, loss_fn, optimizer)

    ctx = _ctx_with_step(step)
    calls.clear()
    cost = step_cost(ctx, 50)
    assert calls == [50, 50] and cost.step(50) >= 0.04  # the warm-up and one timed step
    assert abs(budget.step_seconds(ctx, 10) - cost.step(50) / 5) < 1e-9 and calls == [50, 50]  # scaled, not timed


def test_a_pause_of_the_machine_during_one_timed_step_is_not_its_cost():
    """Another process took the core during one of the timed steps: the mean of two steps measured 0.00008 to
    0.00039 s a sample for the same MLP and fitted its plan to fewer steps in one run of six. The fastest of the
    timed steps counts, so a 0.2 s pause in one of them leaves the measured step near its real cost."""
    import time

    calls = []

    def step(model, batch, loss_fn, optimizer):
        calls.append(len(batch[0]))
        if len(calls) == 3:  # the warm-up, one timed step, then the machine pauses
            time.sleep(0.2)
        return casekit.default_step(model, batch, loss_fn, optimizer)

    ctx = _ctx_with_step(step)
    calls.clear()
    cost = step_cost(ctx, 50)
    assert len(calls) >= 3  # the pause fell inside the measurement
    assert cost.step(50) < 0.05, cost  # a Linear(8, 3) step on 50 rows: well under 50 ms, not the 200 ms pause
