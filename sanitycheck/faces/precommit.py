"""The pre-commit face: run the ``fast`` profile only when the config or a file it names changed.

pre-commit passes the staged files that match the hook's ``files`` pattern; :func:`watched` lists the config
itself and the local source files its ``module:attr`` references point to (a module, or every file of a local
package), so editing an unrelated script does not cost a probe run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sanitycheck.engine.config import Config


def references(cfg: Config) -> list[str]:
    """Every ``module:attr`` string of the config (objects given from Python name no file)."""
    refs = [cfg.model, cfg.loss, cfg.train_step, cfg.optimizer.target, cfg.data.train, cfg.data.val, cfg.data.augment]
    return [r for r in refs if isinstance(r, str)]


def watched(cfg: Config, config_path: Path) -> list[Path]:
    """The config file and the local files its references import: ``pkg/mod.py``, or a local package folder."""
    base = (cfg.base_dir or config_path.parent).resolve()
    paths = [config_path.resolve()]
    for ref in references(cfg):
        module = ref.partition(":")[0]
        parts = module.split(".")
        candidates = [base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")]
        found = [p for p in candidates if p.is_file()]
        if found:
            paths.append(found[0])
        if len(parts) > 1 or found and found[0].name == "__init__.py":
            package = base / parts[0]
            if package.is_dir():
                paths.append(package)  # a local package: any file in it may be imported by the pipeline
    return list(dict.fromkeys(paths))


def touched(changed: Iterable[str | Path], watch: list[Path]) -> list[Path]:
    """The changed files that are watched (a file, or inside a watched package folder)."""
    hits = []
    for name in changed:
        path = Path(name).resolve()
        if any(path == w or (w.is_dir() and w in path.parents) for w in watch):
            hits.append(path)
    return hits
