"""``--format junit``: JUnit XML for CI dashboards (GitLab, Jenkins, Azure, GitHub test reporters).

One testcase per check: a ``failure`` for a failed check (its findings, each with its fix, in the body), an
``error`` for a crashed one, ``skipped`` with the reason. Findings not tied to a check (a plugin that failed to
load, SC001) get a testcase named ``sanitycheck``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sanitycheck.engine.models import Finding, Report


def render(report: Report) -> str:
    suite = ET.Element("testsuite", name="sanitycheck", time=f"{report.summary.duration_s:.3f}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    names = [c.name for c in report.checks]
    orphans = [f for f in report.findings if f.check not in names]
    if orphans:
        case = _case(suite, "sanitycheck", 0.0)
        counts["tests"] += 1
        if any(f.severity in ("error", "warning") for f in orphans):
            counts["failures"] += 1
            _failure(case, orphans)
    for check in report.checks:
        found = [f for f in report.findings if f.check == check.name]
        case = _case(suite, check.name, check.duration_s)
        counts["tests"] += 1
        if check.status == "failed":
            counts["failures"] += 1
            _failure(case, found)
        elif check.status == "error":
            counts["errors"] += 1
            ET.SubElement(case, "error", message=_xml(check.reason or "crashed"), type="crash").text = _xml(check.reason or "")
        elif check.status == "skipped":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=_xml(check.reason or "skipped"))
        if found and check.status != "failed":  # info findings: visible, not failing
            ET.SubElement(case, "system-out").text = _xml(_describe(found))
    for key, value in counts.items():
        suite.set(key, str(value))
    root = ET.Element("testsuites", name="sanitycheck", **{k: suite.get(k) for k in ("tests", "failures", "errors", "skipped", "time")})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _case(suite: ET.Element, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname="sanitycheck", name=name, time=f"{seconds:.3f}")


def _failure(case: ET.Element, findings: list[Finding]) -> None:
    loud = [f for f in findings if f.severity in ("error", "warning")]
    head = "; ".join(f"{f.code} {f.title}" for f in loud) or "failed"
    kind = loud[0].severity if loud else "failure"
    ET.SubElement(case, "failure", message=_xml(head), type=kind).text = _xml(_describe(findings))


def _describe(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"[{f.severity}] {f.code} {f.title}")
        lines.append(f"  {f.message}")
        for split, idx in f.samples.items():
            lines.append(f"  {split} samples: {idx[:20]}{' ...' if len(idx) > 20 else ''} ({len(idx)} listed)")
        if f.fix:
            lines.append(f"  fix: {f.fix}")
    return "\n".join(lines)


def _xml(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control characters in an exception message would break the file)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)
