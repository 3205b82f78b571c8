"""Every hook a sanitycheck plugin can implement. This is the one file a plugin author needs to read.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`, registered under the
entry-point group ``sanitycheck`` in its ``pyproject.toml``::

    [project.entry-points.sanitycheck]
    my-check = "my_package.my_check"

The built-in checks in ``plugins/`` are registered exactly this way. A minimal plugin::

    from sanitycheck import hookimpl
    from sanitycheck import Check, CodeDoc

    class NoTinyDatasets(Check):
        name = "tiny-dataset"
        summary = "a training split too small to learn from"
        cost = "instant: reads the cached data pass"
        codes = (CodeDoc(code="XX001", title="Training split is tiny", severity="warning",
                         what="...", why="...", example="...", fix="Collect more data."),)

        def run(self, ctx, settings):
            if len(ctx.train) < 100:
                yield self.finding("XX001", message=f"only {len(ctx.train)} training samples")

    @hookimpl
    def sanitycheck_checks():
        return [NoTinyDatasets()]

Hooks are called with keyword arguments; an implementation may accept any subset of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from sanitycheck.engine.check import Check
    from sanitycheck.engine.config import Config
    from sanitycheck.pipeline.context import PipelineContext
    from sanitycheck.engine.models import Finding, Report

PROJECT = "sanitycheck"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def sanitycheck_open_pipeline(config: Config, checks: list[Check]) -> PipelineContext:
    """Materialize the user's pipeline once for a run and return the context every check receives.

    ``checks``: the checks the run will run, so that opening does only the work they need (an implementation may
    leave the argument out of its signature).

    The built-in implementation (:mod:`sanitycheck.pipeline.plugin`, registered last) imports the user's code,
    reads each split once and runs the preflight; it raises :class:`~sanitycheck.engine.errors.UsageError` for
    bad input. A plugin may return its own context (e.g. a wrapper adding data); the first non-None answer wins.
    This hook is how the engine reaches the pipeline layer without importing it.
    """


@hookspec
def sanitycheck_checks() -> list[Check]:
    """Return the checks this plugin provides.

    Each is an instance of :class:`sanitycheck.engine.check.Check` with a unique ``name``, its stable ``codes``
    (each with the text `sanitycheck explain` shows), a one-line ``summary`` of what it detects and its
    ``cost``. Called once when the plugin host starts; every plugin's lists are concatenated.
    """


@hookspec(historic=True)
def sanitycheck_configure(config: Config) -> None:
    """Called once with the validated config before any check runs.

    Historic: a plugin registered later still receives the call. Use it to read settings that are not
    tied to one check; per-check settings arrive in :meth:`Check.run` already validated.
    """


@hookspec(firstresult=True)
def sanitycheck_run_check(check: Check, context: PipelineContext, settings: Any) -> list[Finding] | None:
    """Run one check and return its findings; the first non-``None`` answer wins.

    The engine's own implementation (registered last) calls ``check.run(context, settings)``. A plugin
    may implement this hook to replace how a given check runs (return ``None`` to leave it alone) or use
    ``wrapper=True`` to observe every run. The runner times each call and turns an exception into a check
    with status ``error``; the other checks still run.
    """


@hookspec
def sanitycheck_report(report: Report) -> None:
    """Called with the finished :class:`~sanitycheck.engine.models.Report` before it is returned or rendered.

    For observers (telemetry, baselines, custom exporters). The report may be inspected; mutate it only
    if you own the behaviour you change.
    """


__all__ = ["hookimpl", "hookspec", "PROJECT"]
