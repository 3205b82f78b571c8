"""Errors the engine raises on purpose. Everything else escaping a check is a crash (status ``error``)."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user (config, paths, data, model, loss): one clear message, exit code 2.

    The message names the key, path or sample at fault; the CLI prints it without a traceback.
    """


class ConfigError(UsageError):
    """The config file or one of its keys is wrong."""


class SkipCheck(Exception):
    """Raised by a check that does not apply to this pipeline (the reason lands in the report)."""
