"""sanitycheck: probe a PyTorch training pipeline for the bugs that silently ruin training.

Importing the package is cheap (no torch): the engine is imported when :func:`run` is first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from sanitycheck.hookspecs import hookimpl  # noqa: E402  (pluggy only: cheap)

if TYPE_CHECKING:
    from sanitycheck.models import Report


def run(config: Any = None, **overrides: Any) -> Report:
    """Run sanitycheck and return the :class:`~sanitycheck.models.Report` (``Report.ok``, ``raise_for_findings()``).

    ``config`` is a path to a ``sanitycheck.yaml``, a dict, a :class:`~sanitycheck.config.Config`, or omitted
    when the pipeline is given as objects: ``sanitycheck.run(model=..., train=..., val=..., loss=...)``.
    ``overrides`` set config keys and runner options (``only``, ``skip``, ``profile``, ``baseline`` ...);
    see :func:`sanitycheck.api.run`.
    """
    from sanitycheck.api import run as _run

    return _run(config, **overrides)


__all__ = ["__version__", "hookimpl", "run"]
