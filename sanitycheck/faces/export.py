"""``--export DIR`` / ``sanitycheck.run(..., export=DIR)``: every flagged sample of every finding, as CSV.

The report lists at most 1000 samples per split (contract §3); the tables behind each finding
(:attr:`~sanitycheck.engine.models.Finding.export`) are not capped. Each is written as
``DIR/<check>/<name>.csv`` (a name used twice by one check gets ``-2``, ``-3`` ...), and ``DIR/index.csv`` lists
every file with its finding (check, code, severity, rows). Columns are the union of the rows' keys, in the order
they first appear; a missing value is an empty cell.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

from sanitycheck.engine.errors import UsageError
from sanitycheck.engine.models import Report


def prepare_export_dir(directory: str | Path) -> Path:
    """Create ``directory`` (and its parents) and make sure files can be written there, before any probe runs;
    a :class:`UsageError` (exit 2) names the problem."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--export: cannot create {path}: {exc.strerror or exc}") from exc
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--export: cannot write to {path}")
    return path


def write_export(report: Report, directory: str | Path) -> list[Path]:
    """Write every finding's tables under ``directory``; returns the files written (``index.csv`` last)."""
    root = prepare_export_dir(directory)
    used: dict[tuple[str, str], int] = {}
    written: list[Path] = []
    index: list[dict[str, Any]] = []
    for finding in report.findings:
        for name, rows in finding.export.items():
            check, stem = _safe(finding.check), _safe(name)
            used[check, stem] = used.get((check, stem), 0) + 1
            if used[check, stem] > 1:
                stem = f"{stem}-{used[check, stem]}"
            path = root / check / f"{stem}.csv"
            path.parent.mkdir(exist_ok=True)
            _write_csv(path, rows)
            written.append(path)
            index.append({"file": path.relative_to(root).as_posix(), "check": finding.check, "code": finding.code,
                          "severity": finding.severity, "table": name, "rows": len(rows), "title": finding.title})
    path = root / "index.csv"
    _write_csv(path, index, ["file", "check", "code", "severity", "table", "rows", "title"])
    written.append(path)
    return written


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    if columns is None:
        seen: dict[str, None] = {}
        for row in rows:
            for key in row:
                seen.setdefault(key, None)
        columns = list(seen)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    os.replace(tmp, path)


def _safe(name: str) -> str:
    """A file-name-safe version of a check or table name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "table"


__all__ = ["write_export", "prepare_export_dir"]
