"""Shared fixtures: the case kit (real sklearn data + small models) and a helper to run checks on objects."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "benchmarks" / "cases"
sys.path.insert(0, str(CASES))  # casekit: the same building blocks the benchmark cases use


@pytest.fixture(scope="session")
def host():
    """The plugin host with every installed check (loaded once: entry points are scanned only here)."""
    from sanitycheck.engine.host import load_host

    return load_host()


@pytest.fixture
def run_pipeline(host):
    """Run checks on a pipeline given as Python objects: run_pipeline(only=[...], train=..., val=..., model=..., loss=...)."""
    from sanitycheck.engine.runner import run

    def _run(only=None, skip=None, train=None, val=None, augment=None, **config):
        data = {"train": train, "val": val}
        if augment is not None:
            data["augment"] = augment
        data.update(config.pop("data", {}))
        return run({"data": data, **config}, only=only, skip=skip, host=host)

    return _run


def codes(report, check: str | None = None, at_least: str = "info") -> set[str]:
    """The codes a report found (optionally of one check, at or above a severity)."""
    from sanitycheck.engine.models import at_or_above

    return {f.code for f in report.findings if (check is None or f.check == check) and at_or_above(f.severity, at_least)}


def loud(report, check: str) -> list:
    """Warnings and errors of one check (a clean pipeline must have none)."""
    return [f for f in report.findings if f.check == check and f.severity in ("error", "warning")]


def measured_step(monkeypatch, seconds: float) -> None:
    """Make the one measured step cost (:func:`sanitycheck.probing.budget.step_cost`) ``seconds`` a step whatever
    the batch, while the steps themselves stay as fast as they are: the budgets sized from it see a slow model."""
    import dataclasses

    from sanitycheck.probing import budget

    measured = budget.step_cost
    monkeypatch.setattr(budget, "step_cost", lambda ctx, size: dataclasses.replace(
        measured(ctx, size), base=seconds, per_sample=0.0))


def pinned_step_cost(monkeypatch, base: float, per_sample: float, eval_per_sample: float = 0.0005) -> None:
    """Make the one timing of the user's step (:func:`sanitycheck.probing.budget.measure_step_cost`) report each
    step as ``base + per_sample * batch`` seconds and each evaluated sample as ``eval_per_sample``: the budgets are
    planned from that cost (a quiet machine's, or a slow model's) whatever the machine's load."""
    from sanitycheck.probing import budget, trainer

    pinned = lambda *a, **k: budget.StepCost(base, per_sample, eval_per_sample)  # noqa: E731
    monkeypatch.setattr(trainer, "measure_step_cost", pinned)
    monkeypatch.setattr(budget, "measure_step_cost", pinned)
