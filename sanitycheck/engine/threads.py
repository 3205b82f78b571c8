"""The run's one thread policy: how many CPU threads torch, FAISS and the data pass's workers use.

One rule, set once by the runner (:func:`apply`) instead of per probe: torch's intra-op threads and FAISS's
OpenMP threads equal the cores this process may run on (:func:`cpu_threads`: its CPU affinity, capped by a
cgroup CPU quota when there is one). The data pass's DataLoader workers (:mod:`sanitycheck.pipeline.data`) are
separate processes that read samples; PyTorch gives each worker one intra-op thread, and the main process only
summarizes what they send, so workers plus the main process do not oversubscribe the cores either.

``SANITYCHECK_THREADS`` overrides the count (e.g. to leave cores to other work on a shared machine).
"""

from __future__ import annotations

import math
import os


def cpu_threads() -> int:
    """The number of CPU threads this run uses: ``SANITYCHECK_THREADS``, else the cores available to the process
    (``os.sched_getaffinity``; ``os.cpu_count`` where that does not exist), capped by a cgroup v2 CPU quota."""
    env = os.environ.get("SANITYCHECK_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def apply() -> int:
    """Set torch's intra-op threads and FAISS's OpenMP threads to :func:`cpu_threads`; returns that number.

    Called by the runner once a run has opened the pipeline (torch is imported by then). FAISS is configured
    only when it is already imported or importable; it is a dependency, but the rule must not fail without it.
    """
    threads = cpu_threads()
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        return threads
    faiss.omp_set_num_threads(threads)
    return threads


__all__ = ["cpu_threads", "apply"]
