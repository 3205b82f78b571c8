"""``--format markdown``: for pull-request comments and ``$GITHUB_STEP_SUMMARY`` (GitHub-flavoured Markdown).

A summary line, a findings table (most serious first), each finding's fix and evidence in a collapsible
``<details>`` block, and the table of checks.

Every string that came from a plugin or the user (check names, codes, titles, messages, fixes, split keys,
reasons, the config path) is escaped: no raw HTML, no Markdown links, emphasis, headings or @-mentions, no pipe
that ends a table cell; the evidence sits in a code fence longer than any backtick run inside it.
"""

from __future__ import annotations

import json
import re

from sanitycheck.engine.models import Report

ICON = {"error": "🔴", "warning": "🟡", "info": "🔵"}
STATUS = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⏭️ skipped", "error": "💥 error"}


def render(report: Report) -> str:
    s = report.summary
    verdict = "❌ do not train yet" if not report.ok else ("⚠️ review the warnings" if s.warnings else "✅ clean")
    if report.interrupted:
        verdict = "⏹️ interrupted: not every check ran"
    out = [f"## sanitycheck: {verdict}", ""]
    out.append(f"**{s.errors}** error(s), **{s.warnings}** warning(s), **{s.infos}** info; "
               f"{len(report.checks)} check(s) in {s.duration_s:.1f} s"
               + (f" · config <code>{_cell(report.config)}</code>" if report.config else ""))
    out.append("")
    if report.findings:
        out += ["| | code | check | finding |", "|---|---|---|---|"]
        for f in report.findings:
            out.append(f"| {ICON[f.severity]} {f.severity} | <code>{_cell(f.code)}</code> | {_cell(f.check)} | "
                       f"**{_cell(f.title)}**<br>{_cell(f.message)} |")
        out.append("")
        for f in report.findings:
            out.append(f"<details><summary>{ICON[f.severity]} <code>{_cell(f.code)}</code> {_cell(f.title)}</summary>")
            out.append("")
            out.append(_html(f.message))
            out.append("")
            if f.fix:
                out.append(f"**Fix:** {_html(f.fix)}")
                out.append("")
            for split, idx in f.samples.items():
                shown = ", ".join(map(str, idx[:30])) + (", ..." if len(idx) > 30 else "")
                out.append(f"- {_cell(split)} samples ({len(idx)} listed): {shown}")
            evidence = {k: v for k, v in f.evidence.items() if k != "thumbnails"}
            if evidence:
                body = _evidence(evidence)
                fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", body)), default=0))
                out += ["", f"{fence}json", body, fence]
            out += ["", "</details>", ""]
    out += ["| check | status | seconds | note |", "|---|---|---:|---|"]
    for c in report.checks:
        out.append(f"| {_cell(c.name)} | {STATUS[c.status]} | {c.duration_s:.2f} | {_cell(c.reason or '')} |")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a table cell: :func:`_html`, no pipes or newlines."""
    return _html(text).replace("\n", "<br>")


#: Markdown's inline syntax: code spans, emphasis, links and images, strikethrough, tables, escapes.
_INLINE = re.compile(r"([\\`*_\[\]|~])")
#: What starts a block at the beginning of a line: headings, lists, quotes (already &gt;), rules, setext lines.
_LINE_START = re.compile(r"^(\s*)(?:([#+=-])|(\d+)([.)]))", re.MULTILINE)


def _html(text: str) -> str:
    """Text that came from a plugin or the user, shown as plain text: no raw HTML, no Markdown syntax, no mentions."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("@", "&#64;")
    text = _INLINE.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"),
                           text)


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
