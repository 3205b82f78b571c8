"""The live progress display of ``sanitycheck run`` (on stderr, so a report on stdout stays clean).

A bar over the selected checks with the total elapsed time and an ETA from the checks finished so far, under it the
check running now with its own elapsed time, and under that each scan in progress (description, n/total, ETA); each
finished check leaves one line (status and seconds). The CLI uses it only when stderr is a terminal and ``--quiet``
is not given. It is the runner's ``progress`` callback: ``(name, "queued" | "start" | CheckResult | ScanEvent)``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sanitycheck.engine.progress import ScanEvent

if TYPE_CHECKING:
    from rich.console import Console

STATUS_STYLE = {"passed": "green", "failed": "red", "skipped": "dim", "error": "bold magenta"}


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
