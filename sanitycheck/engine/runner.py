"""configure -> collect checks -> run each (timed, crash-isolated) -> Report. No printing here."""

from __future__ import annotations

import difflib
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sanitycheck.engine.check import Check, CheckSettings
from sanitycheck.engine.config import Config, load_config
from sanitycheck.engine.errors import ConfigError, SkipCheck, UsageError
from sanitycheck.engine.host import ENGINE_CODES, PluginHost, load_host
from sanitycheck.engine.models import CheckResult, Finding, Report, SplitSummary

#: Called with (check name, event) for progress display. Events: "queued" (once per selected check, before the
#: pipeline is opened), "start", then the finished CheckResult; and, named by their description, the
#: :class:`~sanitycheck.engine.progress.ScanEvent` of every long scan (data pass, k-NN search) during the run.
Progress = Callable[[str, Any], None]


def run(
    config: str | Path | dict[str, Any] | Config,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
    host: PluginHost | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> Report:
    """Run the selected checks on the pipeline a config describes and return the :class:`Report`.

    Raises :class:`~sanitycheck.engine.errors.UsageError` for bad input (the CLI's exit code 2). A check that
    crashes does not raise: it is a :class:`CheckResult` with status ``error``.
    """
    started = time.perf_counter()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg = load_config(config, **overrides)
    host = host or load_host()
    host.hook.sanitycheck_configure.call_historic(kwargs={"config": cfg})
    selected = select_checks(host, cfg, only, skip)
    settings = {name: check_settings(host.checks[name], cfg) for name in selected}

    findings = [_plugin_error(name, error) for name, error in host.load_errors]
    results: list[CheckResult] = []
    if progress:
        for name in selected:
            progress(name, "queued")
    from sanitycheck.engine.progress import listening

    with listening(progress):  # long scans report to the same callback
        ctx = host.hook.sanitycheck_open_pipeline(config=cfg)  # the pipeline layer; torch is imported here
        for name in selected:
            check = host.checks[name]
            if not settings[name].enabled:
                results.append(CheckResult(name=name, status="skipped", duration_s=0.0, reason="enabled: false in config"))
                continue
            if progress:
                progress(name, "start")
            result, found = _run_one(host, check, ctx, settings[name])
            results.append(result)
            findings.extend(found)
            if progress:
                progress(name, result)
    findings = link_causes(findings, host.code_docs())
    report = Report.assemble(cfg.source, findings, results, time.perf_counter() - started)
    report.splits = split_summaries(ctx)
    host.hook.sanitycheck_report(report=report)
    return report


def _run_one(host: PluginHost, check: Check, ctx: Any, settings: CheckSettings) -> tuple[CheckResult, list[Finding]]:
    """Run one check, timed; a crash becomes status ``error`` with the exception as the reason."""
    start = time.perf_counter()
    status, reason, found = "passed", None, []
    try:
        found = list(host.hook.sanitycheck_run_check(check=check, context=ctx, settings=settings) or [])
        found = [f for f in found if f.code not in settings.ignore]  # checks: {NAME: {ignore: [CODE]}}
        if any(f.severity in ("error", "warning") for f in found):
            status = "failed"
    except SkipCheck as exc:
        status, reason = "skipped", str(exc)
    except Exception as exc:  # crash isolation: the other checks still run
        status = "error"
        where = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
    duration = round(time.perf_counter() - start, 3)
    return CheckResult(name=check.name, status=status, duration_s=duration, reason=reason), found


def link_causes(findings: list[Finding], docs: dict[str, tuple[Any, Any]]) -> list[Finding]:
    """Order findings so that specific causes come before the generic consequences they explain, and name the cause
    in each consequence's message.

    A finding is a consequence when its code's :attr:`~sanitycheck.engine.check.CodeDoc.explained_by` lists a code
    found in this run as an error or a warning (e.g. label-shuffle's "labels not learned" with init-loss's "outputs
    already squashed by a sigmoid"). Its message then names that cause, its evidence lists it under
    ``explained_by``, and it moves after the unexplained findings; :meth:`Report.assemble` then orders by severity,
    keeping this order within each severity.
    """
    present: dict[str, Finding] = {}
    for f in findings:
        if f.severity in ("error", "warning"):
            present.setdefault(f.code, f)
    ranked = []
    for f in findings:
        doc = docs.get(f.code, (None, None))[1]
        causes = [code for code in (doc.explained_by if doc is not None else ()) if code in present and code != f.code]
        if causes:
            named = "; ".join(f"{c} ({present[c].check}: {present[c].title})" for c in causes)
            f = f.model_copy(update={
                "message": f"{f.message} This is likely a consequence of {named}, found in this run: fix that "
                           "first.",
                "evidence": {**f.evidence, "explained_by": causes},
            })
        ranked.append((bool(causes), f))
    return [f for _, f in sorted(ranked, key=lambda pair: pair[0])]


def select_checks(host: PluginHost, cfg: Config, only: Iterable[str] | None, skip: Iterable[str] | None) -> list[str]:
    """The names of the checks to run, in registration order, after ``--only`` and ``--skip``."""
    known = list(host.checks)
    only, skip = list(only or []), list(skip or [])
    for flag, names in (("--only", only), ("--skip", skip), ("checks", list(cfg.checks))):
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known checks: {', '.join(known)})"
                raise ConfigError(f"{flag}: unknown check '{name}'{hint}")
    return [n for n in known if (not only or n in only) and n not in skip]


def check_settings(check: Check, cfg: Config) -> CheckSettings:
    """Validate ``checks.<name>`` against the check's settings model, naming the key at fault."""
    raw = cfg.checks.get(check.name, {})
    try:
        settings = check.Settings.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(["checks", check.name, *map(str, error["loc"])])
        if error["type"] == "extra_forbidden":
            valid = list(check.Settings.model_fields)
            close = difflib.get_close_matches(str(error["loc"][-1]), valid, n=1)
            hint = f" (did you mean 'checks.{check.name}.{close[0]}'?)" if close else f" (valid keys: {', '.join(valid)})"
            raise ConfigError(f"{cfg.source or 'config'}: unknown key '{key}'{hint}") from exc
        raise ConfigError(f"{cfg.source or 'config'}: key '{key}': {error['msg']} (got {error.get('input')!r})") from exc
    own = [doc.code for doc in check.codes]
    for code in settings.ignore:
        if code not in own:  # a typo would silently suppress nothing
            raise ConfigError(f"{cfg.source or 'config'}: key 'checks.{check.name}.ignore': {code!r} is not a code of "
                              f"{check.name} (its codes: {', '.join(own)})")
    return settings


def split_summaries(ctx: Any) -> dict[str, SplitSummary]:
    """Each split's size and, for classification, its class counts (from the data pass the preflight already did)."""
    import numpy as np

    out = {}
    for split in ctx.splits():
        labels = ctx.class_labels(split)
        counts = None
        if labels is not None and ctx.num_classes:
            labels = labels[(labels >= 0) & (labels < ctx.num_classes)]
            counts = np.bincount(labels, minlength=ctx.num_classes).tolist()
        out[split.name] = SplitSummary(samples=len(split), class_counts=counts)
    return out


def _plugin_error(name: str, error: str) -> Finding:
    doc = ENGINE_CODES[0]
    return Finding(
        check="sanitycheck", code=doc.code, severity=doc.severity, title=doc.title, fix=doc.fix,
        message=f"plugin '{name}' failed to load and its checks did not run: {error}",
        evidence={"plugin": name, "error": error},
    )


__all__ = ["run", "select_checks", "check_settings", "link_causes", "UsageError"]
