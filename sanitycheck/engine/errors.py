"""Errors the engine raises on purpose. Everything else escaping a check is a crash (status ``error``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sanitycheck.engine.models import Report


class UsageError(Exception):
    """Bad input from the user (config, paths, data, model, loss): one clear message, exit code 2.

    The message names the key, path or sample at fault; the CLI prints it without a traceback.
    """


class ConfigError(UsageError):
    """The config file or one of its keys is wrong."""


class SkipCheck(Exception):
    """Raised by a check that does not apply to this pipeline (the reason lands in the report)."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM from the command line) stopped a run; :attr:`report` holds the checks that finished.

    A ``KeyboardInterrupt``, so a Python caller's Ctrl-C still stops their script; the command line writes the
    report (``report.interrupted`` is true) and exits 130.
    """

    def __init__(self, report: Report):
        super().__init__("the run was interrupted")
        self.report = report
