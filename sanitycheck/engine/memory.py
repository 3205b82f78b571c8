"""Give freed heap memory back to the operating system after the long scans (glibc only; a no-op elsewhere), and
back large write-once arrays by huge pages (:func:`empty_huge`) or by memory forked workers share
(:func:`empty_shared`).

Why: a long scan (the data pass over a split) allocates and frees many mid-sized temporaries (a chunk of
inputs converted to float32, its features), and glibc keeps what they free for reuse, so the heap fragments:
measured at 1M samples, the scans left 0.1 to 1.4 GB of free but resident heap (it varied from run to run),
which ``malloc_trim`` returned at once. Calling :func:`trim` after a scan bounds the resident memory to what
is live. The runner also calls it after every check: on the CIFAR-sized pipeline (benchmarks/preflight_vs_epoch.py)
the checks' freed temporaries stayed resident and the next check's peak stacked on them; trimmed, the run's peak fell
from 2084 MB to 1828 MB. (The neighbour search no longer needs it: FAISS works in fixed, reused blocks.) It only releases free pages: it changes no setting of the
allocator, so it is safe in a user's own process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

import numpy as np

_trim = _madvise = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        _libc = None
    try:
        _trim = _libc.malloc_trim
        _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
    except AttributeError:  # musl and other C libraries have no malloc_trim
        _trim = None
    try:
        _madvise = _libc.madvise
        _madvise.argtypes, _madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    except AttributeError:
        _madvise = None

#: Linux's MADV_HUGEPAGE, and the huge page size it asks for (x86-64 and arm64 with 4 KiB pages).
MADV_HUGEPAGE = 14
HUGE_PAGE = 2 * 2**20


def trim() -> None:
    """Return the C heap's free memory to the operating system (``malloc_trim(0)``; milliseconds)."""
    if _trim is not None:
        _trim(0)


def empty_shared(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialized array in an anonymous *shared* mapping: processes forked after it is made (DataLoader
    workers under the ``fork`` start method) write into the very same memory.

    Why: the data pass's workers used to send each chunk of inputs back as a shared-memory tensor, which the main
    process then copied into the input cache. On the 2-core VM that copy took 2.0 s of the main thread for the 737 MB
    cache of 60k CIFAR-sized images (every page of every chunk faulted in twice: written in the worker, read in the
    main process). Two forked processes filled a 737 MB shared mapping in 0.2 s, and the data pass over the 50k
    training images went from 3.1-3.4 s to 2.4 s. An anonymous mapping is not a file in ``/dev/shm``, so a
    container's small ``/dev/shm`` does not limit it.
    """
    import mmap

    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(1, count * dtype.itemsize))  # MAP_SHARED | MAP_ANONYMOUS
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def empty_huge(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``np.empty(shape, dtype)``, its pages backed by transparent huge pages where Linux allows it.

    Why: the input cache of a large split is written once, chunk by chunk, and every first write to a 4 KiB page
    is a page fault. Measured on the 2-core VM (transparent_hugepage ``madvise`` mode, the common default): filling
    a 737 MB float32 array in 12 MB chunks took 0.78 s, 0.06 s after ``madvise(MADV_HUGEPAGE)``. Only advice:
    where it is refused or unsupported the array is an ordinary one.
    """
    array = np.empty(shape, dtype=dtype)
    if _madvise is not None and array.nbytes >= 2 * HUGE_PAGE:
        start = -(-array.ctypes.data // HUGE_PAGE) * HUGE_PAGE  # the first huge-page boundary inside the array
        length = (array.ctypes.data + array.nbytes - start) // HUGE_PAGE * HUGE_PAGE
        if length > 0:
            _madvise(start, length, MADV_HUGEPAGE)
    return array
