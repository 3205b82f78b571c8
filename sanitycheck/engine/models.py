"""The report model: what every check produces and every output format reads (contract §3)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sanitycheck._version import __version__

Severity = Literal["error", "warning", "info"]
Status = Literal["passed", "failed", "skipped", "error"]

#: Severities from most to least serious; ``fail_on`` compares against this order.
SEVERITY_ORDER: tuple[str, ...] = ("error", "warning", "info")

#: The contract caps every split's list of flagged indices at this many (the total goes in ``evidence``).
MAX_SAMPLES_PER_SPLIT = 1000


def at_or_above(severity: str, threshold: str) -> bool:
    """True when ``severity`` is at least as serious as ``threshold`` (``never`` matches nothing)."""
    if threshold == "never":
        return False
    return SEVERITY_ORDER.index(severity) <= SEVERITY_ORDER.index(threshold)


class Finding(BaseModel):
    """One problem a check found, with the evidence that shows it and the fix."""

    model_config = ConfigDict(extra="forbid")

    check: str = Field(description="The check's stable name, e.g. 'leakage'.")
    code: str = Field(description="Stable code, documented by `sanitycheck explain CODE`.")
    severity: Severity
    title: str
    message: str
    samples: dict[str, list[int]] = Field(
        default_factory=dict,
        description="Flagged dataset indices per split, most suspicious first, at most 1000 per split.",
    )
    evidence: dict[str, Any] = Field(default_factory=dict)
    fix: str = ""
    export: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, exclude=True, repr=False,
        description="Full tables behind the finding, by name (not in the JSON report; `--export DIR` writes each as "
        "DIR/<check>/<name>.csv). By default one table named after the code: every flagged sample (split, index), "
        "uncapped. A check may add its own (leakage: every flagged pair with its partner and score, and `drop`).",
    )

    @model_validator(mode="before")
    @classmethod
    def _keep_full_lists(cls, data: Any) -> Any:
        """Before ``samples`` is capped: keep every flagged sample for the export, and say in the evidence when the
        report's lists are cut (``samples_total`` per split and ``truncated: true``)."""
        if not isinstance(data, dict) or not isinstance(data.get("samples"), dict):
            return data
        samples = data["samples"]
        export = dict(data.get("export") or {})
        if samples and data.get("code") and str(data["code"]) not in export:
            export[str(data["code"])] = [{"split": split, "index": int(i)} for split, idx in samples.items() for i in idx]
        data = {**data, "export": export}
        if any(len(idx) > MAX_SAMPLES_PER_SPLIT for idx in samples.values()):
            evidence = dict(data.get("evidence") or {})
            evidence["samples_total"] = {split: len(idx) for split, idx in samples.items()}
            evidence["truncated"] = True
            data["evidence"] = evidence
        return data

    @field_validator("samples")
    @classmethod
    def _cap_samples(cls, value: dict[str, list[int]]) -> dict[str, list[int]]:
        return {split: [int(i) for i in idx[:MAX_SAMPLES_PER_SPLIT]] for split, idx in value.items()}


class CheckResult(BaseModel):
    """How one check ran: its status, how long it took and, when skipped or crashed, why."""

    model_config = ConfigDict(extra="forbid")

    name: str
    status: Status
    duration_s: float
    reason: str | None = None


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    errors: int = 0
    warnings: int = 0
    infos: int = 0
    duration_s: float = 0.0


class SplitSummary(BaseModel):
    """What the runner saw of one split: its size and, for classification, the samples per class."""

    model_config = ConfigDict(extra="forbid")

    samples: int
    class_counts: list[int] | None = Field(None, description="Samples per class id (classification only).")


class Report(BaseModel):
    """Everything one `sanitycheck run` found. Every output format is rendered from this model."""

    model_config = ConfigDict(extra="forbid")

    sanitycheck_version: str = __version__
    config: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    checks: list[CheckResult] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    splits: dict[str, SplitSummary] = Field(
        default_factory=dict,
        description="Per split: size and class counts, from the shared data pass (reports draw histograms from it).",
    )
    interrupted: bool = Field(
        False, description="True when the run was stopped (Ctrl-C) before every selected check ran: `checks` lists "
        "the ones that finished; the others are `skipped` with the reason. The exit code is then 130.",
    )

    @classmethod
    def assemble(
        cls, config: str | None, findings: list[Finding], checks: list[CheckResult], duration_s: float
    ) -> Report:
        """Build a report, ordering findings by severity and filling in the summary counts."""
        ordered = sorted(findings, key=lambda f: SEVERITY_ORDER.index(f.severity))
        summary = Summary(
            errors=sum(f.severity == "error" for f in ordered),
            warnings=sum(f.severity == "warning" for f in ordered),
            infos=sum(f.severity == "info" for f in ordered),
            duration_s=round(duration_s, 3),
        )
        return cls(config=config, findings=ordered, checks=checks, summary=summary)

    def failing(self, fail_on: str = "error") -> list[Finding]:
        """The findings at or above ``fail_on``."""
        return [f for f in self.findings if at_or_above(f.severity, fail_on)]

    @property
    def crashed(self) -> list[CheckResult]:
        """Checks whose probe itself raised."""
        return [c for c in self.checks if c.status == "error"]

    @property
    def ok(self) -> bool:
        """No error finding, no crashed check, and the run was not interrupted."""
        return not self.failing("error") and not self.crashed and not self.interrupted

    def exit_code(self, fail_on: str = "error") -> int:
        """The contract's exit code: 130 interrupted, 3 a check crashed, 1 findings at or above ``fail_on``, else 0."""
        if self.interrupted:
            return 130
        if self.crashed:
            return 3
        return 1 if self.failing(fail_on) else 0

    def raise_for_findings(self, fail_on: str = "error") -> None:
        """Raise :class:`FindingsError` listing every finding at or above ``fail_on`` (and crashed checks)."""
        __tracebackhide__ = True  # pytest: the user's test is the frame to show, not this one
        failing = self.failing(fail_on)
        if failing or self.crashed:
            raise FindingsError(self, failing)


class FindingsError(AssertionError):
    """Raised by :meth:`Report.raise_for_findings`; the message lists each finding with its fix."""

    def __init__(self, report: Report, findings: list[Finding]):
        self.report = report
        self.findings = findings
        lines = [f"sanitycheck found {len(findings)} problem(s):"]
        for f in findings:
            lines.append(f"  [{f.severity}] {f.code} {f.check}: {f.title}")
            lines.append(f"      {f.message}")
            for split, idx in f.samples.items():
                lines.append(f"      {split} samples: {', '.join(map(str, idx[:10]))}{', ...' if len(idx) > 10 else ''}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
        for c in report.crashed:
            lines.append(f"  [crashed] {c.name}: {c.reason}")
        super().__init__("\n".join(lines))
