"""The terminal faces fit the terminal: `list` and the text report at its width, `--help` with flags as flags."""

from __future__ import annotations

import io

import pytest
from typer.testing import CliRunner

from sanitycheck.engine.models import CheckResult, Finding, Report
from sanitycheck.faces import terminal
from sanitycheck.faces.cli import app
from sanitycheck.faces.report import text

from sample_report import sample_report


def widest(output: str) -> int:
    return max(len(line) for line in output.splitlines())


@pytest.mark.parametrize("columns", [60, 80, 100, 160])
def test_list_fits_the_columns_it_is_given(columns):
    result = CliRunner().invoke(app, ["list"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    assert widest(result.stdout) <= columns
    for name in ("overfit-batch", "SC301", "batch-independence", "SC1101", "data-integrity", "SC809"):
        assert name in result.stdout


def test_without_a_terminal_or_columns_the_width_is_100(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert terminal.width(io.StringIO()) == terminal.DEFAULT_WIDTH == 100
    result = CliRunner().invoke(app, ["list"], env={"COLUMNS": None})
    assert widest(result.stdout) == 100  # the table expands to the width, and no further
    for bad in ("", "0", "-5", "wide"):
        monkeypatch.setenv("COLUMNS", bad)
        assert terminal.width(io.StringIO()) == 100
    monkeypatch.setenv("COLUMNS", "77")
    assert terminal.width(io.StringIO()) == 77


def _report_with_long_words() -> Report:
    """The sample report plus a finding whose words are longer than any column: they must fold, not overflow."""
    report = sample_report()
    long = Finding(check="a-third-party-check-with-a-very-long-name", code="ACME0001", severity="error",
                   title="A title " + "x" * 120, message="/data/" + "sub/" * 40 + "file.png could not be read",
                   samples={"train": list(range(50))}, evidence={"path": "y" * 300}, fix="f" * 150)
    checks = [*report.checks, CheckResult(name=long.check, status="error", duration_s=0.1, reason="z" * 200)]
    return Report.assemble(report.config, [*report.findings, long], checks, report.summary.duration_s)


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_the_text_report_fits_the_terminal(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    rendered = text.render(_report_with_long_words())
    assert widest(rendered) <= columns
    assert "ACME0001" in rendered and "a-third-party" in rendered
    assert widest(text.render(_report_with_long_words(), width=90)) <= 90


def test_the_text_report_of_a_run_fits_80_columns():
    from conftest import ROOT

    config = ROOT / "examples" / "digits" / "buggy" / "sanitycheck.yaml"
    result = CliRunner().invoke(app, ["run", str(config), "--only", "class-balance,data-integrity", "--quiet"],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 1, result.output
    assert "SC801" in result.stdout and "SC503" in result.stdout
    assert widest(result.stdout) <= 80


@pytest.mark.parametrize("command", ["run", "pre-commit", "render", "init", "explain", "list"])
def test_help_shows_flags_as_flags(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "--no-" not in result.stdout  # boolean options are plain flags, not --x/--no-x pairs
    assert "<bool>" not in result.stdout
    assert widest(result.stdout) <= 100


def test_run_help_lists_every_option_by_its_flag():
    help_text = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "100"}).stdout
    for flag in ("--only NAME,...", "--skip NAME,...", "--format", "--output PATH", "--fail-on", "--profile",
                 "--device DEV", "--seed N", "-q, --quiet", "--baseline FILE", "--write-baseline FILE", "--debug",
                 "-h, --help"):
        assert flag in help_text, flag
    assert "[config: error]" in help_text  # bracketed text in help strings is shown, not eaten as markup
