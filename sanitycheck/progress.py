"""Progress reporting: the engine's hook for long scans, and the live display of ``sanitycheck run``.

**Scans.** A long loop (the data pass over a split, a k-NN search, a check's own scan) reports through
:func:`scan_progress`::

    from sanitycheck.progress import scan_progress

    with scan_progress("leakage: aligned look (val)", total) as tick:
        for block in blocks:
            ...
            tick(len(block))        # len(block) more of ``total`` items done

Whoever listens (:func:`listening`; the runner installs its ``progress`` callback for the whole run) is
called as ``callback(description, ScanEvent)``: once at the start (``done=0``), then at most every
:data:`UPDATE_EVERY` seconds, and once at the end (``finished=True``, even when the loop raised). Without a
listener (the Python API, pytest, ``--quiet``, stderr not a terminal) ``tick`` is a no-op function and nothing is
printed.

**Display.** :class:`ProgressDisplay` (on stderr, so a report on stdout stays clean): a bar over the selected
checks with the total elapsed time and an ETA from the checks finished so far, under it the check running now with
its own elapsed time, and under that each scan in progress (description, n/total, ETA); each finished check leaves
one line (status and seconds). The CLI uses it only when stderr is a terminal and ``--quiet`` is not given. It is
the runner's ``progress`` callback: ``(name, "queued" | "start" | CheckResult | ScanEvent)``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

#: A listener is told about a running scan at most this often (seconds), besides its start and its end.
UPDATE_EVERY = 0.1

STATUS_STYLE = {"passed": "green", "failed": "red", "skipped": "dim", "error": "bold magenta"}


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


class ProgressDisplay:
    """A rich progress bar fed by the runner's callback; use as a context manager around the run."""

    def __init__(self, console: Console | None = None):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.console = console or Console(stderr=True)
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task: Any = None
        self.total = 0
        self.current: str | None = None
        self.check_task: Any = None
        self.started_at = 0.0
        #: The bar's task of each scan in progress (by ``ScanEvent.scan``).
        self.scans: dict[int, Any] = {}

    def __enter__(self) -> ProgressDisplay:
        self.bar.start()
        self.task = self.bar.add_task("opening the pipeline (data pass, preflight)", total=None)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.stop()

    def __call__(self, name: str, event: Any) -> None:
        if isinstance(event, ScanEvent):
            self._scan(event)
        elif event == "queued":
            self.total += 1
            self.bar.update(self.task, total=self.total)
        elif event == "start":
            if self.current is None:  # the pipeline is open: the overall task now counts checks
                self.bar.update(self.task, description="checks")
            self.current, self.started_at = name, time.perf_counter()
            # Its own task, so the elapsed column shows how long this check has run.
            self.check_task = self.bar.add_task(f"  [bold]{name}[/bold]", total=None)
        else:  # the finished CheckResult
            status = getattr(event, "status", "passed")
            seconds = getattr(event, "duration_s", time.perf_counter() - self.started_at)
            if self.check_task is not None:
                self.bar.remove_task(self.check_task)
                self.check_task = None
            self.bar.console.print(f"  [{STATUS_STYLE.get(status, '')}]{status:>7}[/] {name} [dim]{seconds:.1f} s[/dim]",
                                   highlight=False)
            self.bar.advance(self.task)

    def _scan(self, event: ScanEvent) -> None:
        """A scan's own line under the check (or under "opening the pipeline"), removed when it ends."""
        task = self.scans.get(event.scan)
        if event.finished:
            if task is not None:
                self.bar.remove_task(self.scans.pop(event.scan))
        elif task is None:
            self.scans[event.scan] = self.bar.add_task(f"    [dim]{event.description}[/dim]",
                                                       total=event.total or None, completed=event.done)
        else:
            self.bar.update(task, completed=event.done)
