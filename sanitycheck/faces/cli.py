"""The command line (contract §2): ``run``, ``list``, ``explain``, ``init``; ``render`` (a saved JSON report in
another format) and ``pre-commit`` (the hook's entry).

Thin: the runner does the work.

torch is imported only by ``run``; ``--help``, ``list``, ``explain`` and ``init`` stay quick.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

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
    rich_markup_mode=None,  # plain click help: flags shown as flags (`-q, --quiet`), brackets in help text kept
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


class Engine(str, Enum):
    local = "local"
    ray = "ray"


class Profile(str, Enum):
    fast = "fast"
    default = "default"
    thorough = "thorough"


def _names(value: Optional[str]) -> Optional[list[str]]:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


@app.command()
def run(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The sanitycheck.yaml describing your pipeline."),
    only: Optional[str] = typer.Option(None, metavar="NAME,...", help="Run only these checks (comma-separated names)."),
    skip: Optional[str] = typer.Option(None, metavar="NAME,...", help="Skip these checks (comma-separated names)."),
    format: Format = typer.Option(Format.text, "--format", help="Report format."),
    output: Optional[Path] = typer.Option(None, metavar="PATH", help="Write the report here; a short summary still goes to the terminal."),
    fail_on: Optional[FailOn] = typer.Option(None, help="Exit 1 on findings at or above this severity [config: error]."),
    profile: Optional[Profile] = typer.Option(None, help="Budget of every probe [config: default]."),
    device: Optional[str] = typer.Option(None, metavar="DEV", help="cpu | cuda | cuda:N | auto [config: cpu]."),
    seed: Optional[int] = typer.Option(None, metavar="N", help="Seed for every probe [config: 0]."),
    engine: Optional[Engine] = typer.Option(
        None, metavar="local|ray", help="Where the data scans run: local, or ray (a Ray cluster: config engine.address, "
        "default auto; needs sanitycheck[ray]) [config: local]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display (it is also off when stderr is not a terminal)."),
    baseline: Optional[Path] = typer.Option(
        None, "--baseline", metavar="FILE", help="Accept the findings recorded in FILE (by --write-baseline): fail only on new ones."),
    write_baseline: Optional[Path] = typer.Option(
        None, "--write-baseline", metavar="FILE", help="Record every finding of this run in FILE as accepted; exit 0 unless a check crashed."),
    export: Optional[Path] = typer.Option(
        None, "--export", metavar="DIR", help="Write every flagged sample of every finding as CSV under DIR (the report "
        "lists at most 1000 per split); for leakage also drop.csv, the samples to remove."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for usage errors."),
) -> None:
    """Run the checks on the pipeline CONFIG describes. Exit 0 clean, 1 findings, 2 bad input, 3 a check crashed or
    timed out, 130 interrupted."""
    from sanitycheck.faces.report import FORMATS, text

    with _usage_errors(debug), _owned_torch_cache():
        if format.value not in FORMATS:
            raise UsageError(f"--format: '{format.value}' is not available in this version (available: {', '.join(FORMATS)})")
        from sanitycheck.engine.errors import RunInterrupted
        from sanitycheck.faces.baseline import apply_baseline, load_baseline, write_baseline as save_baseline
        from sanitycheck.faces.outputs import atomic_write_text, discard_stale, validate_output_path
        from sanitycheck.engine.config import load_config
        from sanitycheck.engine.runner import run as run_checks

        # Every path this run writes is checked before anything runs (exit 2, one message).
        if output is not None:
            validate_output_path(output, option="--output")
        if write_baseline is not None:
            validate_output_path(write_baseline, option="--write-baseline")
        _no_overwrite({"--output": output, "--write-baseline": write_baseline},
                      {"the config": config, "--baseline": baseline})
        if output is not None:
            discard_stale(output)  # a run that fails or is killed never leaves the previous report looking current
        overrides = {"fail_on": fail_on and fail_on.value, "profile": profile and profile.value,
                     "device": device, "seed": seed}
        cfg = load_config(config, **{k: v for k, v in overrides.items() if v is not None})
        if engine is not None:  # the flag picks the engine; the config's address and settings stay
            cfg = load_config(cfg, engine={**cfg.engine.model_dump(), "name": engine.value})
        accepted = load_baseline(baseline) if baseline is not None else None  # a bad file fails before the probes
        if export is not None:
            validate_output_path(export, directory=True, option="--export")
        checkpoint = None
        if output is not None:
            checkpoint = _checkpointer(output, FORMATS[format.value], accepted)
        try:
            report = _run_with_progress(run_checks, cfg, _names(only), _names(skip), show=not quiet and err.is_terminal,
                                        checkpoint=checkpoint)
        except RunInterrupted as exc:
            report = exc.report
        if write_baseline is not None:  # every finding of this run, before the old baseline is applied
            if report.interrupted:
                err.print(f"sanitycheck: the run was interrupted; {write_baseline} was not written", markup=False)
            else:
                count = _written("--write-baseline", write_baseline, lambda: save_baseline(report, write_baseline))
                err.print(f"sanitycheck: {count} finding(s) recorded as accepted in {write_baseline}", markup=False)
        if accepted is not None:
            report, known = apply_baseline(report, accepted)
            if known:
                err.print(f"sanitycheck: {len(known)} known finding(s) accepted by baseline {baseline}", markup=False)
        if export is not None:
            from sanitycheck.faces.export import write_export

            files = _written("--export", export, lambda: write_export(report, export))
            err.print(f"sanitycheck: {len(files) - 1} CSV table(s) and index.csv written to {export}", markup=False)
        rendered = FORMATS[format.value](report)
        if output is not None:
            _written("--output", output, lambda: atomic_write_text(output, rendered))
            typer.echo(f"{text.summary_line(report)}; {format.value} report written to {output}")
        elif format is Format.text:
            sys.stdout.write(text.render(report, color=sys.stdout.isatty()))
        else:
            sys.stdout.write(rendered)
        if report.interrupted:
            unfinished = sum(c.status == "skipped" and (c.reason or "").startswith(("not run", "interrupted"))
                             for c in report.checks)
            err.print(f"sanitycheck: interrupted; {len(report.checks) - unfinished} of {len(report.checks)} check(s) "
                      "finished", markup=False)
    if report.interrupted:
        raise typer.Exit(130)
    if write_baseline is not None:  # the run's findings are now accepted: only a crash fails
        raise typer.Exit(3 if report.crashed else 0)
    raise typer.Exit(report.exit_code(cfg.fail_on))


def _written(option: str, path: Path, write):
    """``write()``; an OSError (disk full, the folder removed meanwhile) is one usage error naming the path."""
    try:
        return write()
    except OSError as exc:
        raise UsageError(f"{option}: cannot write {str(path)!r}: {exc.strerror or exc}") from exc


def _no_overwrite(outputs: dict, inputs: dict) -> None:
    """An output path that is one of the run's own input files would destroy it: a usage error (exit 2)."""
    for option, out in outputs.items():
        for what, source in inputs.items():
            if out is not None and source is not None and Path(out).resolve() == Path(source).resolve():
                raise UsageError(f"{option}: {str(out)!r} is {what} itself; write the report somewhere else")
    if outputs.get("--output") is not None and outputs.get("--write-baseline") is not None \
            and Path(outputs["--output"]).resolve() == Path(outputs["--write-baseline"]).resolve():
        raise UsageError("--output and --write-baseline name the same file")


