"""What user and plugin code can do to a run, and how the engine keeps each outcome on purpose (docs/faults.md).

- **Time limits.** Each check runs in a worker thread of its own (:func:`call_isolated`); the runner waits for it
  at most the check's time limit. Past the limit the engine raises :class:`CheckTimeout` inside the worker
  (``PyThreadState_SetAsyncExc``): Python code, including a loop in the user's code, stops at its next bytecode.
  A thread stuck in a long C call (``time.sleep``, a huge matmul, a read that never returns) cannot be stopped
  that way: after :data:`STOP_GRACE_S` it is *abandoned* (a daemon thread, listed in :data:`ABANDONED`) and the
  run goes on; the command line ends its process with ``os._exit`` once the report is written.
  Why not a subprocess per check: checks share one context (the data pass, cached embeddings and reference
  models, the user's open DataLoaders), torch does not survive ``fork`` after its thread pools started, and
  spawning would re-import the user's pipeline per check.
- **Memory.** While a check runs, the process's resident memory is sampled every :data:`POLL_S`; past
  :func:`memory_limit_bytes` (90% of the memory available to the process: RAM or its cgroup limit) the check is
  stopped the same way (:class:`CheckMemoryLimit`), before the kernel's OOM killer ends the whole run.
- **Exits.** ``sys.exit`` and ``os._exit`` in a check end that check (status ``error``, the reason names the
  call); ``os._exit`` is caught by :func:`guard_process_exit` while a run is in progress (only in this process:
  forked DataLoader workers still exit for real). ``KeyboardInterrupt`` ends the run (exit 130).
- **Warnings.** The user's code runs once per check that trains or evaluates it, so a warning it raises (dropout2d
  on a 2-D input) would be printed once per check: :func:`each_warning_once` shows each distinct one once per run
  (after the user's own filters: what they silence stays silent).
- :func:`where` and :func:`exit_reason` describe where such a call came from, for one-line messages.
"""

from __future__ import annotations

import contextvars
import ctypes
import os
import sys
import sysconfig
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: After a check passes its time limit, how long it gets to unwind from the :class:`CheckTimeout` raised in it
#: before its thread is abandoned (a thread stuck in a C call never sees the exception).
STOP_GRACE_S = 1.0

#: How often the waiting thread samples the process's memory while a check runs (seconds).
POLL_S = 0.25

#: Worker threads abandoned in a C call that would not return (the command line exits with ``os._exit`` when one
#: is still alive after the report is written, instead of waiting for it forever).
ABANDONED: list[threading.Thread] = []


class CheckTimeout(BaseException):
    """Raised inside a check's thread when it passes its time limit.

    A ``BaseException``, so a check's (or the user's) ``except Exception`` does not swallow it.
    """


class CheckMemoryLimit(BaseException):
    """Raised inside a check's thread when the process's memory passes :func:`memory_limit_bytes`."""


class ProcessExit(SystemExit):
    """``os._exit(code)`` called in the run's own process while a run is in progress (see :func:`guard_process_exit`)."""


