"""``--format text``: findings grouped by severity, each with its fix line, then the checks that ran.

Rendered with rich at the terminal's width (:func:`sanitycheck.faces.terminal.width`: without a terminal, ``COLUMNS``
or 100); cells wrap and fold so no line is wider.
"""

from __future__ import annotations

import io
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sanitycheck.engine.models import SEVERITY_ORDER, Report
from sanitycheck.faces import terminal

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan",
         "passed": "green", "failed": "red", "skipped": "dim", "error-status": "bold magenta"}


def render(report: Report, color: bool = False, width: int | None = None) -> str:
    """The report as text, ``width`` columns wide (default: the terminal's, see :func:`terminal.width`)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or terminal.width(), force_terminal=color, no_color=not color,
                      highlight=False)
    print_report(report, console)
    return buffer.getvalue()


def print_report(report: Report, console: Console) -> None:
    """The findings table (grouped by severity), the check table and a one-line summary."""
    for severity in SEVERITY_ORDER:
        group = [f for f in report.findings if f.severity == severity]
        if not group:
            continue
        table = Table(title=f"{severity.upper()}S ({len(group)})", title_justify="left", title_style=STYLE[severity],
                      show_lines=True, expand=True)
        table.add_column("code", no_wrap=True, style=STYLE[severity])
        table.add_column("check", overflow="fold")
        table.add_column("finding", ratio=1, overflow="fold")
        for f in group:
            body = Text()
            body.append(f.title, style="bold")
            body.append(f"\n{f.message}")
            flagged = ", ".join(f"{split}: {_preview(idx)}" for split, idx in f.samples.items() if idx)
            if flagged:
                body.append(f"\nsamples  {flagged}", style="dim")
            if f.evidence:
                body.append(f"\nevidence {_evidence(f.evidence)}", style="dim")
            if f.fix:
                body.append("\nfix      ", style="bold green")
                body.append(f.fix, style="green")
            table.add_row(f.code, f.check, body)
        console.print(table)
    checks = Table(title="CHECKS", title_justify="left", expand=True)
    checks.add_column("check", overflow="fold")
    checks.add_column("status", no_wrap=True)
    checks.add_column("seconds", justify="right", no_wrap=True)
    checks.add_column("note", ratio=1, overflow="fold")
    for c in report.checks:
        style = STYLE["error-status"] if c.status == "error" else STYLE[c.status]
        checks.add_row(c.name, Text(c.status, style=style), f"{c.duration_s:.2f}", Text(c.reason or ""))
    console.print(checks)
    console.print(summary_line(report))


def summary_line(report: Report) -> str:
    s = report.summary
    crashed = len(report.crashed)
    return (f"sanitycheck: {s.errors} error(s), {s.warnings} warning(s), {s.infos} info; "
            f"{len(report.checks)} check(s) run{f', {crashed} crashed' if crashed else ''} in {s.duration_s:.1f} s"
            + ("; INTERRUPTED: not every check ran" if report.interrupted else ""))


def _preview(indices: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, indices[:limit]))
    return f"[{shown}{', ...' if len(indices) > limit else ''}] ({len(indices)} listed)"


def _evidence(evidence: dict, limit: int = 400) -> str:
    text = json.dumps(evidence, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."
