"""The machine and review formats: SARIF (validated against the official 2.1.0 schema), JUnit, Markdown.

HTML has its own tests in test_html.py (structure here, rendering in a real browser there).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from pipelines import write_pipeline
from sample_report import sample_report
from sanitycheck.faces.cli import app
from sanitycheck.faces.report import FORMATS, html, junit, markdown, sarif

SCHEMA = ROOT.parent / "shared" / "schemas" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    """A real run on a planted bug (NaN in three training images) with the instant checks."""
    from sanitycheck.engine.runner import run

    config = write_pipeline(tmp_path_factory.mktemp("nan"), nan=[2, 20, 200])
    return run(config, only=["class-balance", "data-integrity", "init-loss"])


def validate_sarif(doc: dict) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"the SARIF schema is not at {SCHEMA} (it sits next to the checkout in the project's workspace)")
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize("which", ["sample", "real"])
def test_sarif_validates_against_the_schema(which, real_report, host):
    report = sample_report() if which == "sample" else real_report
    doc = json.loads(sarif.render(report, docs=host.code_docs()))
    validate_sarif(doc)
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(run["results"]) == len(report.findings)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]


def test_sarif_rules_carry_the_explain_text_and_results_the_evidence(real_report, host):
    doc = json.loads(sarif.render(real_report, docs=host.code_docs()))
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    _, nan_doc = host.code_docs()["SC801"]
    assert nan_doc.why in rules["SC801"]["help"]["text"] and nan_doc.fix in rules["SC801"]["help"]["markdown"]
    result = next(r for r in doc["runs"][0]["results"] if r["ruleId"] == "SC801")
    assert result["level"] == "error"
    assert result["properties"]["samples"]["train"][:3] == [2, 20, 200]
    assert result["properties"]["evidence"]


def test_sarif_levels_crashes_and_pictures():
    report = sample_report()
    doc = json.loads(sarif.render(report, docs={}))
    levels = {r["ruleId"]: r["level"] for r in doc["runs"][0]["results"]}
    assert levels["SC301"] == "error" and levels["SC201"] == "warning" and levels["SC503"] == "note"
    invocation = doc["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "gradients" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    thumbs = next(r for r in doc["runs"][0]["results"] if r["ruleId"] == "SC701")["properties"]["evidence"]["thumbnails"]
    assert "data:image" not in json.dumps(thumbs)  # pictures stay out of SARIF
    assert "NaN" not in json.dumps(doc, allow_nan=True).replace('"nan"', "")  # strict JSON numbers


def test_junit_one_testcase_per_check():
    report = sample_report()
    root = ET.fromstring(junit.render(report))
    suite = root.find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {c.name for c in report.checks} | {"sanitycheck"}  # SC001 is not tied to a check
    assert cases["overfit-batch"].find("failure").get("type") == "error"
    assert "Feed raw logits" in cases["overfit-batch"].find("failure").text
    assert cases["gradients"].find("error") is not None and "\x07" not in cases["gradients"].find("error").text
    assert cases["leakage"].find("skipped").get("message") == "no validation split"
    assert cases["class-balance"].find("failure") is None and "SC503" in cases["class-balance"].find("system-out").text
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("7", "4", "1", "1")


def test_markdown_for_pull_requests():
    text = markdown.render(sample_report())
    assert text.startswith("## sanitycheck: ❌")
    rows = [line for line in text.splitlines() if line.startswith("| 🔴") or line.startswith("| 🟡") or line.startswith("| 🔵")]
    assert len(rows) == len(sample_report().findings)
    assert "&lt;b&gt;\\|&lt;/b&gt;" in text  # a pipe and HTML in a message do not break the table
    assert "<details>" in text and "**Fix:** Feed raw logits" in text
    assert "more ..." in text and "data:image" not in text  # long curves shortened, no pictures


def test_html_structure_is_self_contained():
    page = html.render(sample_report())
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "<script" not in page and "Content-Security-Policy" in page
    assert page.count("<img ") == len(sample_report().findings[2].evidence["thumbnails"])
    assert page.count('class="chart curve"') == 3 and page.count('class="chart histogram"') == 2
    assert "learning rate (log)" in page and "configured 0.001" in page  # curve_x on a log axis, markers
    assert "&lt;b&gt;|&lt;/b&gt;" in page  # escaped


def test_every_format_from_the_cli(tmp_path):
    config = write_pipeline(tmp_path / "p", nan=[1])
    cli = CliRunner()
    for name in FORMATS:
        out = tmp_path / f"report.{name}"
        result = cli.invoke(app, ["run", str(config), "--only", "data-integrity", "--format", name, "--output", str(out)])
        assert result.exit_code == 1, result.output
        assert f"{name} report written to" in result.stdout and out.stat().st_size > 200
    validate_sarif(json.loads((tmp_path / "report.sarif").read_text()))


def test_render_a_saved_json_report(tmp_path):
    """`sanitycheck render` gives the same output as rendering the run's report directly (no probes rerun)."""
    from sanitycheck.engine.models import Report

    saved = tmp_path / "report.json"
    saved.write_text(FORMATS["json"](sample_report()))
    cli = CliRunner()
    for name in ("html", "markdown", "junit"):
        result = cli.invoke(app, ["render", str(saved), "--format", name])
        assert result.exit_code == 0, result.output
        assert result.stdout == FORMATS[name](Report.model_validate_json(saved.read_text()))
    (tmp_path / "bad.json").write_text('{"findings": 3}')
    bad = cli.invoke(app, ["render", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2 and "not a sanitycheck JSON report" in bad.output


def test_html_draws_the_score_histogram_with_its_cutoff():
    from sanitycheck.engine.models import Finding, Report
    from sanitycheck.probing.neardup import score_histogram

    import numpy as np

    relative = np.concatenate([np.full(5, 0.3), np.linspace(0.9, 3.0, 400)])
    hist = score_histogram(relative, "validation samples by their best score over its cutoff")
    assert sum(hist["counts"]) + hist["overflow"] == 405 and hist["cutoff"] == 1.0
    f = Finding(check="leakage", code="SC101", severity="warning", title="t", message="m",
                evidence={"score_histogram": hist, "threshold": 0.6})
    page = html.render(Report(findings=[f]))
    chart = page[page.index('class="chart scores"'):]
    chart = chart[:chart.index("</svg>")]
    assert "cutoff" in chart and chart.count('fill="#dc2626"') >= 2  # flagged bars and the cutoff label in red
    assert "more above 2" in page and "score_histogram" not in page.split("Evidence")[-1]
    broken = Finding(check="x", code="X1", severity="info", title="t", message="m",
                     evidence={"score_histogram": {"edges": [0, 1], "counts": [1, 2]}})
    assert 'class="chart scores"' not in html.render(Report(findings=[broken]))
