"""Output formats, each rendered from the one :class:`~sanitycheck.engine.models.Report` model.

``FORMATS`` maps a ``--format`` name to a function ``Report -> str``; a format module registers itself here.
"""

from __future__ import annotations

from collections.abc import Callable

from sanitycheck.engine.models import Report
from sanitycheck.faces.report import html, json_report, junit, markdown, sarif, text

FORMATS: dict[str, Callable[[Report], str]] = {
    "text": text.render,
    "json": json_report.render,
    "sarif": sarif.render,
    "junit": junit.render,
    "markdown": markdown.render,
    "html": html.render,
}

__all__ = ["FORMATS"]
