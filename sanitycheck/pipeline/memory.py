"""Give freed heap memory back to the operating system after the long scans (glibc only; a no-op elsewhere).

Why: a long scan (the data pass over a split) allocates and frees many mid-sized temporaries (a chunk of
inputs converted to float32, its features), and glibc keeps what they free for reuse, so the heap fragments:
measured at 1M samples, the scans left 0.1 to 1.4 GB of free but resident heap (it varied from run to run),
which ``malloc_trim`` returned at once. Calling :func:`trim` after a scan bounds the resident memory to what
is live. (The neighbour search no longer needs it: FAISS works in fixed, reused blocks.) It only releases free pages: it changes no setting of the
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
