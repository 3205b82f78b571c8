"""Baselines: known findings are accepted, a new one still fails (rule in sanitycheck/baseline.py)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pipelines import write_pipeline
from sanitycheck.faces.baseline import apply_baseline, baseline_of, is_known
from sanitycheck.faces.cli import app
from sanitycheck.engine.models import CheckResult, Finding, Report


def finding(code="SC101", severity="error", samples=None, check="leakage") -> Finding:
    return Finding(check=check, code=code, severity=severity, title="t", message="m", samples=samples or {})


def report(*findings: Finding) -> Report:
    checks = [CheckResult(name=n, status="failed", duration_s=0.1) for n in sorted({f.check for f in findings})]
    return Report.assemble("cfg.yaml", list(findings), checks, 1.0)


def test_known_finding_matches_on_check_code_and_samples():
    accepted = baseline_of(report(finding(samples={"val": [1, 2, 3]})))["findings"]
    assert is_known(finding(samples={"val": [3, 1]}), accepted)  # fewer samples, any order
    assert not is_known(finding(samples={"val": [1, 2, 3, 4]}), accepted)  # one more flagged sample is new
    assert not is_known(finding(code="SC102", samples={"val": [1]}), accepted)
    assert not is_known(finding(samples={"train": [1]}), accepted)


def test_a_worse_severity_is_new():
    accepted = baseline_of(report(finding(severity="warning")))["findings"]
    assert is_known(finding(severity="info"), accepted)
    assert not is_known(finding(severity="error"), accepted)


def test_apply_recounts_and_passes_fully_accepted_checks():
    old = finding(samples={"val": [1]})
    new = finding(code="SC601", check="outliers", samples={"train": [9]})
    filtered, known = apply_baseline(report(old, new), baseline_of(report(old))["findings"])
    assert known == [old]
    assert filtered.findings == [new] and filtered.summary.errors == 1
    assert {c.name: c.status for c in filtered.checks} == {"leakage": "passed", "outliers": "failed"}


def test_cli_baseline_silences_known_and_fails_on_new(tmp_path):
    """The user's flow: write a baseline, pass with it, then a new bug fails (and only it is reported)."""
    config = write_pipeline(tmp_path / "p", nan=[3, 30])
    base = tmp_path / "baseline.json"
    cli = CliRunner()
    args = ["run", str(config), "--only", "data-integrity", "--format", "json"]
    assert cli.invoke(app, args).exit_code == 1
    written = cli.invoke(app, [*args, "--write-baseline", str(base)])
    assert written.exit_code == 0, written.output
    assert [e["code"] for e in json.loads(base.read_text())["findings"]] == ["SC801"]

    accepted = cli.invoke(app, [*args, "--baseline", str(base)])
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["findings"] == []

    # The pipeline with a new broken sample (a fresh folder: this process has imported the first one).
    changed = write_pipeline(tmp_path / "p2", nan=[3, 30, 300])
    again = cli.invoke(app, ["run", str(changed), *args[2:], "--baseline", str(base)])
    assert again.exit_code == 1
    flagged = json.loads(again.stdout)["findings"]
    assert [f["code"] for f in flagged] == ["SC801"] and 300 in flagged[0]["samples"]["train"]


def test_cli_bad_baseline_file_is_a_usage_error(tmp_path):
    config = write_pipeline(tmp_path / "p", nan=[])
    (tmp_path / "b.json").write_text("{}")
    result = CliRunner().invoke(app, ["run", str(config), "--only", "data-integrity", "--baseline", str(tmp_path / "b.json")])
    assert result.exit_code == 2 and "not a sanitycheck baseline" in result.output


def test_api_baseline(tmp_path):
    import sanitycheck
    from sanitycheck.faces.baseline import write_baseline

    config = write_pipeline(tmp_path / "p", nan=[8])
    first = sanitycheck.run(config, only=["data-integrity"])
    assert not first.ok
    write_baseline(first, tmp_path / "b.json")
    assert sanitycheck.run(config, only=["data-integrity"], baseline=tmp_path / "b.json").ok
