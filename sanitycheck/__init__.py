"""sanitycheck: probe a PyTorch training pipeline for the bugs that silently ruin training.

Importing the package is cheap (no torch): the engine is imported when :func:`run` is first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sanitycheck._version import __version__
from sanitycheck.engine.hookspecs import hookimpl  # pluggy only: cheap

#: The plugin API's short paths (``from sanitycheck import Check, CodeDoc``), imported on first use so that
#: ``import sanitycheck`` stays cheap: name -> the module that defines it.
_LAZY = {
    "Check": "sanitycheck.engine.check",
    "CheckSettings": "sanitycheck.engine.check",
    "CodeDoc": "sanitycheck.engine.check",
    "Finding": "sanitycheck.engine.models",
    "Report": "sanitycheck.engine.models",
    "PipelineContext": "sanitycheck.pipeline.context",
    "UsageError": "sanitycheck.engine.errors",
}

if TYPE_CHECKING:
    from sanitycheck.engine.models import Report


def run(config: Any = None, **overrides: Any) -> Report:
    """Run sanitycheck and return the :class:`~sanitycheck.engine.models.Report` (``Report.ok``, ``raise_for_findings()``).

    ``config`` is a path to a ``sanitycheck.yaml``, a dict, a :class:`~sanitycheck.engine.config.Config`, or omitted
    when the pipeline is given as objects: ``sanitycheck.run(model=..., train=..., val=..., loss=...)``.
    ``overrides`` set config keys and runner options (``only``, ``skip``, ``profile``, ``baseline`` ...);
    see :func:`sanitycheck.faces.api.run`.
    """
    from sanitycheck.faces.api import run as _run

    return _run(config, **overrides)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sanitycheck' has no attribute {name!r}")


__all__ = ["__version__", "hookimpl", "run", *_LAZY]
