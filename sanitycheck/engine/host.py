"""The plugin host: a pluggy PluginManager that loads every ``sanitycheck`` entry point one by one.

A plugin that fails to import, or that returns something that is not a check, is recorded in
:attr:`PluginHost.load_errors`: the run lists it as a crashed check (status ``error``, exit 3) with its entry point
and the error, plus a finding SC001; the other plugins still load and run. A plugin that calls ``sys.exit`` while it
is imported is a usage error (exit 2) naming its entry point and module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from sanitycheck.engine import hookspecs
from sanitycheck.engine.check import Check, CodeDoc
from sanitycheck.engine.errors import UsageError
from sanitycheck.engine.faults import clean_argv, crash_reason, exit_reason, hold_stderr
from sanitycheck.engine.hookspecs import hookimpl


#: Codes the engine itself emits (not tied to a check).
ENGINE_CODES: tuple[CodeDoc, ...] = (
    CodeDoc(
        code="SC001",
        title="A plugin failed to load",
        severity="warning",
        what="Reported when a module registered under the `sanitycheck` entry-point group raises on import, "
        "misspells a hook, or returns something that is not a Check. The plugin is also listed among the checks "
        "with status `error` (exit code 3); the other plugins still load and run.",
        why="The checks that plugin provides did not run, so their bugs would go unnoticed.",
        example="A third-party plugin that imports a library missing from the environment.",
        fix="Reinstall or fix the plugin, or uninstall it.",
    ),
)


#: Modules of sanitycheck itself that are registered as plugins on every host, like pytest's ``default_plugins``:
#: named, not imported, so the engine never imports a layer above it (they are imported when the host loads).
DEFAULT_PLUGINS: tuple[str, ...] = ("sanitycheck.pipeline.plugin",)


class _Engine:
    """The engine's own hook implementations, registered last so plugins can override them."""

    @hookimpl(trylast=True)
    def sanitycheck_run_check(self, check: Check, context: Any, settings: Any) -> list:
        return list(check.run(context, settings) or [])


@dataclass
class PluginHost:
    """The loaded plugins and the checks they provide, by name."""

    pm: pluggy.PluginManager
    checks: dict[str, Check] = field(default_factory=dict)
    load_errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def code_docs(self) -> dict[str, tuple[Check | None, CodeDoc]]:
        """Every code of every loaded check, and the engine's own (with ``None`` for the check)."""
        docs: dict[str, tuple[Check | None, CodeDoc]] = {doc.code: (None, doc) for doc in ENGINE_CODES}
        docs.update({doc.code: (check, doc) for check in self.checks.values() for doc in check.codes})
        return docs


def load_host(extra_plugins: tuple[Any, ...] = (), entry_point_group: str = hookspecs.PROJECT) -> PluginHost:
    """Create the PluginManager, load every entry point of ``entry_point_group`` and collect the checks."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(_Engine(), name="sanitycheck.engine")
    for module in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module), name=module)
    host = PluginHost(pm=pm)
    for ep in sorted(entry_points(group=entry_point_group), key=lambda e: e.name):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            with clean_argv(ep.value.partition(":")[0]), hold_stderr():  # argparse at import: not our command line
                plugin = ep.load()
            _register(pm, plugin, ep.name)
        except SystemExit as exc:  # an exit at import would end the run silently, with the exit code it chose
            raise UsageError(f"plugin '{ep.name}' (entry point '{ep.name} = {ep.value}') {exit_reason(exc)} while "
                             f"it was imported: fix or uninstall it (pip uninstall the package that provides it)") from exc
        except Exception as exc:  # a broken plugin is reported (a crashed check), not fatal
            host.load_errors.append((ep.name, f"{type(exc).__name__}: {exc} (entry point '{ep.name} = {ep.value}')"))
    for plugin in extra_plugins:
        _register(pm, plugin, None)
    for name, plugin_checks in _collect_checks(pm, host):
        for check in plugin_checks or []:
            if not isinstance(check, Check):
                host.load_errors.append((name, f"sanitycheck_checks returned {check!r}, which is not a Check instance"))
            elif check.name in host.checks:
                host.load_errors.append((check.name, "a check with this name is already registered"))
            else:
                host.checks[check.name] = check
    host.checks = dict(sorted(host.checks.items()))  # a stable order, whatever order plugins loaded in
    return host


def _collect_checks(pm: pluggy.PluginManager, host: PluginHost) -> list[tuple[str, Any]]:
    """Each plugin's ``sanitycheck_checks()`` answer, called one plugin at a time: a plugin whose hook raises is a
    load error, and the others' checks are still collected."""
    answers = []
    for impl in reversed(pm.hook.sanitycheck_checks.get_hookimpls()):  # registration order
        if impl.hookwrapper or getattr(impl, "wrapper", False):
            continue
        try:
            answer = impl.function()
            if answer is not None and not isinstance(answer, (list, tuple)):
                raise TypeError(f"it returned a {type(answer).__name__}, not a list of checks")
            answers.append((impl.plugin_name, answer))
        except SystemExit as exc:
            raise UsageError(f"plugin '{impl.plugin_name}': its sanitycheck_checks hook {exit_reason(exc)}") from exc
        except Exception as exc:
            host.load_errors.append((impl.plugin_name, f"sanitycheck_checks raised {crash_reason(exc)}"))
    return answers


def _register(pm: pluggy.PluginManager, plugin: Any, name: str | None) -> None:
    """Register one plugin; a hook it misspells fails loudly (and only this plugin is dropped)."""
    registered = pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        pm.unregister(name=registered)
        raise
