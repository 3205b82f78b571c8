"""Every file the tool writes: checked before any probe runs, written atomically.

:func:`validate_output_path` is called for ``--output``, ``--write-baseline``, ``--export`` (``directory=True``) and
``render --output`` before the run starts, so a path that cannot be written is one usage error (exit 2) instead of
a traceback after minutes of probes. :func:`atomic_write_text` writes a temporary file next to the target and
renames it over the target, so a reader (or a run killed half-way) never sees a half-written report.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sanitycheck.engine.errors import UsageError


def validate_output_path(path: str | Path, *, directory: bool = False, option: str = "--output") -> Path:
    """Check that ``path`` can be written (a file, or with ``directory`` a folder) and return it as a Path.

    Raises :class:`UsageError` with one message naming ``option`` and the path when it is a folder given as a file
    (or a file given as a folder), lies under a regular file, or its folder cannot be written. Creates nothing:
    missing folders are made when the file is written.
    """
    path = Path(path)
    shown = f"{option}: cannot write {str(path)!r}"
    if path.exists():
        if directory and not path.is_dir():
            raise UsageError(f"{shown}: it is a file, not a folder")
        if not directory and path.is_dir():
            raise UsageError(f"{shown}: it is a folder; give a file name (e.g. {str(path / 'report.json')!r})")
    # The nearest existing ancestor must be a folder we can create files in.
    ancestor = path if directory and path.is_dir() else path.parent
    while not ancestor.exists():
        if ancestor == ancestor.parent:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise UsageError(f"{shown}: {str(ancestor)!r} is a file, not a folder")
    problem = _cannot_create_in(ancestor)
    if problem:
        raise UsageError(f"{shown}: the folder {str(ancestor)!r} is not writable ({problem})")
    if path.is_file() and not os.access(path, os.W_OK):
        raise UsageError(f"{shown}: the file exists and is read-only")
    return path


def _cannot_create_in(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (tried for real: permissions, read-only mounts, root), or None."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".sanitycheck-probe-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a rename: readers see
    the old file or the new one, never a partial one. Missing folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is as readable as any file the user writes
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (os.umask sets it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def discard_stale(path: Path) -> None:
    """Remove a previous report at ``path`` so that a run that fails or is killed never leaves it looking current."""
    try:
        if path.is_file() or path.is_symlink():
            path.unlink()
    except OSError:
        pass


__all__ = ["validate_output_path", "atomic_write_text", "discard_stale"]
