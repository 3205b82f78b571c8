"""Give freed heap memory back to the operating system after the long scans (glibc only; a no-op elsewhere).

Why: the k-NN search through the index (:mod:`sanitycheck.probing.neighbors`) allocates and frees thousands of
mid-sized temporaries (0.1-8 MiB: a cell's members, a block of distances). glibc serves them from its heap and
keeps what they free for reuse, and the heap fragments: measured at 1M samples, one search over 1M queries left
0.1 to 1.4 GB of free but resident heap (it varied from run to run, and whole runs peaked at 3-4 GB and once
10 GB), which ``malloc_trim`` returned at once. Calling :func:`trim` after each block of a scan bounds the resident
memory to what is live plus one block's working set. It only releases free pages: it changes no setting of the
allocator, so it is safe in a user's own process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_trim = None
if sys.platform.startswith("linux"):
    try:
        _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        _trim = None


def trim() -> None:
    """Return the C heap's free memory to the operating system (``malloc_trim(0)``; milliseconds)."""
    if _trim is not None:
        _trim(0)
