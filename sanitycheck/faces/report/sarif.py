"""``--format sarif``: SARIF 2.1.0 for code-scanning dashboards (GitHub, GitLab, Azure DevOps).

One rule per finding code, carrying the ``sanitycheck explain`` text; one result per finding with its level,
message, the config file as the location (SARIF viewers need one) and the evidence and flagged samples as
properties. A crashed check is a tool execution notification, not a result.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sanitycheck._version import __version__
from sanitycheck.engine.models import Report

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"error": "error", "warning": "warning", "info": "note"}
INFO_URI = "https://github.com/sanitycheck/sanitycheck"


def render(report: Report, docs: dict[str, tuple[Any, Any]] | None = None) -> str:
    """The SARIF log as JSON. ``docs`` maps code -> (check, CodeDoc); by default every installed check's."""
    return json.dumps(to_sarif(report, docs), indent=2) + "\n"


def to_sarif(report: Report, docs: dict[str, tuple[Any, Any]] | None = None) -> dict[str, Any]:
    if docs is None:
        from sanitycheck.engine.host import load_host

        docs = load_host().code_docs()
    codes = sorted({f.code for f in report.findings})
    rules = [_rule(code, report, docs) for code in codes]
    index = {code: i for i, code in enumerate(codes)}
    results = [_result(f, index[f.code], report.config) for f in report.findings]
    notifications = [
        {"level": "error", "message": {"text": f"check '{c.name}' crashed: {c.reason}"},
         "descriptor": {"id": c.name}}
        for c in report.crashed
    ]
    if report.interrupted:
        notifications.append({"level": "error", "message": {"text": "the run was interrupted: not every check ran"},
                              "descriptor": {"id": "interrupted"}})
    invocation: dict[str, Any] = {"executionSuccessful": not report.crashed and not report.interrupted}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "sanitycheck", "version": __version__, "semanticVersion": __version__,
                            "informationUri": INFO_URI, "rules": rules}},
        "invocations": [invocation],
        "results": results,
        "properties": {"summary": report.summary.model_dump(),
                       "checks": [c.model_dump() for c in report.checks]},
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def _rule(code: str, report: Report, docs: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    first = next(f for f in report.findings if f.code == code)
    if code in docs:
        check, doc = docs[code]
        text = (f"What it does: {doc.what}\n\nWhy it matters: {doc.why}\n\nExample: {doc.example}\n\nFix: {doc.fix}")
        markdown = (f"**What it does**: {doc.what}\n\n**Why it matters**: {doc.why}\n\n"
                    f"**Example**: {doc.example}\n\n**Fix**: {doc.fix}")
        return {
            "id": code, "name": _camel(doc.title),
            "shortDescription": {"text": doc.title}, "fullDescription": {"text": doc.what},
            "help": {"text": text, "markdown": markdown},
            "defaultConfiguration": {"level": LEVEL[doc.severity]},
            "properties": {"check": check.name if check else "sanitycheck", "tags": ["ml", "pytorch"]},
        }
    # A code no installed plugin documents (e.g. a report from another environment): describe it by its finding.
    return {"id": code, "shortDescription": {"text": first.title},
            "defaultConfiguration": {"level": LEVEL[first.severity]}, "properties": {"check": first.check}}


def _result(f: Any, rule_index: int, config: str | None) -> dict[str, Any]:
    from sanitycheck.faces.baseline import fingerprint

    evidence = dict(f.evidence)
    if "thumbnails" in evidence:  # pictures stay in the HTML report; SARIF files have size limits
        evidence["thumbnails"] = f"{len(evidence['thumbnails'])} picture(s), see the HTML report"
    result: dict[str, Any] = {
        "ruleId": f.code, "ruleIndex": rule_index, "level": LEVEL[f.severity],
        "message": {"text": f"{f.title}: {f.message}" + (f" Fix: {f.fix}" if f.fix else "")},
        "partialFingerprints": {"sanitycheckFinding/v1": fingerprint(f)},
        "properties": {"check": f.check, "severity": f.severity, "fix": f.fix,
                       "samples": f.samples, "evidence": _jsonable(evidence)},
    }
    if config:
        result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": config.replace("\\", "/")},
                                                     "region": {"startLine": 1}}}]
    return result


def _camel(title: str) -> str:
    words = "".join(ch if ch.isalnum() else " " for ch in title).split()
    return "".join(w[:1].upper() + w[1:] for w in words)


def _jsonable(value: Any) -> Any:
    """Evidence as strict JSON: NaN/Inf become strings (SARIF consumers reject bare NaN), others pass through."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
