"""The width the terminal faces (``list``, ``explain``, the text report) print at.

The terminal's own width when the stream is one; otherwise (a pipe, a file, a CI log) ``COLUMNS`` when it is set to
a positive number, else :data:`DEFAULT_WIDTH`. Tables wrap and fold their cells to fit it.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

#: The width used when the output is not a terminal and ``COLUMNS`` is not set.
DEFAULT_WIDTH = 100


def width(stream: TextIO | None = None) -> int:
    """The number of columns to print at on ``stream`` (default: ``sys.stdout``)."""
    stream = sys.stdout if stream is None else stream
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns or DEFAULT_WIDTH
    except (AttributeError, ValueError, OSError):  # a closed or unusual stream: not a terminal
        pass
    columns = os.environ.get("COLUMNS", "").strip()
    return int(columns) if columns.isdigit() and int(columns) > 0 else DEFAULT_WIDTH
