"""The pytest plugin (entry point ``pytest11``): the ``sanitycheck`` fixture and one test item per check.

Installing sanitycheck registers this module in every pytest run, so it imports only pytest and the
standard library at start-up; torch and the engine load when the fixture or an item first runs.

- Fixture::

      def test_pipeline(sanitycheck):
          sanitycheck.run("sanitycheck.yaml").raise_for_findings()

  ``run(config=None, **overrides)`` returns the :class:`~sanitycheck.engine.models.Report`; ``config`` defaults to
  ``--sanitycheck-config``, ``profile`` to ``--sanitycheck-profile``; a relative path is looked up from the
  current directory, then from the test file's folder.
- ``pytest --sanitycheck-config sanitycheck.yaml`` also adds one item per check (``sanitycheck.yaml::leakage``),
  so CI lists them one by one; ``-k`` selects among them and only the selected checks run (once, together:
  the pipeline is opened and read a single time). An item fails on findings at or above the config's
  ``fail_on``, errors when the check crashed and is skipped when the check skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

PROFILES = ("fast", "default", "thorough")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sanitycheck", "sanitycheck: probe the PyTorch training pipeline")
    group.addoption("--sanitycheck-config", metavar="PATH", default=None,
                    help="sanitycheck.yaml for the `sanitycheck` fixture; also adds one test item per check.")
    group.addoption("--sanitycheck-profile", choices=PROFILES, default=None,
                    help="Probe budget for the fixture and the items (default: the config's profile).")


class SanitycheckFixture:
    """What the ``sanitycheck`` fixture returns: ``run(config, **overrides) -> Report``."""

    def __init__(self, config: str | None, profile: str | None, here: Path | None):
        self.config = config
        self.profile = profile
        self.here = here

    def __repr__(self) -> str:
        return f"<sanitycheck fixture config={self.config!r} profile={self.profile!r}>"

    def run(self, config: Any = None, **overrides: Any) -> Any:
        """Run sanitycheck (see :func:`sanitycheck.run`); call ``.raise_for_findings()`` on the result to assert."""
        import sanitycheck

        config = config if config is not None else self.config
        if config is None and not {"model", "train", "loss"} <= set(overrides):
            raise pytest.UsageError("sanitycheck fixture: pass a config to run(), or --sanitycheck-config")
        if isinstance(config, (str, Path)):
            config = _locate(Path(config), self.here)
        if self.profile is not None:
            overrides.setdefault("profile", self.profile)
        return sanitycheck.run(config, **overrides)


@pytest.fixture
def sanitycheck(request: pytest.FixtureRequest) -> SanitycheckFixture:
    """Run sanitycheck on a pipeline: ``sanitycheck.run("sanitycheck.yaml").raise_for_findings()``."""
    opts = request.config.option
    here = Path(str(request.path)).parent if getattr(request, "path", None) else None
    return SanitycheckFixture(opts.sanitycheck_config, opts.sanitycheck_profile, here)


def _locate(path: Path, here: Path | None) -> Path:
    if path.is_absolute() or path.exists() or here is None:
        return path
    return here / path if (here / path).exists() else path


# ------------------------------------------------------------------------------------- one item per check


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so users can select checks by name
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    path = config.option.sanitycheck_config
    if not path:
        return
    items.extend(ConfigFile.from_parent(session, path=Path(path).resolve()).collect())


class ConfigFile(pytest.File):
    """A sanitycheck.yaml as a collector: one item per installed check (cheap: no torch, no data)."""

    def collect(self):
        from sanitycheck.engine.host import load_host

        for name in load_host().checks:
            yield CheckItem.from_parent(self, name=name)


class CheckItem(pytest.Item):
    """One check of the config: passes, fails with its findings, errors when it crashed, or is skipped."""

    def runtest(self) -> None:
        report, fail_on = _shared_report(self)
        result = next((c for c in report.checks if c.name == self.name), None)
        if result is None:
            pytest.skip(f"{self.name} did not run")
        if result.status == "skipped":
            pytest.skip(f"{self.name}: {result.reason}")
        if result.status == "error":
            raise CheckCrashed(f"{self.name} crashed: {result.reason}")
        from sanitycheck.engine.models import FindingsError, at_or_above

        found = [f for f in report.findings if f.check == self.name]
        failing = [f for f in found if at_or_above(f.severity, fail_on)]
        below = [f for f in found if f not in failing]
        if below:
            self.add_report_section("call", "sanitycheck", "\n".join(f"[{f.severity}] {f.code} {f.title}: {f.message}"
                                                                     for f in below))
        if failing:
            raise FindingsError(report.model_copy(update={"checks": [result]}), failing)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from sanitycheck.engine.errors import UsageError
        from sanitycheck.engine.models import FindingsError

        if isinstance(excinfo.value, (FindingsError, CheckCrashed, UsageError)):
            return str(excinfo.value)  # the findings and their fixes; a traceback into the engine helps nobody
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"sanitycheck: {self.name}"


class CheckCrashed(Exception):
    """A check's probe raised; its reason is in the report."""


def _shared_report(item: CheckItem) -> tuple[Any, str]:
    """Run every selected check once per session (the pipeline is read once) and cache the report."""
    session = item.session
    cached = getattr(session, "_sanitycheck_report", None)
    if cached is None:
        from sanitycheck.faces.api import build_config
        from sanitycheck.engine.runner import run

        selected = [i.name for i in session.items if isinstance(i, CheckItem)]
        profile = item.config.option.sanitycheck_profile
        try:
            cfg = build_config(item.path, **({"profile": profile} if profile else {}))
            cached = (run(cfg, only=selected), cfg.fail_on)
        except Exception as exc:  # a bad config fails every item with the same one-line message, run once
            cached = exc
        session._sanitycheck_report = cached  # type: ignore[attr-defined]
    if isinstance(cached, Exception):
        raise cached
    return cached
