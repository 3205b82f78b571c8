"""The Python API behind :func:`sanitycheck.run`: a config file, a dict, a Config, or plain Python objects.

Imported only when ``sanitycheck.run`` is first called, so ``import sanitycheck`` stays free of torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sanitycheck.engine.config import Config, load_config, validate_config
from sanitycheck.engine.models import Report

#: Keyword arguments that go under ``data:`` in the config; the rest of PIPELINE_KEYS are top-level keys.
DATA_KEYS = ("train", "val", "augment")
PIPELINE_KEYS = (*DATA_KEYS, "model", "loss", "optimizer", "train_step")


def run(
    config: str | Path | dict[str, Any] | Config | None = None,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
    baseline: str | Path | None = None,
    export: str | Path | None = None,
    progress: Any = None,
    host: Any = None,
    **overrides: Any,
) -> Report:
    """Run sanitycheck and return the :class:`~sanitycheck.engine.models.Report`.

    ``config`` is a path to a ``sanitycheck.yaml``, a dict, a :class:`~sanitycheck.engine.config.Config`, or
    ``None`` when the pipeline is given as objects::

        report = sanitycheck.run(model=make_model, train=train_ds, val=val_ds, loss=nn.CrossEntropyLoss())
        report.raise_for_findings()

    ``train``/``val``/``augment``/``model``/``loss``/``optimizer``/``train_step`` may be the objects
    themselves (or ``"module:attr"`` strings) and replace what the config names; every other keyword sets
    a top-level config key (``profile="fast"``, ``device="cuda"``, ``checks={...}``, ``fail_on=...``).
    ``only``/``skip`` select checks by name; ``baseline`` is a file written by ``--write-baseline``
    (known findings are dropped from the report, see :mod:`sanitycheck.faces.baseline`). ``export`` is a folder:
    every flagged sample of every finding is written there as CSV (:mod:`sanitycheck.faces.export`; the report
    itself lists at most 1000 per split). Either way each finding keeps its full tables in ``Finding.export``.
    """
    from sanitycheck.engine.runner import run as run_checks

    cfg = build_config(config, **overrides)
    if export is not None:
        from sanitycheck.faces.export import prepare_export_dir

        prepare_export_dir(export)  # an unwritable folder fails before the probes run
    report = run_checks(cfg, only=only, skip=skip, host=host, progress=progress)
    if baseline is not None:
        from sanitycheck.faces.baseline import apply_baseline, load_baseline

        report, _accepted = apply_baseline(report, load_baseline(baseline))
    if export is not None:
        from sanitycheck.faces.export import write_export

        write_export(report, export)
    return report


def build_config(config: str | Path | dict[str, Any] | Config | None = None, **overrides: Any) -> Config:
    """The validated :class:`Config` for a source plus keyword overrides (objects for data, model, loss ...)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    # data=... (input_key, target_key ...) beside train=/val= objects: one data section, the objects added to it
    data = {**dict(overrides.pop("data", None) or {}), **{k: overrides.pop(k) for k in DATA_KEYS if k in overrides}}
    optimizer = overrides.get("optimizer")
    if optimizer is not None and not isinstance(optimizer, (dict, BaseModel)):
        overrides["optimizer"] = {"target": optimizer}  # an optimizer class, e.g. torch.optim.SGD
    if config is None:
        missing = [k for k in ("train", "model", "loss") if k not in data and k not in overrides]
        if missing:
            from sanitycheck.engine.errors import ConfigError

            raise ConfigError(f"sanitycheck.run: without a config, pass {', '.join(k + '=' for k in missing)} (e.g. "
                              "sanitycheck.run(model=make_model, train=train_ds, val=val_ds, loss=nn.CrossEntropyLoss()))")
        return validate_config({**overrides, "data": data}, Path.cwd(), "<python>")
    if not data:
        return load_config(config, **overrides)
    # Merge the data objects into the config's own `data:` section instead of replacing it.
    base = load_config(config)
    raw = base.model_dump(exclude={"base_dir", "source"}, exclude_none=True)
    raw["data"] = {**raw.get("data", {}), **data}
    return validate_config({**raw, **overrides}, base.base_dir, base.source)


__all__ = ["run", "build_config"]
