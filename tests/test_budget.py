"""Budgets from measured cost (sanitycheck/probing/budget.py)."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from sanitycheck.probing.budget import FLOOR_S, MIN_CAP_S, budget_seconds, epoch_seconds, fit_budget, mlp_step_seconds, \
    time_cap
from sanitycheck.probing.trainer import reference_plan, step_cost


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
    reference_plan(ctx)  # the reference plan reuses the same measurement
    assert len(calls) == timed
    assert budget_seconds(ctx) == FLOOR_S  # a cheap epoch: the floor
    assert time_cap(ctx, 10.0) == MIN_CAP_S and time_cap(ctx, 1.0) == 1.0  # shortened, never above the default
    assert time_cap(ctx, 10.0, steps=300) == 10.0  # 300 cheap steps fit the short cap: the default stays the guard
    assert reference_plan(ctx).seconds == 10.0  # the randomization test's budget is never shortened
    assert mlp_step_seconds(ctx, 16, 32, 3) > 0
