"""Progress reporting: the engine's hook for long scans, and the live display of ``sanitycheck run``.

**Scans.** A long loop (the data pass over a split, a k-NN search, a check's own scan) reports through
:func:`scan_progress`::

    from sanitycheck.engine.progress import scan_progress

    with scan_progress("leakage: aligned look (val)", total) as tick:
        for block in blocks:
            ...
            tick(len(block))        # len(block) more of ``total`` items done

Whoever listens (:func:`listening`; the runner installs its ``progress`` callback for the whole run) is
called as ``callback(description, ScanEvent)``: once at the start (``done=0``), then at most every
:data:`UPDATE_EVERY` seconds, and once at the end (``finished=True``, even when the loop raised). Without a
listener (the Python API, pytest, ``--quiet``, stderr not a terminal) ``tick`` is a no-op function and nothing is
printed.

The live display that listens during ``sanitycheck run`` is a face: :mod:`sanitycheck.faces.display`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

#: A listener is told about a running scan at most this often (seconds), besides its start and its end.
UPDATE_EVERY = 0.1


@dataclass(frozen=True)
class ScanEvent:
    """Where one scan stands: ``done`` of ``total`` items; ``scan`` identifies the scan across its events."""

    scan: int
    description: str
    done: int
    total: int
    finished: bool = False


_listener: ContextVar[Callable[[str, Any], None] | None] = ContextVar("sanitycheck_scan_listener", default=None)
_ids = itertools.count(1)


@contextmanager
def listening(callback: Callable[[str, Any], None] | None) -> Iterator[None]:
    """Send every :func:`scan_progress` inside this block to ``callback(description, ScanEvent)`` (None: to no one)."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)


def _noop(n: int = 1) -> None:
    """The ``tick`` of a scan nobody listens to."""


@contextmanager
def scan_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Report a long loop's progress: yields ``tick(n=1)``, to call as ``n`` more of ``total`` items are done.

    Cheap: with no listener ``tick`` does nothing; with one, the listener is called at most every
    :data:`UPDATE_EVERY` seconds (plus start and end), however often ``tick`` is called.
    """
    callback = _listener.get()
    if callback is None:
        yield _noop
        return
    scan, total = next(_ids), int(total)
    done, last = 0, time.monotonic()
    callback(description, ScanEvent(scan, description, 0, total))

    def tick(n: int = 1) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= UPDATE_EVERY:
            last = now
            callback(description, ScanEvent(scan, description, done, total))

    try:
        yield tick
    finally:
        callback(description, ScanEvent(scan, description, done, total, finished=True))
