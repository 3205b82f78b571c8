"""The command line (contract §2): ``run``, ``list``, ``explain``, ``init``; ``render`` (a saved JSON report in
another format) and ``pre-commit`` (the hook's entry).

Thin: the runner does the work.

torch is imported only by ``run``; ``--help``, ``list``, ``explain`` and ``init`` stay quick.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from sanitycheck._version import __version__
from sanitycheck.engine.errors import UsageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Probe a PyTorch training pipeline for the bugs that silently ruin training, before you train.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, highlight=False)


class Format(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"
    junit = "junit"
    markdown = "markdown"
    html = "html"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    never = "never"


class Profile(str, Enum):
    fast = "fast"
    default = "default"
    thorough = "thorough"


def _names(value: Optional[str]) -> Optional[list[str]]:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


@app.command()
def run(
    config: Path = typer.Argument(..., help="The sanitycheck.yaml describing your pipeline."),
    only: Optional[str] = typer.Option(None, help="Run only these checks (comma-separated names)."),
    skip: Optional[str] = typer.Option(None, help="Skip these checks (comma-separated names)."),
    format: Format = typer.Option(Format.text, "--format", help="Report format."),
    output: Optional[Path] = typer.Option(None, help="Write the report here; a short summary still goes to the terminal."),
    fail_on: Optional[FailOn] = typer.Option(None, help="Exit 1 on findings at or above this severity [config: error]."),
    profile: Optional[Profile] = typer.Option(None, help="Budget of every probe [config: default]."),
    device: Optional[str] = typer.Option(None, help="cpu | cuda | cuda:N | auto [config: cpu]."),
    seed: Optional[int] = typer.Option(None, help="Seed for every probe [config: 0]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display (it is also off when stderr is not a terminal)."),
    baseline: Optional[Path] = typer.Option(
        None, "--baseline", metavar="FILE", help="Accept the findings recorded in FILE (by --write-baseline): fail only on new ones."),
    write_baseline: Optional[Path] = typer.Option(
        None, "--write-baseline", metavar="FILE", help="Record every finding of this run in FILE as accepted; exit 0 unless a check crashed."),
    export: Optional[Path] = typer.Option(
        None, "--export", metavar="DIR", help="Write every flagged sample of every finding as CSV under DIR (the report "
        "lists at most 1000 per split); for leakage also drop.csv, the samples to remove."),
    debug: bool = typer.Option(False, help="Show tracebacks for usage errors."),
) -> None:
    """Run the checks on the pipeline CONFIG describes. Exit 0 clean, 1 findings, 2 bad input, 3 a check crashed."""
    from sanitycheck.faces.report import FORMATS, text

    with _usage_errors(debug):
        if format.value not in FORMATS:
            raise UsageError(f"--format: '{format.value}' is not available in this version (available: {', '.join(FORMATS)})")
        from sanitycheck.faces.baseline import apply_baseline, load_baseline, write_baseline as save_baseline
        from sanitycheck.engine.config import load_config
        from sanitycheck.engine.runner import run as run_checks

        overrides = {"fail_on": fail_on and fail_on.value, "profile": profile and profile.value,
                     "device": device, "seed": seed}
        cfg = load_config(config, **{k: v for k, v in overrides.items() if v is not None})
        accepted = load_baseline(baseline) if baseline is not None else None  # a bad file fails before the probes
        if export is not None:  # so does an export folder that cannot be written
            from sanitycheck.faces.export import prepare_export_dir

            prepare_export_dir(export)
        report = _run_with_progress(run_checks, cfg, _names(only), _names(skip), show=not quiet and err.is_terminal)
    if write_baseline is not None:
        count = save_baseline(report, write_baseline)
        err.print(f"sanitycheck: {count} finding(s) recorded as accepted in {write_baseline}", markup=False)
    if accepted is not None:
        report, known = apply_baseline(report, accepted)
        if known:
            err.print(f"sanitycheck: {len(known)} known finding(s) accepted by baseline {baseline}", markup=False)
    if export is not None:
        from sanitycheck.faces.export import write_export

        with _usage_errors(debug):
            files = write_export(report, export)
        err.print(f"sanitycheck: {len(files) - 1} CSV table(s) and index.csv written to {export}", markup=False)
    rendered = FORMATS[format.value](report)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(rendered)
        typer.echo(f"{text.summary_line(report)}; {format.value} report written to {output}")
    elif format is Format.text:
        sys.stdout.write(text.render(report, color=sys.stdout.isatty()))
    else:
        sys.stdout.write(rendered)
    if write_baseline is not None:  # the run's findings are now accepted: only a crash fails
        raise typer.Exit(3 if report.crashed else 0)
    raise typer.Exit(report.exit_code(cfg.fail_on))


def _run_with_progress(run_checks, cfg, only, skip, show: bool):
    """Run the checks, with the live progress display on stderr when ``show``."""
    if not show:
        return run_checks(cfg, only=only, skip=skip)
    from sanitycheck.faces.display import ProgressDisplay

    with ProgressDisplay(err) as display:
        return run_checks(cfg, only=only, skip=skip, progress=display)


@app.command()
def render(
    report_json: Path = typer.Argument(..., metavar="REPORT.json", help="A report written by `run --format json`."),
    format: Format = typer.Option(Format.html, "--format", help="Output format."),
    output: Optional[Path] = typer.Option(None, help="Write here instead of stdout."),
) -> None:
    """Render a saved JSON report in another format, without running the probes again (CI: one run, every format)."""
    from pydantic import ValidationError

    from sanitycheck.engine.models import Report
    from sanitycheck.faces.report import FORMATS

    with _usage_errors(False):
        if not report_json.is_file():
            raise UsageError(f"report not found: {report_json}")
        try:
            report = Report.model_validate_json(report_json.read_text())
        except ValidationError as exc:
            raise UsageError(f"{report_json}: not a sanitycheck JSON report ({exc.error_count()} error(s), first: "
                             f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))})") from exc
    rendered = FORMATS[format.value](report)
    if output is None:
        sys.stdout.write(rendered)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendered)
    typer.echo(f"{format.value} report written to {output}")


@app.command("pre-commit")
def pre_commit(
    files: Optional[list[Path]] = typer.Argument(None, help="Changed files (pre-commit passes them)."),
    config: Path = typer.Option(Path("sanitycheck.yaml"), "--config", "-c", help="The sanitycheck.yaml to run."),
    profile: Profile = typer.Option(Profile.fast, help="Budget of every probe."),
    only: Optional[str] = typer.Option(None, help="Run only these checks (comma-separated names)."),
    skip: Optional[str] = typer.Option(None, help="Skip these checks (comma-separated names)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", metavar="FILE", help="Fail only on findings not in FILE."),
    debug: bool = typer.Option(False, help="Show tracebacks for usage errors."),
) -> None:
    """The pre-commit hook: run CONFIG (profile fast) when it or a file it names is among FILES."""
    from sanitycheck.faces.report import text

    with _usage_errors(debug):
        from sanitycheck.faces.baseline import apply_baseline, load_baseline
        from sanitycheck.engine.config import load_config
        from sanitycheck.faces.precommit import touched, watched
        from sanitycheck.engine.runner import run as run_checks

        cfg = load_config(config, profile=profile.value)
        if files and not touched(files, watched(cfg, config)):
            typer.echo(f"sanitycheck: nothing {config} depends on changed; skipped")
            raise typer.Exit(0)
        accepted = load_baseline(baseline) if baseline is not None else None
        report = run_checks(cfg, only=_names(only), skip=_names(skip))
    if accepted is not None:
        report, _known = apply_baseline(report, accepted)
    sys.stdout.write(text.render(report, color=sys.stdout.isatty()))
    raise typer.Exit(report.exit_code(cfg.fail_on))


@app.command("list")
def list_checks() -> None:
    """Every check: name, codes, what it detects, cost."""
    from rich.table import Table

    from sanitycheck.engine.host import load_host

    host = load_host()
    table = Table(expand=True, show_lines=True)
    table.add_column("check", no_wrap=True, style="bold")
    table.add_column("codes")
    table.add_column("detects", ratio=2)
    table.add_column("cost", ratio=1)
    for check in host.checks.values():
        codes = "\n".join(f"{d.code} {d.title}" for d in check.codes)
        table.add_row(check.name, Text(codes), Text(check.summary), Text(check.cost))
    Console(width=140 if not sys.stdout.isatty() else None).print(table)
    for name, error in host.load_errors:
        err.print(Text.assemble(("warning: ", "yellow"), f"plugin '{name}' failed to load: {error}"))


@app.command()
def explain(code_or_name: str = typer.Argument(..., metavar="CODE|NAME", help="A finding code (SC301) or a check name.")) -> None:
    """The long description of a code or check: what it does, why it matters, an example, the fix."""
    from sanitycheck.engine.host import load_host

    host = load_host()
    docs = host.code_docs()
    key = code_or_name.strip()
    out = Console(width=100 if not sys.stdout.isatty() else None, highlight=False)
    if key.upper() in docs:
        check, doc = docs[key.upper()]
        _print_doc(out, doc, check.name if check else "sanitycheck")
        return
    if key in host.checks:
        check = host.checks[key]
        out.print(Text.assemble((check.name, "bold"), f": {check.summary}\n", (f"cost: {check.cost}", "dim")))
        fields = check.Settings.model_fields
        if fields:
            out.print("\n[bold]Settings[/bold] (checks: {" + check.name + ": {...}})")
            for fname, info in fields.items():
                default = info.get_default(call_default_factory=True)
                out.print(f"  {fname} (default {default!r}): {info.description or ''}", markup=False)
        for doc in check.codes:
            out.print()
            _print_doc(out, doc, check.name)
        return
    import difflib

    close = difflib.get_close_matches(key, list(host.checks) + list(docs), n=1)
    err.print(f"error: no check or code named '{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""), markup=False)
    raise typer.Exit(2)


def _print_doc(out: Console, doc, check_name: str) -> None:
    out.print(f"[bold]{doc.code}[/bold] {doc.title}  [dim]({check_name}, usually {doc.severity})[/dim]")
    for heading, body in (("What it does", doc.what), ("Why it matters", doc.why), ("Example", doc.example), ("Fix", doc.fix)):
        out.print(f"\n[bold]{heading}[/bold]")
        out.print(body, markup=False)


@app.command()
def init(
    path: Path = typer.Argument(Path("sanitycheck.yaml"), help="Where to write the template."),
    force: bool = typer.Option(False, help="Overwrite an existing file."),
) -> None:
    """Write a commented sanitycheck.yaml to start from."""
    from sanitycheck.faces.template import TEMPLATE

    if path.exists() and not force:
        err.print(f"error: {path} exists; pass --force to overwrite it")
        raise typer.Exit(2)
    path.write_text(TEMPLATE)
    typer.echo(f"wrote {path}: point data/model/loss at your pipeline, then run `sanitycheck run {path}`")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sanitycheck {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version.")) -> None:
    pass


class _usage_errors:
    """Print a UsageError as one line and exit 2 (with --debug, show the traceback too)."""

    def __init__(self, debug: bool):
        self.debug = debug

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, UsageError):
            return False
        if self.debug:
            import traceback

            traceback.print_exception(exc_type, exc, tb)
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        raise typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
