"""docs/checks/ is generated from the checks' code and must match it; the docs name only what exists."""

from __future__ import annotations

import re
import subprocess
import sys

from sanitycheck.engine.check import Check, CodeDoc
from sanitycheck.faces import docgen

from conftest import ROOT

DOCS = ROOT / "docs" / "checks"


def test_docs_checks_match_the_code(host):
    """Regenerated in memory, the pages equal the files on disk: exactly the same set of files, the same text."""
    differences = docgen.drift(DOCS, docgen.pages(host))
    assert not differences, (
        "docs/checks/ is out of date with the checks' code (CodeDocs, Settings, summary, cost): "
        + "; ".join(differences) + ". Run `make docs` and commit the result."
    )


def test_every_check_and_code_has_its_page(host):
    generated = docgen.pages(host)
    for check in docgen.own_checks(host):
        page = generated[f"{check.name}.md"]
        assert f"[`{check.name}`]({check.name}.md)" in generated[docgen.INDEX]
        for doc in check.codes:
            assert f"## {doc.code}" in page
            for heading in ("What it does", "Why it matters", "Example", "Fix"):
                assert f"### {heading}" in page
        for name in check.Settings.model_fields:
            assert f"| `{name}` |" in page or f"| `{name}` |" in generated[docgen.INDEX]


def test_pages_escape_markdown_and_list_settings_with_their_bounds():
    from pydantic import Field

    from sanitycheck.engine.check import CheckSettings

    class Settings(CheckSettings):
        steps: int = Field(200, ge=1, description="Steps | at most")
        mode: str | None = Field(None, description="a <b>bold</b> claim")

    class Tricky(Check):
        name = "tricky"
        summary = "text with a * star and a | pipe"
        cost = "instant"
        codes = (CodeDoc(code="TR001", title="A 2**32 title", severity="info", what="x < y and <script>", why="`a*b` kept",
                         example="e", fix="f"),)

    Tricky.Settings = Settings
    page = docgen.check_page(Tricky())
    assert "| `steps` | int, >= 1 | `200` | Steps \\| at most |" in page
    assert "| `mode` | str \\| None | `null` | a &lt;b>bold&lt;/b> claim |" in page
    assert "A 2\\*\\*32 title" in page and "x < y and &lt;script>" in page and "`a*b` kept" in page


def test_the_generator_writes_the_folder_and_removes_stale_pages(tmp_path, host):
    (tmp_path / "removed-check.md").write_text("old")
    generated = docgen.pages(host)
    changed, removed = docgen.write(tmp_path, generated)
    assert removed == ["removed-check.md"] and set(changed) == set(generated)
    assert docgen.drift(tmp_path, generated) == []
    assert docgen.write(tmp_path, generated) == ([], [])  # nothing to do the second time


def test_the_command_reports_drift(tmp_path):
    command = [sys.executable, "-m", "sanitycheck.faces.docgen", str(tmp_path / "checks")]
    stale = subprocess.run([*command, "--check"], capture_output=True, text=True)
    assert stale.returncode == 1 and "run `make docs`" in stale.stderr
    assert subprocess.run(command, capture_output=True, text=True).returncode == 0
    assert subprocess.run([*command, "--check"], capture_output=True, text=True).returncode == 0


def test_the_docs_name_only_codes_that_exist(host):
    """Every SC code the user docs mention is one a check (or the engine) emits."""
    codes = set(host.code_docs())
    for path in (ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "docs" / "architecture.md"):
        for code in re.findall(r"\bSC\d{3,4}\b", path.read_text()):
            assert code in codes, f"{path.relative_to(ROOT)} names {code}, which nothing emits"


def test_the_contributing_example_runs(host):
    """The plugin CONTRIBUTING.md shows is code that works: its check loads, runs and reports its code."""
    import types

    import torch
    from torch.utils.data import TensorDataset

    from sanitycheck.engine.host import load_host
    from sanitycheck.engine.runner import run

    text = (ROOT / "CONTRIBUTING.md").read_text()
    source = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    module = types.ModuleType("contributing_example")
    exec(compile(source, "CONTRIBUTING.md", "exec"), module.__dict__)
    with_example = load_host(extra_plugins=(module,))
    assert "tiny-dataset" in with_example.checks and not with_example.load_errors
    x, y = torch.randn(40, 4), torch.arange(40) % 2
    report = run({"data": {"train": TensorDataset(x, y), "val": TensorDataset(x[:10], y[:10])},
                  "model": torch.nn.Linear(4, 2), "loss": torch.nn.CrossEntropyLoss()},
                 only=["tiny-dataset"], host=with_example)
    assert [f.code for f in report.findings] == ["TINY001"]
    assert "40 samples" in report.findings[0].message