def _checkpointer(output: Path, render_format, accepted):
    """Rewrite ``output`` with the report so far (marked interrupted) after each check: a run killed from outside
    (CI timeout, out of memory) leaves the checks that finished, never a stale report."""
    from sanitycheck.faces.baseline import apply_baseline
    from sanitycheck.faces.outputs import atomic_write_text

    failed: list[OSError] = []

    def write(report) -> None:
        if failed:
            return
        if accepted is not None:
            report, _known = apply_baseline(report, accepted)
        try:
            atomic_write_text(output, render_format(report))
        except OSError as exc:  # the final write will say it; probes go on
            failed.append(exc)

    return write


def _run_with_progress(run_checks, cfg, only, skip, show: bool, checkpoint=None):
    """Run the checks, with the live progress display on stderr when ``show``."""
    if not show:
        return run_checks(cfg, only=only, skip=skip, checkpoint=checkpoint)
    from sanitycheck.faces.display import ProgressDisplay

    with ProgressDisplay(err) as display:
        return run_checks(cfg, only=only, skip=skip, progress=display, checkpoint=checkpoint)


class _owned_torch_cache:
    """Point torch's compile cache (``TORCHINDUCTOR_CACHE_DIR``) at a folder this run owns, removed at the end.

    Building any optimizer imports ``torch._dynamo``, which creates ``$TMPDIR/torchinductor_<user>`` on import;
    without this every run would leave that folder behind. A cache folder the user chose is left alone.
    """

    def __enter__(self) -> None:
        import os

        self.folder = None
        if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
            import tempfile

            self.folder = tempfile.mkdtemp(prefix="sanitycheck-torch-cache-")
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = self.folder

    def __exit__(self, *exc) -> bool:
        import os
        import shutil

        if self.folder is not None:
            if os.environ.get("TORCHINDUCTOR_CACHE_DIR") == self.folder:
                del os.environ["TORCHINDUCTOR_CACHE_DIR"]
            shutil.rmtree(self.folder, ignore_errors=True)
        return False


