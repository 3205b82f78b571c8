"""Every planted-bug case in benchmarks/cases/ (one folder each, read from its sanitycheck.yaml by the CLI's
runner): each expected finding appears, checks named `quiet` report nothing, and no check crashes.

Cases marked `slow: true` in expect.yaml (real-scale data) run only in the benchmark harness.
"""

from __future__ import annotations

import pytest
import yaml

from conftest import CASES

CASE_DIRS = sorted(p for p in CASES.iterdir() if (p / "expect.yaml").is_file())
FAST = [p for p in CASE_DIRS if not (yaml.safe_load((p / "expect.yaml").read_text()) or {}).get("slow")]


@pytest.mark.parametrize("case", FAST, ids=[p.name for p in FAST])
def test_case(case, host):
    from sanitycheck.engine.runner import run

    spec = yaml.safe_load((case / "expect.yaml").read_text()) or {}
    report = run(case / "sanitycheck.yaml", only=spec.get("only"), host=host)
    assert not report.crashed, report.crashed
    found = {(f.check, f.code, f.severity) for f in report.findings}
    for want in spec.get("expect", []):
        matches = [f for f in found if f[0] == want["check"] and f[1] == want["code"]
                   and want.get("severity") in (None, f[2])]
        assert matches, f"{case.name}: expected {want}, found {sorted(found)}"
    for name in spec.get("quiet", []):
        noisy = [f for f in report.findings if f.check == name and f.severity in ("error", "warning")]
        assert not noisy, f"{case.name}: {name} should be quiet, found {[(f.code, f.message) for f in noisy]}"
