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


def test_map_on_cores_keeps_the_order_and_one_torch_thread_per_worker(monkeypatch):
    import threading

    monkeypatch.setenv("SANITYCHECK_THREADS", "2")
    before = torch.get_num_threads()
    seen = []

    def work(i):
        seen.append((threading.get_ident(), torch.get_num_threads(), torch.is_grad_enabled()))
        return i * i

    assert list(threads.map_on_cores(work, range(40))) == [i * i for i in range(40)]
    assert {(n, grad) for _, n, grad in seen} == {(1, False)}  # one intra-op thread, no autograd
    assert threading.get_ident() not in {t for t, _, _ in seen}  # worker threads, not this one
    assert torch.get_num_threads() == before
    monkeypatch.setenv("SANITYCHECK_THREADS", "1")
    seen.clear()
    assert list(threads.map_on_cores(work, range(3))) == [0, 1, 4]
    assert {t for t, _, _ in seen} == {threading.get_ident()}  # one core: in order, on this thread


def test_no_torch_work_of_the_run_happens_on_the_calling_thread():
    # GNU OpenMP keeps a thread team per calling thread for the thread's life; a team on the caller beside a
    # check's makes the check's 2-thread steps run at one thread's speed (sanitycheck/engine/runner.py,
    # _open_pipeline). So the opening, like every check, runs on a thread of its own.
    import threading

    from torch.utils.data import TensorDataset

    import sanitycheck

    seen = set()

    class Recording(TensorDataset):
        def __getitem__(self, i):
            seen.add(threading.get_ident())
            return super().__getitem__(i)

    def model():
        seen.add(threading.get_ident())
        return torch.nn.Linear(4, 2)

    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    report = sanitycheck.run({"data": {"train": Recording(x, y)}, "model": model, "loss": "torch.nn:CrossEntropyLoss",
                              "batch_size": 16}, only=["overfit-batch", "data-integrity"])
    assert not report.crashed and seen
    assert threading.get_ident() not in seen


def test_faiss_kernels_follow_the_cpus_own_flags(tmp_path):
    from sanitycheck.engine import faiss_loader

    avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma"}
    assert faiss_loader.core_type(avx512) == "SkylakeX"
    assert faiss_loader.core_type({"avx2", "fma", "avx512f"}) == "Haswell"  # AVX-512 only in part
    assert faiss_loader.core_type({"sse3", "avx"}) is None  # OpenBLAS chooses
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse3 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert faiss_loader.cpu_flags(str(info)) == {"fpu", "sse3", "avx2", "fma"}
    assert faiss_loader.cpu_flags(str(tmp_path / "absent")) == set()


def test_faiss_is_loaded_with_the_kernels_of_this_cpu_and_the_environment_is_left_alone():
    """In a fresh interpreter (OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded): the bundled OpenBLAS
    runs the core type the flags call for, and the variable is gone again after the import; a user's own value
    is kept and obeyed."""
    import os
    import subprocess
    import sys

    probe = (
        "import ctypes, glob, os, pathlib, sys\n"
        "from sanitycheck.engine.faiss_loader import load_faiss, core_type, cpu_flags\n"
        "faiss = load_faiss()\n"
        "libs = glob.glob(str(pathlib.Path(faiss.__file__).parents[1] / 'faiss_cpu.libs' / 'libopenblas*'))\n"
        "core = None\n"
        "if libs:\n"
        "    lib = ctypes.CDLL(libs[0]); lib.openblas_get_corename.restype = ctypes.c_char_p\n"
        "    core = lib.openblas_get_corename().decode()\n"
        "print(os.environ.get('OPENBLAS_CORETYPE'), core, core_type(cpu_flags()))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    left, core, expected = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                                          check=True).stdout.split()
    assert left == "None"
    if core != "None" and expected != "None":  # a Linux wheel with its own OpenBLAS on an AVX2 / AVX-512 CPU
        assert core.lower() == expected.lower()
    kept = subprocess.run([sys.executable, "-c", probe], env={**env, "OPENBLAS_CORETYPE": "Prescott"},
                          capture_output=True, text=True, check=True).stdout.split()
    assert kept[0] == "Prescott" and kept[1] in ("Prescott", "None")