@app.command()
def render(
    report_json: Path = typer.Argument(..., metavar="REPORT.json", help="A report written by `run --format json`."),
    format: Format = typer.Option(Format.html, "--format", help="Output format."),
    output: Optional[Path] = typer.Option(None, metavar="PATH", help="Write here instead of stdout."),
) -> None:
    """Render a saved JSON report in another format, without running the probes again (CI: one run, every format)."""
    from pydantic import ValidationError

    from sanitycheck.engine.models import Report
    from sanitycheck.faces.report import FORMATS

    from sanitycheck.engine.config import read_text_file
    from sanitycheck.faces.outputs import atomic_write_text, validate_output_path

    with _usage_errors(False):
        if output is not None:
            validate_output_path(output, option="--output")
        if not report_json.is_file():
            raise UsageError(f"report not found: {report_json}" + (" (it is a folder)" if report_json.is_dir() else ""))
        try:
            report = Report.model_validate_json(read_text_file(report_json, "report"))
        except ValidationError as exc:
            first = exc.errors()[0]
            at = ".".join(map(str, first["loc"]))
            raise UsageError(f"{report_json}: not a sanitycheck JSON report ({exc.error_count()} error(s), first: "
                             f"{first['msg']}{' at ' + at if at else ''})") from exc
        rendered = FORMATS[format.value](report)
        if output is None:
            sys.stdout.write(rendered)
            return
        atomic_write_text(output, rendered)
    typer.echo(f"{format.value} report written to {output}")


