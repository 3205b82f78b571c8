"""The base class every check (built-in or third-party) derives from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from sanitycheck.engine.errors import SkipCheck
from sanitycheck.engine.models import Finding, Severity

if TYPE_CHECKING:
    from sanitycheck.pipeline.context import PipelineContext


class CodeDoc(BaseModel):
    """One finding code and its documentation, shown by ``sanitycheck explain CODE``.

    The layout follows ruff's rule pages: What it does / Why it matters / Example / Fix.
    """

    model_config = ConfigDict(frozen=True)

    code: str
    title: str
    severity: Severity = Field(description="The usual severity; a check may raise or lower it per finding.")
    what: str = Field(description="What it does: what the probe measures and its decision rule.")
    why: str = Field(description="Why it matters: what goes wrong in training when this is present.")
    example: str = Field(description="A short example of a pipeline that triggers it.")
    fix: str = Field(description="How to fix it; also the default `fix` line of a finding.")
    explained_by: tuple[str, ...] = Field(
        (), description="Codes of more specific findings that, when found in the same run (as an error or a "
        "warning), explain this one: a generic consequence such as 'labels not learned'. The report then lists this "
        "finding after them and its message names them (the runner does both).",
    )


class CheckSettings(BaseModel):
    """Settings every check accepts under ``checks: {NAME: {...}}``; subclass to add a check's own."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Set false to never run this check.")
    ignore: list[str] = Field(
        default_factory=list,
        description="Codes of this check to suppress (e.g. [SC503]): their findings are dropped from the report.",
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Time limit in seconds: past it the check is stopped and reported as `error` "
        "(timed out); the other checks still run. Default: 600 s x the profile's budget factor (fast 150 s, "
        "default 600 s, thorough 2400 s).",
    )


class Check:
    """A check: a probe on the user's pipeline that yields :class:`~sanitycheck.engine.models.Finding` objects.

    Subclasses set the class attributes and implement :meth:`run`. A check never prints, never reads the
    config file and never re-reads the data: everything comes from the :class:`PipelineContext`.
    """

    #: Stable name, used by ``--only``/``--skip``, ``checks:`` settings and the report.
    name: ClassVar[str]
    #: What it detects, one line (``sanitycheck list``).
    summary: ClassVar[str]
    #: What it costs at the default profile, one line (``sanitycheck list``).
    cost: ClassVar[str]
    #: Every code this check can emit. Codes are never reused for another meaning.
    codes: ClassVar[tuple[CodeDoc, ...]]
    #: The settings model for ``checks: {NAME: {...}}``.
    Settings: ClassVar[type[CheckSettings]] = CheckSettings
    #: Whether the check steps the user's optimizer or ``train_step`` (directly or through the shared reference run,
    #: the step timing and the budgets built on it). When no check of a run does (``--only leakage,outliers``), the
    #: preflight leaves out its optimizer and ``train_step`` calls, which such a run would pay for nothing (the
    #: first optimizer built imports ``torch._dynamo``: 0.9 s on 2 CPU cores). True unless a check says otherwise.
    trains: ClassVar[bool] = True

    def run(self, ctx: PipelineContext, settings: Any) -> Iterable[Finding]:
        """Probe the pipeline and yield findings. Raise :class:`SkipCheck` when the check does not apply."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------- helpers

    def doc(self, code: str) -> CodeDoc:
        for doc in self.codes:
            if doc.code == code:
                return doc
        raise KeyError(f"{self.name} has no code {code}")

    def finding(
        self,
        code: str,
        message: str,
        *,
        severity: Severity | None = None,
        title: str | None = None,
        samples: dict[str, list[int]] | None = None,
        evidence: dict[str, Any] | None = None,
        fix: str | None = None,
        export: dict[str, list[dict[str, Any]]] | None = None,
    ) -> Finding:
        """A finding for one of this check's codes; title, severity and fix default to the code's doc.

        ``samples`` may list any number of indices: the report keeps the first 1000 per split (and says so in the
        evidence), the export keeps them all. ``export``: full tables behind the finding, by name (rows of plain
        values), written by ``--export DIR`` as ``DIR/<check>/<name>.csv``; without one named after the code, that
        table is every flagged sample (split, index)."""
        doc = self.doc(code)
        return Finding(
            check=self.name,
            code=code,
            severity=severity or doc.severity,
            title=title or doc.title,
            message=message,
            samples={k: list(v) for k, v in (samples or {}).items() if len(v)},
            evidence=evidence or {},
            fix=fix or doc.fix,
            export=export or {},
        )

    @staticmethod
    def skip(reason: str) -> None:
        """Stop this check with status ``skipped`` and the given reason."""
        raise SkipCheck(reason)
