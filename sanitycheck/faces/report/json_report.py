"""``--format json``: the pydantic Report as JSON (contract §3); ``Report.model_validate_json`` reads it back."""

from __future__ import annotations

from sanitycheck.engine.models import Report


def render(report: Report) -> str:
    return report.model_dump_json(indent=2) + "\n"