@app.command("pre-commit")
def pre_commit(
    files: Optional[list[Path]] = typer.Argument(None, metavar="FILES", help="Changed files (pre-commit passes them)."),
    config: Path = typer.Option(Path("sanitycheck.yaml"), "--config", "-c", metavar="CONFIG", help="The sanitycheck.yaml to run."),
    profile: Profile = typer.Option(Profile.fast, help="Budget of every probe."),
    only: Optional[str] = typer.Option(None, metavar="NAME,...", help="Run only these checks (comma-separated names)."),
    skip: Optional[str] = typer.Option(None, metavar="NAME,...", help="Skip these checks (comma-separated names)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", metavar="FILE", help="Fail only on findings not in FILE."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for usage errors."),
) -> None:
    """The pre-commit hook: run CONFIG (profile fast) when it or a file it names is among FILES."""
    from sanitycheck.faces.report import text

    with _usage_errors(debug), _owned_torch_cache():
        from sanitycheck.engine.errors import RunInterrupted
        from sanitycheck.faces.baseline import apply_baseline, load_baseline
        from sanitycheck.engine.config import load_config
        from sanitycheck.faces.precommit import touched, watched
        from sanitycheck.engine.runner import run as run_checks

        cfg = load_config(config, profile=profile.value)
        if files and not touched(files, watched(cfg, config)):
            typer.echo(f"sanitycheck: nothing {config} depends on changed; skipped")
            raise typer.Exit(0)
        accepted = load_baseline(baseline) if baseline is not None else None
        try:
            report = run_checks(cfg, only=_names(only), skip=_names(skip))
        except RunInterrupted as exc:
            report = exc.report
    if accepted is not None:
        report, _known = apply_baseline(report, accepted)
    sys.stdout.write(text.render(report, color=sys.stdout.isatty()))
    raise typer.Exit(report.exit_code(cfg.fail_on))


@app.command("list")
def list_checks() -> None:
    """Every check: name, codes, what it detects, cost."""
    from rich.table import Table

    from sanitycheck.engine.host import load_host
    from sanitycheck.faces import terminal

    with _usage_errors(False):
        host = load_host()
    width = terminal.width(sys.stdout)
    table = Table(expand=True, show_lines=True)
    table.add_column("check", style="bold", overflow="fold")
    if width >= 120:  # one column each
        table.add_column("codes", ratio=2, overflow="fold")
        table.add_column("detects", ratio=2, overflow="fold")
        table.add_column("cost", ratio=1, overflow="fold")
    else:  # narrow: what it detects, its cost and its codes, one under the other
        table.add_column("detects, cost, codes", ratio=1, overflow="fold")
    for check in host.checks.values():
        codes = "\n".join(f"{d.code} {d.title}" for d in check.codes)
        cost = cost_text(check)
        if width >= 120:
            table.add_row(check.name, Text(codes), Text(check.summary), Text(cost))
        else:
            table.add_row(check.name, Text.assemble(check.summary, "\n", (f"cost: {cost}", "dim"), "\n", codes))
    Console(width=width).print(table)
    for name, error in host.load_errors:
        err.print(Text.assemble(("warning: ", "yellow"), f"plugin '{name}' failed to load: {error}"))


def cost_text(check: Any) -> str:
    """The check's cost: its seconds measured on the digits example when known, then its own description."""
    measured = measured_costs()
    seconds = measured.get("checks", {}).get(check.name)
    if seconds is None:
        return check.cost
    figure = f"{seconds:.2g} s" if seconds >= 0.01 else "under 0.01 s"
    return f"{figure} on the digits example ({measured.get('where', 'measured')}); {check.cost}"


def measured_costs() -> dict:
    """Each built-in check's seconds in a default run on the digits example (``measured_costs.json`` next to this
    module, written by ``python benchmarks/preflight_vs_epoch.py digits --write-costs``); empty when absent."""
    import json
    from pathlib import Path

    try:
        return json.loads((Path(__file__).with_name("measured_costs.json")).read_text())
    except (OSError, ValueError):
        return {}


@app.command()
def explain(code_or_name: str = typer.Argument(..., metavar="CODE|NAME", help="A finding code (SC301) or a check name.")) -> None:
    """The long description of a code or check: what it does, why it matters, an example, the fix."""
    from sanitycheck.engine.host import load_host

    with _usage_errors(False):
        host = load_host()
    docs = host.code_docs()
    key = code_or_name.strip()
    from sanitycheck.faces import terminal

    out = Console(width=terminal.width(sys.stdout), highlight=False)
    if key.upper() in docs:
        check, doc = docs[key.upper()]
        _print_doc(out, doc, check.name if check else "sanitycheck")
        return
    if key in host.checks:
        check = host.checks[key]
        out.print(Text.assemble((check.name, "bold"), f": {check.summary}\n", (f"cost: {cost_text(check)}", "dim")))
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
    if doc.explained_by:
        out.print("\n[bold]Explained by[/bold]")
        out.print(f"{', '.join(doc.explained_by)}: when one of these is found in the same run, this finding is likely "
                  "its consequence; the report lists it after them and names them.", markup=False)


@app.command()
def init(
    path: Path = typer.Argument(Path("sanitycheck.yaml"), metavar="PATH", help="Where to write the template."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented sanitycheck.yaml to start from."""
    from sanitycheck.faces.template import TEMPLATE

    from sanitycheck.faces.outputs import atomic_write_text, validate_output_path

    if path.exists() and not force:
        err.print(f"error: {path} exists; pass --force to overwrite it")
        raise typer.Exit(2)
    with _usage_errors(False):
        validate_output_path(path, option="init")
        atomic_write_text(path, TEMPLATE)
    typer.echo(f"wrote {path}: point data/model/loss at your pipeline, then run `sanitycheck run {path}`")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sanitycheck {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version.")) -> None:
    pass


class _usage_errors:
    """Print a UsageError as one line and exit 2 (with --debug, show the traceback too); Ctrl-C exits 130."""

    def __init__(self, debug: bool):
        self.debug = debug

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if isinstance(exc, KeyboardInterrupt):  # outside the runner (which returns a report): nothing ran yet
            err.print("sanitycheck: interrupted", markup=False)
            raise typer.Exit(130)
        if exc is None or not isinstance(exc, UsageError):
            return False
        if self.debug:
            import traceback

            traceback.print_exception(exc_type, exc, tb)
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        raise typer.Exit(2)


def main() -> None:
    """The ``sanitycheck`` command. SIGTERM (a cancelled CI job) is handled like Ctrl-C: the report of the checks
    that finished is written and the exit code is 130. When a thread is still running at the end (a check abandoned
    in a C call past its time limit, or a thread the user's code left running), the process ends with ``os._exit``
    once the report is written, instead of waiting for that thread forever."""
    import os
    import signal

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, _terminate)
    except (ValueError, OSError):  # not the main thread, or a platform without it
        pass
    try:
        app()
    except SystemExit as exc:
        from sanitycheck.engine.faults import stuck_threads

        if stuck_threads():
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, (int, type(None))):
                print(exc.code, file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise


if __name__ == "__main__":
    main()