@dataclass
class Outcome:
    """How an isolated call ended: its ``value``, or the ``error`` it raised; ``timed_out`` when it passed its
    limit, ``memory`` (bytes) when it was stopped for using too much memory, ``abandoned`` when it was still stuck
    (in a C call) after :data:`STOP_GRACE_S`."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    memory: int | None = None
    abandoned: bool = False
    seconds: float = 0.0


class _Worker(threading.Thread):
    def __init__(self, fn: Callable[[], Any], name: str):
        super().__init__(name=name, daemon=True)
        self.fn = fn
        self.context = contextvars.copy_context()  # the progress listener and other context of the caller
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            try:
                self.value = self.context.run(self.fn)
            except BaseException as exc:  # noqa: BLE001 - every way out is an outcome, on purpose
                self.error = exc
            finally:
                self.finished.set()
        except BaseException:  # noqa: BLE001 - a stop request that arrived while the outcome was being recorded
            self.finished.set()


def call_isolated(fn: Callable[[], Any], timeout: float | None, name: str = "check") -> Outcome:
    """Call ``fn()`` in a worker thread and wait at most ``timeout`` seconds (``None``: no limit).

    Returns the :class:`Outcome`; never raises what ``fn`` raised. A ``KeyboardInterrupt`` in the waiting (main)
    thread (Ctrl-C) is passed on to the worker and re-raised here once the worker stopped or was abandoned.
    """
    import time

    worker = _Worker(fn, name=f"sanitycheck:{name}")
    start = time.perf_counter()
    deadline = None if timeout is None else start + timeout
    limit, before = memory_limit_bytes(), resident_bytes() or 0
    worker.start()
    try:
        while True:
            wait = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.perf_counter()))
            if worker.finished.wait(wait):
                break
            used = resident_bytes()
            if limit and used and used > limit and used > before + 2**26:  # over the limit, and this check grew it
                _stop(worker, CheckMemoryLimit)
                return Outcome(memory=used, abandoned=not worker.finished.is_set(),
                               seconds=time.perf_counter() - start)
            if deadline is not None and time.perf_counter() >= deadline:
                _stop(worker, CheckTimeout)
                return Outcome(timed_out=True, abandoned=not worker.finished.is_set(),
                               seconds=time.perf_counter() - start)
    except KeyboardInterrupt:
        _stop(worker, KeyboardInterrupt)
        raise
    worker.join()
    return Outcome(value=worker.value, error=worker.error, seconds=time.perf_counter() - start)


def resident_bytes() -> int | None:
    """The process's resident memory (Linux ``/proc/self/statm``), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def memory_limit_bytes() -> int | None:
    """90% of the memory this process may use: the machine's RAM, or its cgroup's limit when lower (containers,
    CI runners). None where neither can be read (no limit is enforced then)."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (OSError, ValueError, AttributeError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
            if text.isdigit():
                limits.append(int(text))
        except OSError:
            continue
    return int(0.9 * min(limits)) if limits else None


def _stop(worker: _Worker, exc_type: type[BaseException]) -> None:
    """Raise ``exc_type`` in ``worker`` and give it :data:`STOP_GRACE_S` to unwind; abandon it if it does not."""
    if worker.ident is not None and not worker.finished.is_set():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(exc_type))
    if not worker.finished.wait(STOP_GRACE_S):
        ABANDONED.append(worker)


def stuck_threads() -> list[threading.Thread]:
    """Threads that would keep (or crash) the interpreter's shutdown: abandoned workers, and any thread the user's
    code left running (a non-daemon thread blocks the exit forever)."""
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and t.is_alive()
            and (t in ABANDONED or not t.daemon)]


@contextmanager
def guard_process_exit() -> Iterator[None]:
    """While a run is in progress, ``os._exit(code)`` in this process raises :class:`ProcessExit` instead of ending
    it without a report; a forked child (DataLoader workers, multiprocessing) still exits for real."""
    real, pid = os._exit, os.getpid()

    def guarded(code: int) -> None:
        if os.getpid() != pid:
            real(code)
        raise ProcessExit(code)

    os._exit = guarded
    try:
        yield
    finally:
        os._exit = real


@contextmanager
def each_warning_once() -> Iterator[None]:
    """Inside the block, a warning already shown (same text, category and place) is not shown again. Python's
    own per-place registry forgets what it showed whenever a filter changes (any ``catch_warnings`` in a library),
    so the dedup is done where warnings are shown, after the filters decided."""
    import warnings

    shown: set[tuple] = set()
    real = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        key = (str(message), category, filename, lineno)
        if key not in shown:
            shown.add(key)
            real(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = real


@contextmanager
def clean_argv(program: str) -> Iterator[None]:
    """``sys.argv = [program]`` inside the block: a module that parses the command line at import (argparse's
    ``parse_args()`` at module level) sees no arguments rather than *our* command line."""
    saved = sys.argv
    sys.argv = [program]
    try:
        yield
    finally:
        sys.argv = saved


class HeldStderr:
    """What was written to ``sys.stderr`` inside :func:`hold_stderr`."""

    text: str = ""

    def last_line(self) -> str:
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        return lines[-1] if lines else ""


@contextmanager
def hold_stderr() -> Iterator[HeldStderr]:
    """Hold back what the block writes to ``sys.stderr``: written out at the end, unless the block exits the process
    (``SystemExit``), so that argparse's usage text for *our* command line does not precede our one message; the
    held text (its last line is argparse's error) is then in the yielded object."""
    import io

    held, buffer, real = HeldStderr(), io.StringIO(), sys.stderr
    exited = False
    sys.stderr = buffer
    try:
        yield held
    except SystemExit:
        exited = True
        raise
    finally:
        sys.stderr = real
        held.text = buffer.getvalue()
        if not exited and held.text:  # not an exit: replay the warnings and prints
            real.write(held.text)


# ------------------------------------------------------------------------------------------------ messages

_STDLIB = tuple(str(Path(p).resolve()) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]})


def where(exc: BaseException, *, skip_stdlib: bool = True) -> str:
    """``file.py:LINE (in FUNCTION)`` of the frame that raised ``exc``: the deepest frame outside the standard
    library (argparse's own ``exit`` is not the interesting place), else the deepest frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown place"
    frames = [f for f in frames if f.filename != __file__] or frames  # not our own os._exit stand-in
    chosen = frames[-1]
    if skip_stdlib:
        for frame in reversed(frames):
            path = str(Path(frame.filename).resolve()) if frame.filename and not frame.filename.startswith("<") else ""
            if path and not (path.startswith(_STDLIB) and "site-packages" not in path):
                chosen = frame
                break
    return f"{Path(chosen.filename).name}:{chosen.lineno} (in {chosen.name})"


def called_argparse(exc: BaseException) -> bool:
    """True when ``exc`` (a SystemExit) came out of argparse: a module that parses the command line."""
    return any(Path(f.filename).name == "argparse.py" for f in traceback.extract_tb(exc.__traceback__))


def exit_reason(exc: BaseException) -> str:
    """``called sys.exit(0)`` / ``called os._exit(3)`` / ``raised GeneratorExit``, with the place it came from."""
    if isinstance(exc, ProcessExit):
        return f"called os._exit({exc.code!r}) at {where(exc)}"
    if isinstance(exc, SystemExit):
        how = ("exited in argparse (it parses the command line: there are no arguments to parse)"
               if called_argparse(exc) else f"called sys.exit({exc.code!r})")
        return f"{how} at {where(exc)}"
    return f"raised {type(exc).__name__}{': ' + str(exc) if str(exc) else ''} at {where(exc)}"


def crash_reason(exc: BaseException) -> str:
    """The reason of a crashed check: ``Type: message (at file.py:LINE)`` (the frame that raised)."""
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{at}"


__all__ = ["CheckTimeout", "CheckMemoryLimit", "ProcessExit", "memory_limit_bytes", "resident_bytes", "Outcome", "call_isolated", "guard_process_exit", "stuck_threads",
           "where", "exit_reason", "crash_reason", "called_argparse", "clean_argv", "hold_stderr", "STOP_GRACE_S", "ABANDONED"]

