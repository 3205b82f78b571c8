"""The live progress display: fed by the runner's callback, on stderr, silent without a terminal or with --quiet."""

from __future__ import annotations

import io
import re

from rich.console import Console
from typer.testing import CliRunner

from pipelines import write_pipeline
from sanitycheck.cli import app
from sanitycheck.progress import ProgressDisplay


def test_display_follows_a_real_run(tmp_path):
    from sanitycheck.runner import run

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    config = write_pipeline(tmp_path / "p", nan=[])
    with ProgressDisplay(console) as display:
        run(config, only=["class-balance", "data-integrity"], progress=display)
        assert display.total == 2 and display.bar.tasks[0].completed == 2
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # without the terminal's control codes
    assert "passed class-balance" in text and "passed data-integrity" in text
    assert "opening the pipeline" in text and "2/2" in text and "ETA" in text


def test_cli_is_silent_without_a_terminal_and_with_quiet(tmp_path):
    config = write_pipeline(tmp_path / "p", nan=[])
    for extra in ([], ["--quiet"]):
        result = CliRunner().invoke(app, ["run", str(config), "--only", "class-balance", "--format", "json", *extra])
        assert result.exit_code == 0
        assert result.stderr == ""  # CliRunner's stderr is not a terminal: no progress, no stray output
