"""``--format markdown``: for pull-request comments and ``$GITHUB_STEP_SUMMARY`` (GitHub-flavoured Markdown).

A summary line, a findings table (most serious first), each finding's fix and evidence in a collapsible
``<details>`` block, and the table of checks.
"""

from __future__ import annotations

import json

from sanitycheck.engine.models import Report

ICON = {"error": "🔴", "warning": "🟡", "info": "🔵"}
STATUS = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⏭️ skipped", "error": "💥 error"}


def render(report: Report) -> str:
    s = report.summary
    verdict = "❌ do not train yet" if not report.ok else ("⚠️ review the warnings" if s.warnings else "✅ clean")
    out = [f"## sanitycheck: {verdict}", ""]
    out.append(f"**{s.errors}** error(s), **{s.warnings}** warning(s), **{s.infos}** info; "
               f"{len(report.checks)} check(s) in {s.duration_s:.1f} s"
               + (f" · config `{report.config}`" if report.config else ""))
    out.append("")
    if report.findings:
        out += ["| | code | check | finding |", "|---|---|---|---|"]
        for f in report.findings:
            out.append(f"| {ICON[f.severity]} {f.severity} | `{f.code}` | {f.check} | **{_cell(f.title)}**<br>{_cell(f.message)} |")
        out.append("")
        for f in report.findings:
            out.append(f"<details><summary>{ICON[f.severity]} <code>{f.code}</code> {_html(f.title)}</summary>")
            out.append("")
            out.append(_html(f.message))
            out.append("")
            if f.fix:
                out.append(f"**Fix:** {_html(f.fix)}")
                out.append("")
            for split, idx in f.samples.items():
                shown = ", ".join(map(str, idx[:30])) + (", ..." if len(idx) > 30 else "")
                out.append(f"- {split} samples ({len(idx)} listed): {shown}")
            evidence = {k: v for k, v in f.evidence.items() if k != "thumbnails"}
            if evidence:
                out += ["", "```json", _evidence(evidence), "```"]
            out += ["", "</details>", ""]
    out += ["| check | status | seconds | note |", "|---|---|---:|---|"]
    for c in report.checks:
        out.append(f"| {c.name} | {STATUS[c.status]} | {c.duration_s:.2f} | {_cell(c.reason or '')} |")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a table cell: no pipes or newlines, no raw HTML."""
    return _html(text).replace("|", "\\|").replace("\n", "<br>")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _evidence(evidence: dict, limit: int = 3000) -> str:
    text = json.dumps(_shorten(evidence), indent=1, default=str)
    return text if len(text) <= limit else text[:limit] + "\n... (truncated; see the JSON report)"


def _shorten(value: object, keep: int = 8) -> object:
    """Long series (loss curves) shortened to their first and last values: a PR comment is not a data dump."""
    if isinstance(value, dict):
        return {k: _shorten(v, keep) for k, v in value.items()}
    if isinstance(value, list) and len(value) > keep:
        return [*value[: keep - 2], f"... {len(value) - keep + 1} more ...", value[-1]]
    return value
