"""Costs of the faces (run by hand: `python benchmarks/faces.py`), printing figures.

- what the pytest plugin adds to EVERY pytest start-up of a user (it is registered by installing the package):
  the import time of `sanitycheck.faces.pytest_plugin` on top of pytest's own, median of 15 fresh interpreters;
- rendering a large report (12 checks, 48 findings, each with 1000 flagged samples, a 200-step curve and
  24 thumbnails) in every format: seconds and size.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def import_ms(module: str | None, runs: int = 15) -> float:
    code = f"import {module}" if module else "pass"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def big_report():
    from sample_report import thumbnails
    from sanitycheck.engine.models import CheckResult, Finding, Report, SplitSummary

    thumbs = thumbnails() * 3  # 24 pictures
    findings = [
        Finding(check=f"check-{c}", code=f"SC{c}0{k}", severity=("error", "warning", "info")[k % 3], title="t",
                message="m", samples={"train": list(range(1000))},
                evidence={"curve": [2.3 / (1 + i) for i in range(200)], "thumbnails": thumbs, "steps": 200})
        for c in range(12) for k in range(4)
    ]
    checks = [CheckResult(name=f"check-{c}", status="failed", duration_s=1.0) for c in range(12)]
    report = Report.assemble("sanitycheck.yaml", findings, checks, 60.0)
    report.splits = {"train": SplitSummary(samples=50000, class_counts=[5000] * 10),
                     "val": SplitSummary(samples=10000, class_counts=[1000] * 10)}
    return report


def main() -> None:
    bare, pytest_only, plugin = import_ms(None), import_ms("pytest"), import_ms("pytest, sanitycheck.faces.pytest_plugin")
    print(f"python start-up {bare:.0f} ms; `import pytest` {pytest_only:.0f} ms; "
          f"`import pytest, sanitycheck.faces.pytest_plugin` {plugin:.0f} ms: the plugin adds {plugin - pytest_only:.0f} ms")
    from sanitycheck.engine.host import load_host
    from sanitycheck.faces.report import FORMATS, sarif

    report = big_report()
    docs = load_host().code_docs()
    print(f"{'format':<10}{'seconds':>10}{'size':>12}")
    for name, render in FORMATS.items():
        start = time.perf_counter()
        out = sarif.render(report, docs=docs) if name == "sarif" else render(report)
        print(f"{name:<10}{time.perf_counter() - start:>10.3f}{len(out.encode()) / 1e6:>10.2f} MB")


if __name__ == "__main__":
    main()
