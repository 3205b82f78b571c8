"""Import FAISS so that its matrix products use the CPU's vector units.

The ``faiss-cpu`` wheels (1.14.2 and 1.15.1 checked) bundle their own OpenBLAS, 0.3.15, which predates Intel's
Sapphire Rapids and Emerald Rapids Xeons (the hosts of most cloud GPUs today): on them it does not recognize the
CPU and falls back to its ``Prescott`` kernels (SSE3, no AVX). Measured on the 2-core VM (an Emerald Rapids Xeon,
family 6 model 207): FAISS's exact search of 2,000 x 50,000 192-dim rows took 1.21 s for k=1 and 0.75-0.98 s for
k=11 with the fallback, 0.23-0.25 s and 0.35 s with the AVX-512 kernels; training the 50k-image IVF index, 1.4-2.1 s
against 0.6 s (docs/benchmarks-speed.md). OpenBLAS reads ``OPENBLAS_CORETYPE`` once, when the library is loaded,
so :func:`load_faiss` sets it for the first import of FAISS only, from the CPU flags the kernel reports (the
flags of instructions the OS has enabled): ``SkylakeX`` where AVX-512 F/BW/DQ/VL/CD are all there, ``Haswell``
where AVX2 and FMA are, else nothing. OpenBLAS picks these same kernels itself on the CPUs it does know (its
Zen kernels are Haswell's); a value the user set is kept, and the variable is restored after the import, so
libraries loaded later choose for themselves.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: The CPU flags each OpenBLAS core type needs, best first.
CORE_TYPES = (("SkylakeX", {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}), ("Haswell", {"avx2", "fma"}))


def load_faiss() -> Any:
    """``import faiss``, with its bundled OpenBLAS told which kernels this CPU runs (see the module docstring)."""
    if "faiss" in sys.modules or "OPENBLAS_CORETYPE" in os.environ:
        import faiss

        return faiss
    core = core_type(cpu_flags())
    if core:
        os.environ["OPENBLAS_CORETYPE"] = core
    try:
        import faiss
    finally:
        if core:
            del os.environ["OPENBLAS_CORETYPE"]
    return faiss


def core_type(flags: set[str]) -> str | None:
    """The OpenBLAS core type for a CPU with these flags (None: leave the choice to OpenBLAS)."""
    return next((name for name, needs in CORE_TYPES if needs <= flags), None)


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's flags as Linux reports them on x86 (empty elsewhere, or where the file cannot be read)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


__all__ = ["load_faiss", "core_type", "cpu_flags"]
