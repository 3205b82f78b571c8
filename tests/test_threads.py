"""The run's one thread policy (sanitycheck/engine/threads.py)."""

from __future__ import annotations

import torch

from sanitycheck.engine import threads


def test_policy_sets_threads_for_the_run_and_restores_them(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("SANITYCHECK_THREADS", "1")
    with threads.policy() as p:
        assert p.threads == 1 and torch.get_num_threads() == 1 and threads.current_threads() == 1
        assert threads.refresh() == 1
    assert torch.get_num_threads() == before


def test_available_cores_leave_out_what_other_processes_keep_busy(monkeypatch):
    monkeypatch.delenv("SANITYCHECK_THREADS", raising=False)
    p = threads.Policy()
    assert 1 <= p.threads <= p.total == threads.cpu_threads()
    p.total = 4
    assert [p._free(others) for others in (0.0, 0.4, 0.6, 1.7, 3.9, 9.0)] == [4, 4, 3, 2, 1, 1]
    monkeypatch.setattr(threads, "MIN_INTERVAL", 0.0)
    assert 1 <= p.refresh() <= 4
