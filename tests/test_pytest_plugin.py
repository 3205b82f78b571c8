"""The pytest plugin as a user meets it: their test with the `sanitycheck` fixture, and one item per check.

pytester runs an inner pytest session in a subprocess (in-process runs would re-import torch, which cannot
be loaded twice) in a scratch folder holding the user's pipelines. Each inner session costs a torch import,
so each one checks several behaviours.
"""

from __future__ import annotations

import subprocess
import sys

from pipelines import write_pipeline

pytest_plugins = ["pytester"]

USER_TEST = """
def test_pipeline(sanitycheck):
    sanitycheck.run("sanitycheck.yaml", only=["data-integrity", "class-balance"]).raise_for_findings()
"""


def test_buggy_pipeline_fails_the_users_test_and_a_clean_one_passes(pytester):
    """Two projects side by side; the fixture finds each sanitycheck.yaml next to the test file."""
    write_pipeline(pytester.path / "buggy", nan=[7, 70])
    write_pipeline(pytester.path / "clean", nan=[])
    (pytester.path / "buggy" / "test_buggy.py").write_text(USER_TEST)
    (pytester.path / "clean" / "test_clean.py").write_text(USER_TEST)
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*clean/test_clean.py::test_pipeline PASSED*"])
    result.stdout.fnmatch_lines([
        "*buggy/test_buggy.py::test_pipeline FAILED*",
        "*sanitycheck found 1 problem(s):*",
        "*[[]error[]] SC801 data-integrity: NaN or Inf in inputs*",
        "*train samples: 7, 70*",
        "*fix: *",
    ])
    assert "models.py" not in result.stdout.str()  # the user's test is the frame shown, not the engine's


def test_options_and_one_item_per_check(pytester):
    """--sanitycheck-config feeds the fixture and adds one item per check; -k selects which checks run."""
    write_pipeline(pytester.path, nan=[5], config_extra="checks:\n  class-balance: {enabled: false}\n")
    pytester.makepyfile(test_user="""
        def test_defaults(sanitycheck):
            assert sanitycheck.profile == "fast"
            report = sanitycheck.run(only=["data-integrity"])
            assert report.config.endswith("sanitycheck.yaml")
            assert not report.ok
    """)
    result = pytester.runpytest_subprocess("--sanitycheck-config", "sanitycheck.yaml", "--sanitycheck-profile", "fast",
                                           "-v", "-rs", "-k", "test_defaults or data-integrity or class-balance or init-loss")
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "*sanitycheck.yaml::data-integrity FAILED*",
        "*sanitycheck.yaml::init-loss PASSED*",
    ], consecutive=False)
    result.stdout.fnmatch_lines(["*SKIPPED*class-balance: enabled: false in config*"])
    result.stdout.fnmatch_lines(["*SC801 data-integrity: NaN or Inf in inputs*"])
    assert "Traceback" not in result.stdout.str()  # a finding is reported as findings, not as a stack


def test_plugin_costs_nothing_at_start_up():
    """Loaded in every pytest run of the user's: importing it must not import torch or the engine."""
    code = ("import sys, sanitycheck.faces.pytest_plugin; "
            "print(sorted(m for m in ('torch', 'numpy', 'pydantic', 'sanitycheck.engine.runner') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
