"""configure -> collect checks -> run each (timed, crash- and time-isolated) -> Report. No printing here.

Every way user or plugin code can leave a check has one outcome (docs/faults.md): an exception, ``sys.exit``,
``os._exit`` or ``GeneratorExit`` makes that check ``error`` (the reason names the call); passing its time limit
(``checks.NAME.timeout_s``, default :data:`DEFAULT_TIMEOUT_S` x the profile's factor) makes it ``error``
"timed out after N s"; Ctrl-C stops the run with :class:`RunInterrupted`, which carries the report of the checks
that finished. A plugin that failed to load is listed as a crashed check.
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sanitycheck.engine.check import Check, CheckSettings
from sanitycheck.engine.config import PROFILES, Config, load_config
from sanitycheck.engine.errors import ConfigError, RunInterrupted, SkipCheck, UsageError
from sanitycheck.engine.faults import (call_isolated, clean_argv, crash_reason, each_warning_once, exit_reason,
                                      guard_process_exit, memory_limit_bytes)
from sanitycheck.engine.host import ENGINE_CODES, PluginHost, load_host
from sanitycheck.engine.models import CheckResult, Finding, Report, SplitSummary

#: Called with (check name, event) for progress display. Events: "queued" (once per selected check, before the
#: pipeline is opened), "start", then the finished CheckResult; and, named by their description, the
#: :class:`~sanitycheck.engine.progress.ScanEvent` of every long scan (data pass, k-NN search) during the run.
Progress = Callable[[str, Any], None]

#: A check's time limit at the default profile, in seconds; scaled by the profile's factor (fast 150 s, default
#: 600 s, thorough 2400 s) unless ``checks.NAME.timeout_s`` sets it. The slowest built-in check on a 1M-sample
#: split (leakage) takes about 120 s on a shared 2-core machine, so the default only stops a check that hangs.
DEFAULT_TIMEOUT_S = 600.0


def run(
    config: str | Path | dict[str, Any] | Config,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
    host: PluginHost | None = None,
    progress: Progress | None = None,
    checkpoint: Callable[[Report], None] | None = None,
    **overrides: Any,
) -> Report:
    """Run the selected checks on the pipeline a config describes and return the :class:`Report`.

    Raises :class:`~sanitycheck.engine.errors.UsageError` for bad input (the CLI's exit code 2). A check that
    crashes, exits or times out does not raise: it is a :class:`CheckResult` with status ``error``. Ctrl-C raises
    :class:`~sanitycheck.engine.errors.RunInterrupted` (a ``KeyboardInterrupt``) carrying the partial report.
    ``checkpoint``, when given, is called with the report so far (marked ``interrupted``) once the pipeline is
    open and after each check, so that a process killed from outside still leaves the finished checks behind.
    """
    started = time.perf_counter()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg = load_config(config, **overrides)
    host = host or load_host()
    results: list[CheckResult] = []
    findings = [_plugin_error(name, error) for name, error in host.load_errors]
    crashed_hook = _guarded_hook("sanitycheck_configure", lambda: host.hook.sanitycheck_configure.call_historic(
        kwargs={"config": cfg}))
    selected = select_checks(host, cfg, only, skip)
    settings = {name: check_settings(host.checks[name], cfg) for name in selected}
    skipped = set(skip or [])
    # Listed after the checks that ran: a plugin that failed to load (or a hook that failed) is a crashed check.
    broken = [CheckResult(name=name, status="error", duration_s=0.0, reason=f"plugin failed to load: {error}")
              for name, error in host.load_errors if name not in skipped]
    broken += [crashed_hook] if crashed_hook else []

    if progress:
        for name in selected:
            progress(name, "queued")
    from sanitycheck.engine.progress import listening
    from sanitycheck.engine.memory import trim
    from sanitycheck.engine.threads import policy, refresh

    ctx = None
    done: set[str] = set()
    current: tuple[str, float] | None = None

    def partial(interrupted: bool) -> Report:
        linked = link_causes(findings, host.code_docs())  # causes before the consequences they explain
        report = Report.assemble(cfg.source, linked, results + broken, time.perf_counter() - started)
        report.interrupted = interrupted
        report.splits = split_summaries(ctx) if ctx is not None else {}
        return report

    try:
        # Long scans report to the same callback; one thread policy for the whole run (engine/threads.py: no check
        # sets threads of its own); os._exit is caught; the user's code sees no command-line arguments
        # (ours are not for it): a factory that calls parse_args() gets its defaults; each of its warnings is shown
        # once.
        with listening(progress), guard_process_exit(), clean_argv(str(cfg.source or "pipeline")), policy(), \
                each_warning_once():
            running = [host.checks[name] for name in selected if settings[name].enabled]
            ctx = _open_pipeline(host, cfg, running)  # the pipeline layer; torch is imported here
            if checkpoint:
                checkpoint(partial(True))
            for name in selected:
                check = host.checks[name]
                if not settings[name].enabled:
                    results.append(CheckResult(name=name, status="skipped", duration_s=0.0,
                                               reason="enabled: false in config"))
                    done.add(name)
                    continue
                if progress:
                    progress(name, "start")
                refresh()  # the cores other work left free, re-measured before each check
                current = (name, time.perf_counter())
                result, found = _run_one(host, check, ctx, settings[name], check_timeout(cfg, settings[name]))
                current = None
                trim()  # what the check freed goes back to the OS: the next check's peak does not stack on it
                results.append(result)
                findings.extend(found)
                done.add(name)
                if progress:
                    progress(name, result)
                if checkpoint:
                    checkpoint(partial(True))
    except KeyboardInterrupt:
        for name in selected:
            if name in done:
                continue
            if current is not None and current[0] == name:
                reason = f"interrupted after {time.perf_counter() - current[1]:.1f} s (the run was stopped)"
            else:
                reason = "not run: the run was interrupted"
            results.append(CheckResult(name=name, status="skipped", duration_s=0.0, reason=reason))
        report = partial(True)
        _guarded_hook("sanitycheck_report", lambda: host.hook.sanitycheck_report(report=report))
        raise RunInterrupted(report) from None
    report = partial(False)
    crashed_hook = _guarded_hook("sanitycheck_report", lambda: host.hook.sanitycheck_report(report=report))
    if crashed_hook:
        report.checks.append(crashed_hook)
    return report


def check_timeout(cfg: Config, settings: CheckSettings) -> float:
    """A check's time limit: ``checks.NAME.timeout_s``, else :data:`DEFAULT_TIMEOUT_S` x the profile's factor."""
    return settings.timeout_s if settings.timeout_s is not None else DEFAULT_TIMEOUT_S * PROFILES[cfg.profile]


def _open_pipeline(host: PluginHost, cfg: Config, checks: list[Check]) -> Any:
    """The ``sanitycheck_open_pipeline`` hook; an exit called by the user's code while it runs is a usage error.

    It runs in a worker thread, like every check, so that the run's torch work never starts an OpenMP thread team
    on the calling thread. GNU OpenMP (torch's CPU builds) keeps each thread's team alive as long as the thread:
    with the caller's team alive beside a check's, it counts more threads than cores and stops spin-waiting between
    parallel regions, and a check's 2-thread training step ran at the speed of one thread (measured: the
    char-level GPT's step of 16 sequences, 17.6 ms on the thread that made the first team, 29 ms on a later
    thread; the whole GPT suite 16.6 s -> 13.7 s). A team a check starts ends with its thread."""
    outcome = call_isolated(lambda: host.hook.sanitycheck_open_pipeline(config=cfg, checks=checks), None, name="open")
    if isinstance(outcome.error, (SystemExit, GeneratorExit)):
        raise UsageError(f"the pipeline {exit_reason(outcome.error)} while sanitycheck opened it (importing, reading "
                         "the data, building the model or the preflight step); code that a pipeline's objects run "
                         "must not exit the process") from outcome.error
    if outcome.error is not None:
        raise outcome.error
    if outcome.memory:
        raise UsageError(f"opening the pipeline (reading the data, building the model) used "
                         f"{outcome.memory / 2**30:.1f} GiB of memory, over the limit of "
                         f"{(memory_limit_bytes() or 0) / 2**30:.1f} GiB (90% of the memory available to the process)")
    return outcome.value


def _guarded_hook(name: str, call: Callable[[], Any]) -> CheckResult | None:
    """Call a plugin hook that is not a check; what it raises (or an exit) becomes a crashed entry named after it."""
    start = time.perf_counter()
    try:
        call()
    except KeyboardInterrupt:
        raise
    except (Exception, SystemExit, GeneratorExit) as exc:
        reason = crash_reason(exc) if isinstance(exc, Exception) else exit_reason(exc)
        return CheckResult(name=f"hook {name}", status="error", duration_s=round(time.perf_counter() - start, 3),
                           reason=f"a plugin's {name} hook failed: {reason}")
    return None


def _run_one(host: PluginHost, check: Check, ctx: Any, settings: CheckSettings,
             timeout: float | None = None) -> tuple[CheckResult, list[Finding]]:
    """Run one check in its own thread, timed and limited to ``timeout`` seconds.

    A crash, ``sys.exit``/``os._exit``/``GeneratorExit`` or the time limit becomes status ``error`` with the reason;
    ``KeyboardInterrupt`` (Ctrl-C, here or raised in the check) propagates to stop the run.
    """

    def call() -> list[Finding]:
        return list(host.hook.sanitycheck_run_check(check=check, context=ctx, settings=settings) or [])

    cwd = os.getcwd()
    outcome = call_isolated(call, timeout, name=check.name)
    if os.getcwd() != cwd:  # a check (or the user's code) that changed folder: relative paths stay the user's
        os.chdir(cwd)
    status, reason, found = "passed", None, []
    if outcome.timed_out or outcome.memory:
        status = "error"
        reason = f"timed out after {timeout:g} s" if outcome.timed_out else (
            f"stopped: the process used {outcome.memory / 2**30:.1f} GiB of memory, over the limit of "
            f"{(memory_limit_bytes() or 0) / 2**30:.1f} GiB (90% of the memory available to it)")
        if outcome.abandoned:
            reason += " (stuck in a call that could not be interrupted, e.g. C code; left running in the background)"
    elif isinstance(outcome.error, KeyboardInterrupt):
        raise outcome.error
    elif isinstance(outcome.error, SkipCheck):
        status, reason = "skipped", str(outcome.error)
    elif isinstance(outcome.error, Exception):  # crash isolation: the other checks still run
        status, reason = "error", crash_reason(outcome.error)
    elif outcome.error is not None:  # SystemExit, os._exit, GeneratorExit ...: never the end of the run
        status, reason = "error", exit_reason(outcome.error)
    else:
        found = [f for f in outcome.value if f.code not in settings.ignore]  # checks: {NAME: {ignore: [CODE]}}
        if any(f.severity in ("error", "warning") for f in found):
            status = "failed"
    return CheckResult(name=check.name, status=status, duration_s=round(outcome.seconds, 3), reason=reason), found


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

    def causes_of(code: str) -> list[str]:
        doc = docs.get(code, (None, None))[1]
        return [c for c in (doc.explained_by if doc is not None else ()) if c in present and c != code]

    depth: dict[str, int] = {}

    def depth_of(code: str, seen: frozenset = frozenset()) -> int:
        """0 for a finding nothing found explains, else one more than its deepest cause (a cause's own causes
        come first: overfit-batch's SC301, explained by init-loss's SC901, before label-shuffle's SC201)."""
        if code not in depth:
            found = [depth_of(c, seen | {code}) for c in causes_of(code) if c not in seen]
            depth[code] = 1 + max(found) if found else 0
        return depth[code]

    ranked = []
    for f in findings:
        causes = causes_of(f.code)
        if causes:
            named = "; ".join(f"{c} ({present[c].check}: {present[c].title})" for c in causes)
            f = f.model_copy(update={
                "message": f"{f.message} This is likely a consequence of {named}, found in this run: fix that "
                           "first.",
                "evidence": {**f.evidence, "explained_by": causes},
            })
        ranked.append((depth_of(f.code), f))
    return [f for _, f in sorted(ranked, key=lambda pair: pair[0])]


def select_checks(host: PluginHost, cfg: Config, only: Iterable[str] | None, skip: Iterable[str] | None) -> list[str]:
    """The names of the checks to run, in registration order, after ``--only`` and ``--skip``."""
    known = list(host.checks)
    only, skip = list(only or []), list(skip or [])
    failed_plugins = {name for name, _error in host.load_errors}  # --skip NAME lets a run go on without it
    for flag, names in (("--only", only), ("--skip", skip), ("checks", list(cfg.checks))):
        for name in names:
            if name not in known and name not in failed_plugins:
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


__all__ = ["run", "select_checks", "check_settings", "check_timeout", "link_causes", "UsageError", "RunInterrupted"]
