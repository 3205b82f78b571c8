"""Run sanitycheck on every planted-bug pipeline in benchmarks/cases/ and print what it found.

Each case is a folder with a `sanitycheck.yaml` (and the pipeline it names) plus an `expect.yaml`:

    expect:                       # findings that must appear
      - {check: overfit-batch, code: SC301, severity: error}
    quiet: [init-loss]            # optional: checks that must report no warning or error (clean cases)
    only: [overfit-batch]         # optional: run only these checks (default: all)

Usage: python benchmarks/run.py [CASE ...] [--profile fast|default|thorough]
Prints one row per expectation: case, expected check, code, found, severity, seconds; exits 1 if any
expectation is missed. It also times whole `sanitycheck run` processes on the digits examples.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent
CASES = ROOT / "cases"
EXAMPLES = ROOT.parent / "examples" / "digits"


def run_case(case: Path, profile: str | None) -> tuple[list[tuple], bool]:
    from sanitycheck.engine.runner import run

    spec = yaml.safe_load((case / "expect.yaml").read_text()) or {}
    start = time.perf_counter()
    overrides = {"profile": profile} if profile else {}
    report = run(case / "sanitycheck.yaml", only=spec.get("only"), **overrides)
    seconds = time.perf_counter() - start
    rows, ok = [], True
    for want in spec.get("expect", []):
        hits = [f for f in report.findings if f.check == want["check"] and f.code == want.get("code", f.code)]
        severity = hits[0].severity if hits else "-"
        found = bool(hits) and (want.get("severity") in (None, severity))
        ok &= found
        rows.append((case.name, want["check"], want.get("code", "*"), "yes" if found else "MISSED", severity, seconds))
    for name in spec.get("quiet", []):
        loud = [f for f in report.findings if f.check == name and f.severity in ("error", "warning")]
        ok &= not loud
        rows.append((case.name, name, "quiet", "yes" if not loud else "LOUD: " + ",".join(f.code for f in loud),
                     "-", seconds))
    for c in report.checks:
        if c.status == "error":
            ok = False
            rows.append((case.name, c.name, "crash", "CRASHED", c.reason or "", seconds))
    return rows, ok


def time_examples() -> list[tuple]:
    """Wall time of whole `sanitycheck run` processes (imports included) on the digits examples."""
    exe = Path(sys.executable).with_name("sanitycheck")
    rows = []
    for name in ("clean", "buggy"):
        config = EXAMPLES / name / "sanitycheck.yaml"
        start = time.perf_counter()
        proc = subprocess.run([str(exe), "run", str(config), "--format", "json", "--quiet"],
                              capture_output=True, text=True)
        rows.append((f"examples/digits/{name}", "(whole run)", "-", f"exit {proc.returncode}", "-",
                     time.perf_counter() - start))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case folder names (default: all)")
    parser.add_argument("--profile", choices=["fast", "default", "thorough"])
    parser.add_argument("--no-examples", action="store_true", help="skip timing the digits examples")
    args = parser.parse_args()
    folders = sorted(p for p in CASES.iterdir() if (p / "expect.yaml").is_file())
    if args.cases:
        folders = [p for p in folders if p.name in args.cases]
    rows, all_ok = [], True
    for case in folders:
        case_rows, ok = run_case(case, args.profile)
        rows += case_rows
        all_ok &= ok
    if not args.no_examples and not args.cases:
        rows += time_examples()
    header = ("case", "expected check", "code", "found", "severity", "seconds")
    widths = [max(len(str(r[i])) if i < 5 else 7 for r in [header, *rows]) for i in range(6)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join([*(str(v).ljust(w) for v, w in zip(r[:5], widths)), f"{r[5]:7.2f}"]))
    print("all expectations met" if all_ok else "SOME EXPECTATIONS MISSED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
