"""The command line as a user drives it: exit codes, output formats, list/explain/init, broken plugins."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest
from typer.testing import CliRunner

import sanitycheck.engine.host
import sanitycheck.engine.runner
from sanitycheck import hookimpl
from sanitycheck.engine.check import Check, CodeDoc
from sanitycheck.faces.cli import app
from sanitycheck.engine.models import Report

from conftest import ROOT

CLEAN = ROOT / "examples" / "digits" / "clean" / "sanitycheck.yaml"
BUGGY = ROOT / "examples" / "digits" / "buggy" / "sanitycheck.yaml"
FOUR = "overfit-batch,init-loss,class-balance,data-integrity"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_clean_example_exits_0_and_buggy_exits_1():
    clean = invoke("run", str(CLEAN), "--only", FOUR, "--quiet")
    assert clean.exit_code == 0, clean.output
    assert "0 error(s), 0 warning(s)" in clean.stdout
    buggy = invoke("run", str(BUGGY), "--only", FOUR, "--quiet")
    assert buggy.exit_code == 1
    for code in ("SC801", "SC809", "SC503", "SC504", "SC902", "SC301"):  # every planted bug
        assert code in buggy.stdout
    assert "fix" in buggy.stdout


def test_fail_on_sets_the_threshold():
    # The buggy twin has warnings and errors: never -> 0; the clean one has none even at warning level.
    assert invoke("run", str(BUGGY), "--only", "class-balance", "--fail-on", "never").exit_code == 0
    assert invoke("run", str(BUGGY), "--only", "class-balance", "--fail-on", "error").exit_code == 0
    assert invoke("run", str(BUGGY), "--only", "class-balance", "--fail-on", "warning").exit_code == 1
    assert invoke("run", str(CLEAN), "--only", FOUR, "--fail-on", "warning").exit_code == 0


def test_json_report_round_trips_through_the_model(tmp_path):
    out = tmp_path / "report.json"
    result = invoke("run", str(BUGGY), "--only", FOUR, "--format", "json", "--output", str(out))
    assert result.exit_code == 1
    assert "json report written to" in result.stdout and "error(s)" in result.stdout  # a short summary remains
    report = Report.model_validate_json(out.read_text())
    assert report.model_dump() == Report.model_validate(json.loads(out.read_text())).model_dump()
    assert {c.name for c in report.checks} == set(FOUR.split(","))
    assert report.summary.errors == sum(f.severity == "error" for f in report.findings) >= 2
    nan = next(f for f in report.findings if f.code == "SC801")
    assert nan.samples["train"] == [100, 200, 300, 400, 500]  # contract §3: every flagged index
    # and to stdout when no --output is given
    printed = invoke("run", str(BUGGY), "--only", "data-integrity", "--format", "json")
    assert Report.model_validate_json(printed.stdout).findings


def test_skip_and_enabled_false(tmp_path):
    result = invoke("run", str(BUGGY), "--only", FOUR, "--skip", "overfit-batch,init-loss", "--format", "json")
    assert {c["name"] for c in json.loads(result.stdout)["checks"]} == {"class-balance", "data-integrity"}
    config = tmp_path / "sanitycheck.yaml"
    config.write_text(BUGGY.read_text() + "checks:\n  class-balance: {enabled: false}\n")
    (tmp_path / "pipeline.py").write_text((BUGGY.parent / "pipeline.py").read_text())
    report = json.loads(invoke("run", str(config), "--only", "class-balance", "--format", "json").stdout)
    assert report["checks"] == [{"name": "class-balance", "status": "skipped", "duration_s": 0.0,
                                 "reason": "enabled: false in config"}]


def test_list_shows_every_check_with_codes_and_cost():
    result = invoke("list")
    assert result.exit_code == 0
    for text in ("overfit-batch", "SC301", "init-loss", "SC902", "class-balance", "SC504", "data-integrity", "SC809"):
        assert text in result.stdout


def test_explain_a_code_and_a_check():
    code = invoke("explain", "SC504")
    assert code.exit_code == 0
    for heading in ("What it does", "Why it matters", "Example", "Fix"):
        assert heading in code.stdout
    assert "p < 0.001" in code.stdout  # the decision rule is stated
    check = invoke("explain", "init-loss")
    assert check.exit_code == 0 and "SC901" in check.stdout and "high_ratio" in check.stdout
    assert invoke("explain", "sc301").exit_code == 0
    unknown = invoke("explain", "SC3O1")
    assert unknown.exit_code == 2 and "did you mean" in unknown.stderr


def test_init_writes_a_template_that_loads(tmp_path):
    from sanitycheck.engine.config import load_config

    target = tmp_path / "sanitycheck.yaml"
    assert invoke("init", str(target)).exit_code == 0
    config = load_config(target)
    assert config.data.train == "pipeline:train" and config.checks == {"overfit-batch": {"steps": 200}}
    assert invoke("init", str(target)).exit_code == 2  # never overwrites silently
    assert invoke("init", str(target), "--force").exit_code == 0


# ---------------------------------------------------------------------------------- plugins and crashes


class Crashes(Check):
    name = "crashes"
    summary = "always raises"
    cost = "none"
    codes = (CodeDoc(code="XX001", title="t", severity="error", what="w", why="y", example="e", fix="f"),)

    def run(self, ctx, settings):
        raise ZeroDivisionError("probe bug")


class CrashPlugin:
    @hookimpl
    def sanitycheck_checks(self):
        return [Crashes()]


def test_a_crashing_check_is_status_error_exit_3_and_the_others_run(monkeypatch):
    host = sanitycheck.engine.host.load_host(extra_plugins=(CrashPlugin(),))
    monkeypatch.setattr(sanitycheck.engine.runner, "load_host", lambda: host)
    result = invoke("run", str(CLEAN), "--only", "crashes,data-integrity", "--format", "json")
    assert result.exit_code == 3
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["crashes"]["status"] == "error" and "ZeroDivisionError: probe bug" in checks["crashes"]["reason"]
    assert checks["data-integrity"]["status"] == "passed"


def test_a_plugin_that_fails_to_load_is_reported_not_fatal(monkeypatch):
    real = sanitycheck.engine.host.entry_points

    def with_broken(group):
        broken = EntryPoint(name="broken-plugin", value="no_such_module_xyz", group=group)
        return [*real(group=group), broken]

    monkeypatch.setattr(sanitycheck.engine.host, "entry_points", with_broken)
    result = invoke("run", str(CLEAN), "--only", "data-integrity", "--format", "json")
    report = Report.model_validate_json(result.stdout)
    assert result.exit_code == 3  # issue 14: a plugin that fails to load is a crashed check, not a silent warning
    sc001 = [f for f in report.findings if f.code == "SC001"]
    assert sc001 and "broken-plugin" in sc001[0].message
    assert report.checks[0].status == "passed"  # the other checks still run
    broken = report.checks[-1]
    assert broken.name == "broken-plugin" and broken.status == "error" and "no_such_module_xyz" in broken.reason


@pytest.mark.parametrize("hook_name", ["sanitycheck_chekcs"])
def test_a_misspelled_hook_fails_loudly(hook_name):
    import pluggy

    plugin = type("Typo", (), {hook_name: hookimpl(lambda self: [])})()
    with pytest.raises(pluggy.PluginValidationError):
        sanitycheck.engine.host.load_host(extra_plugins=(plugin,))
