"""Baselines: accept today's known findings so a team fails only on new ones.

``sanitycheck run CONFIG --write-baseline FILE`` records every finding of a run; ``--baseline FILE`` (or
``sanitycheck.run(..., baseline=FILE)``) drops the findings the baseline already accepts.

Matching rule (a finding is *known* when a baseline entry has):
- the same check and code, and
- a severity at least as serious (a warning that became an error is new), and
- every flagged sample of the finding, per split (one more duplicated or mislabeled sample is new).

Messages and evidence are not compared: they carry measured numbers that move between runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sanitycheck._version import __version__
from sanitycheck.engine.errors import ConfigError
from sanitycheck.engine.models import SEVERITY_ORDER, Finding, Report

FORMAT_VERSION = 1


def fingerprint(finding: Finding) -> str:
    """A stable id of a finding (check, code, flagged samples): the same bug on the same samples, same id."""
    samples = {split: sorted(idx) for split, idx in sorted(finding.samples.items())}
    key = json.dumps([finding.check, finding.code, samples], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def baseline_of(report: Report) -> dict[str, Any]:
    """The baseline document for a report: every finding's check, code, severity, title and samples."""
    entries = [
        {"check": f.check, "code": f.code, "severity": f.severity, "title": f.title,
         "samples": {split: sorted(idx) for split, idx in f.samples.items()}, "fingerprint": fingerprint(f)}
        for f in report.findings
    ]
    return {"sanitycheck_baseline": FORMAT_VERSION, "sanitycheck_version": __version__,
            "config": report.config, "findings": entries}


def write_baseline(report: Report, path: str | Path) -> int:
    """Write the baseline of ``report`` to ``path`` (JSON, sorted: diff-friendly in review); returns its size."""
    doc = baseline_of(report)
    doc["findings"].sort(key=lambda e: (e["check"], e["code"], e["fingerprint"]))
    from sanitycheck.faces.outputs import atomic_write_text

    atomic_write_text(Path(path), json.dumps(doc, indent=2) + "\n")
    return len(doc["findings"])


def load_baseline(path: str | Path) -> list[dict[str, Any]]:
    """The accepted findings of a baseline file; a missing or malformed file is a usage error (exit 2)."""
    from sanitycheck.engine.config import read_text_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--baseline: file not found: {path} (create it with --write-baseline {path})")
    try:
        doc = json.loads(read_text_file(path, "baseline"))
    except ConfigError as exc:
        raise ConfigError(f"--baseline: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--baseline: {path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or "sanitycheck_baseline" not in doc or not isinstance(doc.get("findings"), list):
        raise ConfigError(f"--baseline: {path} is not a sanitycheck baseline (write one with --write-baseline)")
    for i, entry in enumerate(doc["findings"]):
        problem = _entry_problem(entry)
        if problem:
            raise ConfigError(f"--baseline: {path}: findings[{i}] {problem}")
    return doc["findings"]


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with one baseline entry (the fields :func:`is_known` reads), or None."""
    if not isinstance(entry, dict) or not {"check", "code"} <= set(entry):
        return "needs at least 'check' and 'code'"
    if not isinstance(entry["check"], str) or not isinstance(entry["code"], str):
        return "'check' and 'code' must be strings"
    if "severity" in entry and entry["severity"] not in SEVERITY_ORDER:
        return f"'severity' must be one of {', '.join(SEVERITY_ORDER)} (got {entry['severity']!r})"
    samples = entry.get("samples")
    if samples is not None and not (isinstance(samples, dict) and all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(i, int) for i in v) for k, v in samples.items())):
        return "'samples' must map split names to lists of sample indices"
    return None


def is_known(finding: Finding, accepted: list[dict[str, Any]]) -> bool:
    """True when some baseline entry accepts ``finding`` (see the module docstring for the rule)."""
    rank = SEVERITY_ORDER.index(finding.severity)
    for entry in accepted:
        if entry["check"] != finding.check or entry["code"] != finding.code:
            continue
        if SEVERITY_ORDER.index(entry.get("severity", "error")) > rank:
            continue  # the baseline accepted something milder
        known = entry.get("samples") or {}
        if all(set(idx) <= set(known.get(split, ())) for split, idx in finding.samples.items()):
            return True
    return False


def apply_baseline(report: Report, accepted: list[dict[str, Any]]) -> tuple[Report, list[Finding]]:
    """A copy of ``report`` without the findings the baseline accepts, and the accepted ones.

    A check whose every warning and error was accepted becomes ``passed``; the summary is recounted.
    """
    new = [f for f in report.findings if not is_known(f, accepted)]
    known = [f for f in report.findings if is_known(f, accepted)]
    loud = {f.check for f in new if f.severity in ("error", "warning")}
    checks = [c.model_copy(update={"status": "passed"}) if c.status == "failed" and c.name not in loud else c
              for c in report.checks]
    out = Report.assemble(report.config, new, checks, report.summary.duration_s)
    out.splits = report.splits
    out.interrupted = report.interrupted
    return out, known


__all__ = ["fingerprint", "baseline_of", "write_baseline", "load_baseline", "is_known", "apply_baseline"]
