"""sanitycheck: probe a PyTorch training pipeline for the bugs that silently ruin training.

Importing the package is cheap (no torch): the engine is imported when :func:`run` is first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from sanitycheck.hookspecs import hookimpl  # noqa: E402  (pluggy only: cheap)

if TYPE_CHECKING:
    from sanitycheck.models import Report


def run(config: Any, **overrides: Any) -> Report:
    """Run sanitycheck on a config (a path to a YAML file, a dict, or a :class:`~sanitycheck.config.Config`).

    ``overrides`` set top-level config keys and runner options (``only``, ``skip``, ``profile``);
    see :func:`sanitycheck.runner.run`.
    """
    from sanitycheck.runner import run as _run

    return _run(config, **overrides)


__all__ = ["__version__", "hookimpl", "run"]
