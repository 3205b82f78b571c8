"""The live progress display: fed by the runner's callback, on stderr, silent without a terminal or with --quiet."""

from __future__ import annotations

import io
import re

from rich.console import Console
from typer.testing import CliRunner

from pipelines import write_pipeline
from sanitycheck.faces.cli import app
from sanitycheck.faces.display import ProgressDisplay


def test_display_follows_a_real_run(tmp_path):
    from sanitycheck.engine.runner import run

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    config = write_pipeline(tmp_path / "p", nan=[])
    with ProgressDisplay(console) as display:
        run(config, only=["class-balance", "data-integrity"], progress=display)
        assert display.total == 2 and display.bar.tasks[0].completed == 2
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # without the terminal's control codes
    assert "passed class-balance" in text and "passed data-integrity" in text
    assert "opening the pipeline" in text and "2/2" in text and "ETA" in text


def test_cli_is_silent_without_a_terminal_and_with_quiet(tmp_path):
    config = write_pipeline(tmp_path / "p", nan=[])
    for extra in ([], ["--quiet"]):
        result = CliRunner().invoke(app, ["run", str(config), "--only", "class-balance", "--format", "json", *extra])
        assert result.exit_code == 0
        assert result.stderr == ""  # CliRunner's stderr is not a terminal: no progress, no stray output


# ------------------------------------------------------------------------------------------- long scans


class Recorder:
    """A scan listener that keeps every (description, done, total, finished) it is told."""

    def __init__(self):
        self.events = []

    def __call__(self, name, event):
        self.events.append((name, event.done, event.total, event.finished))

    def of(self, description):
        return [e[1:] for e in self.events if e[0] == description]


def assert_counts_up_to_total(steps, total):
    """Several updates, counts never going down, the last one finished at ``total``."""
    counts = [done for done, _, _ in steps]
    assert len(steps) >= 3 and steps[0] == (0, total, False), steps
    assert counts == sorted(counts) and steps[-1] == (total, total, True), steps
    assert all(t == total for _, t, _ in steps)


def test_data_pass_reports_its_progress(monkeypatch):
    import torch
    from torch.utils.data import TensorDataset

    from sanitycheck.engine import progress
    from sanitycheck.pipeline.data import materialize

    monkeypatch.setattr(progress, "UPDATE_EVERY", 0.0)  # every tick reaches the listener
    x, y = torch.rand(5000, 1, 16, 16), torch.randint(0, 10, (5000,))
    recorder = Recorder()
    with progress.listening(recorder):
        materialize(TensorDataset(x, y), "train", max_samples=None, memory_mb=64, input_key=None,
                    target_key=None).data_pass()
    steps = recorder.of("data pass: train")
    assert_counts_up_to_total(steps, 5000)
    assert len(steps) == 2 + 5  # start, one per chunk of 1024, end


def test_knn_reports_its_progress_brute_force_and_through_the_index(monkeypatch):
    import numpy as np

    from sanitycheck.probing import neighbors
    from sanitycheck.engine import progress

    monkeypatch.setattr(progress, "UPDATE_EVERY", 0.0)
    rng = np.random.default_rng(0)
    base, queries = rng.standard_normal((3000, 8)).astype(np.float32), rng.standard_normal((700, 8)).astype(np.float32)
    monkeypatch.setattr(neighbors, "BLOCK", 3000 * 100)  # brute force in blocks of 100 queries
    for exact in (True, False):
        recorder = Recorder()
        with progress.listening(recorder):
            neighbors.knn(queries, base, 5, exact=exact, label="probe search")
        assert_counts_up_to_total(recorder.of("probe search"), 700)
        if not exact:  # the index is built first, with its own line counting base rows
            assert_counts_up_to_total(recorder.of("probe search: index"), 3000)


def test_scans_are_silent_and_free_without_a_listener(capfd):
    import numpy as np

    from sanitycheck.probing.neighbors import knn
    from sanitycheck.engine.progress import _noop, scan_progress

    with scan_progress("nobody listens", 10) as tick:
        assert tick is _noop
    rng = np.random.default_rng(0)
    knn(rng.standard_normal((300, 4)), rng.standard_normal((400, 4)), 3, exact=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_display_shows_a_scan_under_the_check_and_removes_it_at_the_end(monkeypatch):
    from sanitycheck.engine import progress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with ProgressDisplay(console) as display, progress.listening(display):
        display("leakage", "queued")
        display("leakage", "start")
        with progress.scan_progress("leakage: shift look", 4000) as tick:
            tick(1000)
            assert len(display.scans) == 1
            task = display.bar.tasks[-1]
            assert "leakage: shift look" in task.description and task.total == 4000
            monkeypatch.setattr(progress, "UPDATE_EVERY", 0.0)
            tick(1500)
            assert task.completed == 2500
            display.bar.refresh()
        assert display.scans == {} and len(display.bar.tasks) == 2
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "leakage: shift look" in text and "2500/4000" in text
