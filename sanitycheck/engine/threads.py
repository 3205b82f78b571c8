"""The run's one thread policy: how many CPU threads torch, FAISS and the data pass's workers use.

One rule, owned by the runner (:func:`policy`) instead of per-probe settings: torch's intra-op threads and
FAISS's OpenMP threads equal the **available cores**: the cores this process may run on (:func:`cpu_threads`:
its CPU affinity, capped by a cgroup CPU quota), less the cores other processes kept busy (:class:`Policy`).
The data pass's DataLoader workers (:mod:`sanitycheck.pipeline.data`) are as many as that, each with one
intra-op thread (PyTorch sets it in its workers), and the main process only summarizes what they send: the
cores are never oversubscribed by the run itself.

Why "less the busy ones": an OpenMP thread pool waits at the end of every parallel region for its slowest
thread, so a thread that shares its core with another process stalls every op. Measured on a 2-core machine
kept busy by other work (load average 7.5), the digits example's default suite took 89.7 s wall / 33.3 s CPU
with 2 threads and 19.4 s / 6.6 s with 1 (docs/benchmarks-speed.md). The runner re-decides before each check,
from the CPU time other processes used during the previous one (``/proc/stat`` minus this process's own),
so a run that starts on a busy machine and ends on a quiet one uses the cores as they free up.

``SANITYCHECK_THREADS`` fixes the count (no measuring).
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

#: A check boundary closer than this (seconds) to the last decision keeps it (too few clock ticks to measure).
MIN_INTERVAL = 0.25
#: A core counts as busy with other work when other processes used at least this share of it.
BUSY = 0.5


def cpu_threads() -> int:
    """The cores this process may use: ``SANITYCHECK_THREADS``, else its CPU affinity (``os.sched_getaffinity``;
    ``os.cpu_count`` where that does not exist), capped by a cgroup v2 CPU quota."""
    fixed = _fixed()
    if fixed:
        return fixed
    return len(_cores()) if _cores() else _count()


def _fixed() -> int | None:
    env = os.environ.get("SANITYCHECK_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else None


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))[: _count()]
    except (AttributeError, OSError):
        return []


def _count() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _busy_seconds(cores: list[int]) -> float | None:
    """CPU seconds the machine spent busy (not idle, not waiting for I/O) on ``cores`` since boot (Linux)."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cores}
    total = 0
    for line in lines:
        parts = line.split()
        if parts and parts[0] in wanted:
            v = [int(x) for x in parts[1:9]]
            total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal
    return total / os.sysconf("SC_CLK_TCK")


def _own_running() -> int:
    """This process's threads that are runnable now (at least 1: the caller). After torch has computed, its
    OpenMP threads spin for a while and count as running: they are not other work."""
    count = 0
    try:
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat") as f:
                    count += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        return 1
    return max(1, count)


def _own_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Policy:
    """The run's thread count, re-decided at each check boundary (:meth:`refresh`) from the others' load."""

    def __init__(self) -> None:
        self.cores = _cores()
        self.total = cpu_threads()
        self.fixed = _fixed() is not None
        self.threads = self.total if self.fixed else self._initial()
        self._mark()

    def _initial(self) -> int:
        """Before anything was measured: the runnable tasks right now (``/proc/loadavg``) other than this
        process's own threads, and the 1-minute load average, whichever is smaller, count as busy cores."""
        try:
            with open("/proc/loadavg") as f:
                fields = f.read().split()
            running = int(fields[3].split("/")[0]) - _own_running()
            others = min(float(fields[0]), float(running))
        except (OSError, ValueError, IndexError):
            return self.total
        return self._free(others)

    def _free(self, others: float) -> int:
        busy = int(others + (1 - BUSY))  # rounds at BUSY of a core
        return max(1, min(self.total, self.total - busy))

    def _mark(self) -> None:
        self._at, self._busy, self._own = time.monotonic(), _busy_seconds(self.cores), _own_seconds()

    def refresh(self) -> int:
        """Threads for what comes next: the cores others did not keep busy since the last decision."""
        if self.fixed or self._busy is None:
            return self.apply()
        elapsed = time.monotonic() - self._at
        if elapsed >= MIN_INTERVAL:
            busy, own = _busy_seconds(self.cores), _own_seconds()
            if busy is not None:
                others = max(0.0, (busy - self._busy) - (own - self._own)) / elapsed
                self.threads = self._free(others)
            self._mark()
        return self.apply()

    def apply(self) -> int:
        """Set torch's intra-op threads and FAISS's OpenMP threads to :attr:`threads`."""
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        from sanitycheck.engine.faiss_loader import load_faiss

        load_faiss().omp_set_num_threads(self.threads)
        return self.threads


_current: Policy | None = None


def current_threads() -> int:
    """The thread count of the run in progress (:func:`cpu_threads` outside a run)."""
    return _current.threads if _current is not None else cpu_threads()


def refresh() -> int:
    """Re-decide the thread count (the runner calls it before each check); :func:`cpu_threads` outside a run."""
    return _current.refresh() if _current is not None else cpu_threads()


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block and restored after it (0: left as they are).

    Why: a training step of a small model (the digits example's MLP: 0.3 ms) is dispatch-bound, and a second
    intra-op thread only adds synchronization; measured on the 2-core VM, the digits example's default suite took
    6.0 s with 2 threads and 3.6 s with 1 (docs/benchmarks-speed.md). ``sanitycheck.probing.budget`` decides it
    from the user's own step, timed both ways."""
    import torch

    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def map_on_cores(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
    """``fn`` of each item, in order, computed on as many Python threads as the run has cores, torch on one
    intra-op thread meanwhile (so the cores are not oversubscribed); on one core, plainly in order.

    For loops of many small torch ops (the leakage check's aligned look): each op is too small for intra-op threads
    to pay, but torch releases the GIL inside ops, so blocks run side by side. Measured on the 2-core VM: the looks
    of the 60k-image near-duplicate benchmark took about 1 s less. ``fn`` must be safe to run in threads (no
    gradients are recorded: ``torch.no_grad`` is set in each thread)."""
    import torch

    threads = min(current_threads(), len(items))
    if threads < 2:
        yield from map(fn, items)
        return

    def call(item: Any) -> Any:
        with torch.no_grad():
            return fn(item)

    from concurrent.futures import ThreadPoolExecutor

    with torch_threads(1), ThreadPoolExecutor(threads) as pool:
        yield from pool.map(call, items)


@contextmanager
def policy() -> Iterator[Policy]:
    """The thread policy for the length of a run; torch's previous thread count is restored afterwards (the
    Python API runs in the user's own process)."""
    import torch

    global _current
    before, outer = torch.get_num_threads(), _current
    _current = Policy()
    _current.apply()
    try:
        yield _current
    finally:
        _current = outer
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


__all__ = ["cpu_threads", "current_threads", "refresh", "policy", "torch_threads", "map_on_cores", "Policy"]
