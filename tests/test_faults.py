"""Issue 14: every failure of user code, plugins, files and time has one clear outcome (docs/faults.md).

Each test plants one fault and asserts the contract's outcome: the exit code, one message naming the key, path or
module, no traceback without --debug, a written report where the contract says so, the other checks' results kept.
Faults that end or hang a process (a C call past its time limit, os._exit, SIGINT, a thread left running) run the
real command in a subprocess; the rest go through typer's CliRunner in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sanitycheck.engine.host
import sanitycheck.engine.runner
from sanitycheck import hookimpl
from sanitycheck.engine.check import Check, CodeDoc
from sanitycheck.engine.models import CheckResult, Finding, Report
from sanitycheck.faces.cli import app

PIPELINE = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 8, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    train = TensorDataset(x, y)
    val = TensorDataset(1.0 - x[:16], y[:16])  # not copies of train, on the same scale
    val_wide = TensorDataset(torch.rand(16, 5, generator=g), y[:16])
    one = TensorDataset(x[:1], y[:1])
    probabilities = TensorDataset(x, (y == 1).float().unsqueeze(1))

    def make_model():
        return nn.Linear(8, 3)

    def make_scorer():
        return nn.Linear(8, 1)  # raw scores: BCELoss needs probabilities in [0, 1]

    class Doubler(nn.Module):
        def forward(self, inputs):
            return inputs[:, :3] * 2.0

    def no_parameters():
        return Doubler()

    def step_returns_none(model, batch, loss_fn, optimizer):
        inputs, targets = batch
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()

    def step_raises(model, batch, loss_fn, optimizer):
        raise RuntimeError("forgot to unpack the batch")

    def augment_raises(inputs):
        raise ValueError("bad crop size")

    def model_exits():
        import sys
        sys.exit(3)
''')

BASE = {"data": {"train": "pipeline:train", "val": "pipeline:val"}, "model": "pipeline:make_model",
        "loss": "torch.nn:CrossEntropyLoss", "profile": "fast"}

DOC = (CodeDoc(code="XX001", title="t", severity="error", what="w", why="y", example="e", fix="f"),)


def config(**changes) -> dict:
    out = {**BASE, "data": dict(BASE["data"])}
    for key, value in changes.items():
        if key.startswith("data_"):
            out["data"][key[5:]] = value
        else:
            out[key] = value
    return out


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    return tmp_path


def write_config(folder: Path, cfg: dict | str) -> Path:
    import yaml

    path = folder / "sanitycheck.yaml"
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False))
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_message(result, *needles: str) -> None:
    """Exit 2 with one message (a long one may wrap once) containing every needle, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def plugin_checks(monkeypatch, **bodies) -> None:
    """Register checks named after ``bodies`` (name -> function(ctx)) on the host the CLI loads."""
    checks = []
    for name, body in bodies.items():
        cls = type(f"Planted_{name.replace('-', '_')}", (Check,), {
            "name": name, "summary": "planted", "cost": "none", "codes": DOC,
            "run": (lambda body: lambda self, ctx, settings: body(ctx) or [])(body)})
        checks.append(cls())

    class Plugin:
        @hookimpl
        def sanitycheck_checks(self):
            return checks

    host = sanitycheck.engine.host.load_host(extra_plugins=(Plugin(),))
    monkeypatch.setattr(sanitycheck.engine.runner, "load_host", lambda: host)


# ------------------------------------------------------------------------------------- exits in checks


def _exits_0(ctx):
    sys.exit(0)


def _generator_exit(ctx):
    raise GeneratorExit


def test_sys_exit_in_a_check_is_that_checks_error_and_the_report_is_written(folder, monkeypatch):
    plugin_checks(monkeypatch, **{"exits": _exits_0, "closes": _generator_exit})
    out = folder / "report.json"
    result = invoke("run", write_config(folder, BASE), "--only", "exits,closes,data-integrity", "--format", "json",
                    "--output", out)
    assert result.exit_code == 3, result.output
    checks = {c.name: c for c in Report.model_validate_json(out.read_text()).checks}
    assert checks["exits"].status == "error" and checks["exits"].reason.startswith("called sys.exit(0) at test_faults.py")
    assert checks["closes"].status == "error" and "raised GeneratorExit" in checks["closes"].reason
    assert checks["data-integrity"].status == "passed"  # the other checks' results are kept


def _meddles(ctx):
    import torch

    os.chdir("/")
    torch.set_default_dtype(torch.float64)


def test_a_check_that_changes_the_folder_or_torch_defaults_does_not_change_the_next_one(folder, monkeypatch):
    import torch

    plugin_checks(monkeypatch, **{"a-meddles": _meddles})
    write_config(folder, BASE)
    monkeypatch.chdir(folder)  # relative paths, as a user types them
    result = invoke("run", "sanitycheck.yaml", "--only", "a-meddles,data-integrity", "--output", "report.json")
    assert result.exit_code == 0, result.output
    assert Path.cwd() == folder and (folder / "report.json").is_file()
    assert torch.get_default_dtype() == torch.float32


def _interrupts(ctx):
    raise KeyboardInterrupt


def test_ctrl_c_in_a_check_ends_the_run_130_with_the_finished_checks_marked_interrupted(folder, monkeypatch):
    plugin_checks(monkeypatch, **{"zz-interrupts": _interrupts})
    out = folder / "report.json"
    out.write_text("a stale report of an earlier run")
    result = invoke("run", write_config(folder, BASE), "--only", "data-integrity,zz-interrupts,class-balance",
                    "--format", "json", "--output", out)
    assert result.exit_code == 130, result.output
    report = Report.model_validate_json(out.read_text())
    assert report.interrupted and report.exit_code() == 130 and not report.ok
    status = {c.name: (c.status, c.reason) for c in report.checks}
    assert status["class-balance"][0] == "passed" and status["data-integrity"][0] == "passed"
    assert status["zz-interrupts"][0] == "skipped" and "interrupted" in status["zz-interrupts"][1]
    assert "interrupted" in result.stderr


# ------------------------------------------------------------------------------------------- time limits


def _python_loop(ctx):
    while True:
        pass


def test_a_check_stuck_in_python_is_stopped_at_its_time_limit(folder, monkeypatch):
    plugin_checks(monkeypatch, **{"spins": _python_loop})
    cfg = config(checks={"spins": {"timeout_s": 1}})
    start = time.perf_counter()
    result = invoke("run", write_config(folder, cfg), "--only", "spins,data-integrity", "--format", "json")
    assert result.exit_code == 3, result.output
    checks = {c.name: c for c in Report.model_validate_json(result.stdout).checks}
    assert checks["spins"].status == "error" and checks["spins"].reason == "timed out after 1 s"
    assert 1.0 <= checks["spins"].duration_s < 3  # stopped at its next bytecode (not abandoned: no suffix above)
    assert checks["data-integrity"].status == "passed"
    assert time.perf_counter() - start < 30


def _hoards(ctx):
    hoard = []
    for _ in range(128):  # at most 2 GiB, far above the limit the test sets
        hoard.append(bytearray(16 * 2**20))
        time.sleep(0.02)


def test_a_check_that_allocates_without_bound_is_stopped_before_the_oom_killer(folder, monkeypatch):
    from sanitycheck.engine import faults

    limit = faults.resident_bytes() + 200 * 2**20
    monkeypatch.setattr(faults, "memory_limit_bytes", lambda: limit)
    monkeypatch.setattr(sanitycheck.engine.runner, "memory_limit_bytes", lambda: limit)
    plugin_checks(monkeypatch, **{"hoards": _hoards})
    result = invoke("run", write_config(folder, BASE), "--only", "hoards,data-integrity", "--format", "json")
    assert result.exit_code == 3, result.output
    checks = {c.name: c for c in Report.model_validate_json(result.stdout).checks}
    assert checks["hoards"].status == "error" and "GiB of memory, over the limit" in checks["hoards"].reason
    assert checks["data-integrity"].status == "passed"


def test_the_default_time_limit_follows_the_profile():
    from sanitycheck.engine.check import CheckSettings
    from sanitycheck.engine.config import load_config
    from sanitycheck.engine.runner import DEFAULT_TIMEOUT_S, check_timeout

    for profile, factor in (("fast", 0.25), ("default", 1.0), ("thorough", 4.0)):
        cfg = load_config({**BASE, "profile": profile})
        assert check_timeout(cfg, CheckSettings()) == DEFAULT_TIMEOUT_S * factor
    assert check_timeout(load_config(BASE), CheckSettings(timeout_s=2.5)) == 2.5
    with pytest.raises(ValueError):
        CheckSettings(timeout_s=0)


# ------------------------------------------------------------------- the real process: C calls, SIGINT

LAUNCHER = textwrap.dedent('''
    """The sanitycheck command with planted checks (tests/test_faults.py)."""
    import os, sys, threading, time

    import sanitycheck.engine.host as host
    import sanitycheck.engine.runner as runner
    from sanitycheck import hookimpl
    from sanitycheck.engine.check import Check, CodeDoc

    DOC = (CodeDoc(code="XX001", title="t", severity="error", what="w", why="y", example="e", fix="f"),)

    def sleeps_in_c(ctx):
        time.sleep(1e6)  # one C call: no bytecode boundary to stop at

    def exits_for_real(ctx):
        os._exit(0)

    def leaves_a_thread(ctx):
        threading.Thread(target=time.sleep, args=(1e6,), name="user-thread").start()  # non-daemon: blocks exit

    def slow(ctx):
        open(os.environ["MARKER"], "w").write("started")
        time.sleep(1e6)

    BODIES = {"sleeps-in-c": sleeps_in_c, "exits-for-real": exits_for_real, "leaves-a-thread": leaves_a_thread,
              "slow": slow}

    def check(name, body):
        cls = type("Planted", (Check,), {"name": name, "summary": "s", "cost": "c", "codes": DOC,
                                         "run": lambda self, ctx, settings: body(ctx) or []})
        return cls()

    class Plugin:
        @hookimpl
        def sanitycheck_checks(self):
            return [check(name, body) for name, body in BODIES.items()]

    real = host.load_host
    runner.load_host = lambda: real(extra_plugins=(Plugin(),))
    from sanitycheck.faces.cli import main

    import faulthandler, signal
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # what every thread is doing, should a test time out
    sys.argv = ["sanitycheck", *sys.argv[1:]]
    main()
''')


def _launch(folder: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    (folder / "launch.py").write_text(LAUNCHER)
    return subprocess.Popen([sys.executable, str(folder / "launch.py"), *args], cwd=folder, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    """The launched run gets SIGINT's default, whatever the test run inherited: a test run started in the background
    of a non-interactive shell (``make test &``) has SIGINT ignored, Python keeps an ignored SIGINT ignored, and so
    does the sanitycheck command (the Unix convention for background jobs; SIGTERM always stops a run). The SIGINT
    test then waited forever (twice, in fresh-clone runs started that way)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _communicate(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """``proc.communicate``; past ``timeout`` the test fails with every thread's stack of the stuck process."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"the run did not end within {timeout:g} s; its threads:\n{stderr[-6000:]}")


def test_c_calls_past_the_limit_os_exit_and_stray_threads_do_not_stop_the_run(folder):
    """A check stuck in one C call is abandoned after its limit, os._exit in a check is its error, a thread the user
    left running does not keep the process alive; the report is written and no torchinductor folder is left."""
    tmp = folder / "tmp"
    tmp.mkdir()
    cfg = config(checks={"sleeps-in-c": {"timeout_s": 1}})
    out = folder / "report.json"
    start = time.perf_counter()
    proc = _launch(folder, "run", str(write_config(folder, cfg)), "--only",
                   "sleeps-in-c,exits-for-real,leaves-a-thread,data-integrity", "--format", "json", "--output", str(out),
                   env={"TMPDIR": str(tmp)})
    _stdout, stderr = proc.communicate(timeout=120)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr
    checks = {c.name: c for c in Report.model_validate_json(out.read_text()).checks}
    sleeper = checks["sleeps-in-c"]
    assert sleeper.status == "error" and sleeper.reason.startswith("timed out after 1 s")
    assert 1.0 <= sleeper.duration_s < 5  # limit + the grace to unwind, then abandoned
    assert checks["exits-for-real"].status == "error"
    assert checks["exits-for-real"].reason.startswith("called os._exit(0) at launch.py")
    assert checks["leaves-a-thread"].status == "passed" and checks["data-integrity"].status == "passed"
    assert elapsed < 90
    assert not [p.name for p in tmp.iterdir()]  # no torchinductor_<user>, no cache folder of ours left behind


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_ends_the_run_130_and_writes_the_finished_checks_marked_interrupted(folder, signum):
    out = folder / "report.json"
    out.write_text("a stale report of an earlier run")
    marker = folder / "marker"
    proc = _launch(folder, "run", str(write_config(folder, BASE)), "--only", "data-integrity,slow,class-balance",
                   "--format", "json", "--output", str(out), env={"MARKER": str(marker)})
    deadline = time.monotonic() + 90
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()[1]
    # What a SIGKILL now would leave: the checks so far, marked interrupted (rewritten after each check).
    so_far = json.loads(out.read_text())
    assert so_far["interrupted"] is True and {c["name"] for c in so_far["checks"]} == {"class-balance", "data-integrity"}
    proc.send_signal(signum)
    _stdout, stderr = _communicate(proc, 60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    report = json.loads(out.read_text())
    assert report["interrupted"] is True
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status == {"class-balance": "passed", "data-integrity": "passed", "slow": "skipped"}


# ---------------------------------------------------------------------------------- imports and plugins


def test_sys_exit_at_a_plugins_import_is_exit_2_naming_it(folder, monkeypatch):
    (folder / "exiting_plugin.py").write_text("import sys\nsys.exit(7)\n")
    monkeypatch.syspath_prepend(str(folder))
    real = sanitycheck.engine.host.entry_points

    def with_exiting(group):
        return [*real(group=group), EntryPoint(name="exiting", value="exiting_plugin", group=group)]

    monkeypatch.setattr(sanitycheck.engine.host, "entry_points", with_exiting)
    result = invoke("run", write_config(folder, BASE), "--only", "data-integrity")
    one_message(result, "plugin 'exiting'", "exiting_plugin", "called sys.exit(7)")


def test_a_plugin_that_fails_to_load_is_a_crashed_check_unless_skipped(folder, monkeypatch):
    real = sanitycheck.engine.host.entry_points

    def with_broken(group):
        return [*real(group=group), EntryPoint(name="broken", value="no_such_module_xyz:plugin", group=group)]

    monkeypatch.setattr(sanitycheck.engine.host, "entry_points", with_broken)
    path = write_config(folder, BASE)
    result = invoke("run", path, "--only", "data-integrity", "--format", "json")
    assert result.exit_code == 3, result.output
    broken = next(c for c in Report.model_validate_json(result.stdout).checks if c.name == "broken")
    assert broken.status == "error" and "no_such_module_xyz:plugin" in broken.reason and "ModuleNotFound" in broken.reason
    assert invoke("run", path, "--only", "data-integrity", "--skip", "broken").exit_code == 0


def test_a_module_that_exits_at_import_is_exit_2_naming_it(folder):
    (folder / "exits_at_import.py").write_text("import sys\ntrain = None\nsys.exit(7)\n")
    result = invoke("run", write_config(folder, config(data_train="exits_at_import:train")))
    one_message(result, "data.train", "importing 'exits_at_import'", "sys.exit(7)", "exits_at_import.py:3")


def test_sys_exit_while_the_pipeline_is_opened_is_exit_2_naming_the_place(folder):
    result = invoke("run", write_config(folder, config(model="pipeline:model_exits")))
    one_message(result, "called sys.exit(3) at pipeline.py", "(in model_exits)", "while sanitycheck opened it")


def test_a_module_that_parses_sys_argv_at_import(folder):
    """argparse at module level sees a clean sys.argv: defaults work; a required option names the module."""
    (folder / "cli_pipeline.py").write_text(PIPELINE + textwrap.dedent('''
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=0.1)
        args = parser.parse_args()

        def make_model():  # and again in the factory, called while the pipeline is opened and by each check
            parser.parse_args()
            return nn.Linear(8, 3)
    '''))
    defaults = invoke("run", write_config(folder, config(model="cli_pipeline:make_model")), "--only",
                      "data-integrity,init-loss")
    assert defaults.exit_code == 0, defaults.output
    (folder / "needs_args.py").write_text(PIPELINE + textwrap.dedent('''
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--data-dir", required=True)
        args = parser.parse_args()
    '''))
    result = invoke("run", write_config(folder, config(model="needs_args:make_model")), "--only", "data-integrity")
    one_message(result, "model: importing 'needs_args'", "argparse", "--data-dir", "if __name__ == '__main__'")
    assert "usage:" not in result.stderr


# --------------------------------------------------------------------------------------------- outputs


def _no_probe(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a probe ran before the output path was checked")

    monkeypatch.setattr(sanitycheck.engine.runner, "run", fail)


@pytest.mark.parametrize("option", ["--output", "--write-baseline"])
def test_an_output_path_that_cannot_be_written_is_exit_2_before_any_probe(folder, monkeypatch, option):
    _no_probe(monkeypatch)
    path = write_config(folder, BASE)
    (folder / "a-file").write_text("x")
    (folder / "a-folder").mkdir()
    under_file = invoke("run", path, option, folder / "a-file" / "report.json")
    one_message(under_file, option, "a-file", "is a file, not a folder")
    onto_folder = invoke("run", path, option, folder / "a-folder")
    one_message(onto_folder, option, "a-folder", "it is a folder")
    if os.geteuid() == 0:  # root writes anywhere permissions allow nothing: use a folder the kernel refuses
        locked = Path("/proc/self")
    else:
        locked = folder / "locked"
        locked.mkdir()
        locked.chmod(0o500)
    unwritable = invoke("run", path, option, locked / "report.json")
    one_message(unwritable, option, "is not writable")
    one_message(invoke("run", path, option, path), option, "is the config itself")
    assert path.exists()


def test_validate_output_path_for_folders_and_render(folder):
    from sanitycheck.engine.errors import UsageError
    from sanitycheck.faces.outputs import validate_output_path

    (folder / "a-file").write_text("x")
    assert validate_output_path(folder / "new" / "deeper", directory=True, option="--export") == folder / "new" / "deeper"
    assert not (folder / "new").exists()  # validation creates nothing
    with pytest.raises(UsageError, match="--export: .*it is a file, not a folder"):
        validate_output_path(folder / "a-file", directory=True, option="--export")
    saved = folder / "saved.json"
    saved.write_text(Report().model_dump_json())
    one_message(invoke("render", saved, "--output", folder / "a-file" / "x.html"), "--output", "is a file, not a folder")


def test_reports_are_written_atomically(folder, monkeypatch):
    from sanitycheck.faces import outputs

    target = folder / "report.json"
    target.write_text("previous")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(outputs.os, "replace", crash)
    with pytest.raises(OSError):
        outputs.atomic_write_text(target, "new")
    assert target.read_text() == "previous" and [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.undo()
    outputs.atomic_write_text(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"


# ---------------------------------------------------------------------------------------- files we read


def test_files_that_are_not_utf8_or_not_the_expected_shape_are_exit_2_naming_them(folder):
    latin1 = "data: {train: pipeline:train}  # café\n".encode("latin-1")
    bad_config = folder / "latin1.yaml"
    bad_config.write_bytes(latin1)
    one_message(invoke("run", bad_config), "latin1.yaml", "not valid UTF-8", "0xe9")
    good = write_config(folder, BASE)
    bad_baseline = folder / "baseline.json"
    bad_baseline.write_bytes(b'{"sanitycheck_baseline": 1, "findings": [], "x": "\xff"}')
    one_message(invoke("run", good, "--baseline", bad_baseline), "--baseline", "baseline.json", "not valid UTF-8")
    bad_baseline.write_text('{"sanitycheck_baseline": 1, "findings": [{"check": "a", "code": "B", "severity": "grave"}]}')
    one_message(invoke("run", good, "--baseline", bad_baseline), "findings[0]", "'severity'")
    bad_report = folder / "report.json"
    bad_report.write_bytes(b"\x89PNG\r\n\x1a\n")
    one_message(invoke("render", bad_report), "report.json", "not valid UTF-8")
    bad_report.write_text("[1, 2]")
    one_message(invoke("render", bad_report), "report.json", "not a sanitycheck JSON report")
    one_message(invoke("run", folder), "config file not found", "it is a folder")


# -------------------------------------------------------------------------------------------- preflight

PREFLIGHT = [
    ("train_step raises", config(train_step="pipeline:step_raises"),
     ["train_step: pipeline:step_raises raised RuntimeError: forgot to unpack the batch", "pipeline.py"]),
    ("train_step returns None", config(train_step="pipeline:step_returns_none"),
     ["train_step returned None; it must return the loss"]),
    ("val rejected by the model", config(data_val="pipeline:val_wide"),
     ["data.val: the model failed on a val batch of inputs shape (8, 5)", "shape (8, 8)"]),
    ("loss rejects the outputs", config(model="pipeline:make_scorer", loss="torch.nn:BCELoss",
                                        data_train="pipeline:probabilities", data_val="pipeline:probabilities"),
     ["loss: failed on outputs shape (8, 1)", "between 0 and 1"]),
    ("augment raises", config(data_augment="pipeline:augment_raises"),
     ["data.augment: pipeline:augment_raises raised ValueError: bad crop size", "train sample"]),
]


@pytest.mark.parametrize("name,cfg,needles", PREFLIGHT, ids=[p[0] for p in PREFLIGHT])
def test_the_preflight_names_what_cannot_run(folder, name, cfg, needles):
    one_message(invoke("run", write_config(folder, cfg)), *needles)


def test_a_run_that_trains_nothing_leaves_the_step_out_of_its_preflight(folder):
    cfg = write_config(folder, config(train_step="pipeline:step_raises"))
    one_message(invoke("run", cfg, "--only", "overfit-batch"), "train_step: pipeline:step_raises raised")
    result = invoke("run", cfg, "--only", "leakage,class-balance,data-integrity", "--format", "json")
    report = Report.model_validate_json(result.stdout)
    assert result.exit_code in (0, 1), result.output
    assert {c.name: c.status for c in report.checks} == {
        "leakage": "passed", "class-balance": "passed", "data-integrity": "passed"}, report.checks


def test_a_model_without_parameters_is_sc304_not_four_crashes(folder):
    result = invoke("run", write_config(folder, config(model="pipeline:no_parameters")), "--only",
                    "overfit-batch,gradients,label-shuffle,influence", "--format", "json")
    report = Report.model_validate_json(result.stdout)
    assert result.exit_code == 1, result.output  # an error finding, not a crash (3)
    assert [f.code for f in report.findings] == ["SC304"] and "no parameters" in report.findings[0].message
    assert {c.name: c.status for c in report.checks} == {
        "overfit-batch": "failed", "gradients": "skipped", "label-shuffle": "skipped", "influence": "skipped"}


def test_a_one_sample_training_split_gets_skips_not_statistical_verdicts(folder):
    # lr 0.05: the one-batch fit of overfit-batch then succeeds, so every finding left is about the data
    cfg = config(data_train="pipeline:one", optimizer={"lr": 0.05})
    result = invoke("run", write_config(folder, cfg), "--format", "json")
    report = Report.model_validate_json(result.stdout)
    assert not report.crashed, report.crashed
    reasons = {c.name: c.reason for c in report.checks if c.status == "skipped"}
    for name in ("label-shuffle", "influence", "outliers", "batch-independence"):
        assert "needs at least" in reasons[name], reasons
    statistical = {"label-shuffle", "influence", "outliers", "gradients", "init-loss", "augmentation", "leakage"}
    loud = [f.code for f in report.findings if f.check in statistical and f.severity != "info"]
    assert not loud, loud
    # what remains is a fact about one sample, not a statistic: two of the three classes have no training sample
    assert {f.code for f in report.findings if f.severity == "error"} <= {"SC501"}


# ---------------------------------------------------------------------------------------------- reports


def test_markdown_escapes_every_string_from_plugins_and_users():
    from sanitycheck.faces.report import markdown

    evil = "<img src=x onerror=alert(1)>[click](https://evil.example) @everyone **bold** `code` | cell"
    report = Report.assemble(
        f"<b>{evil}</b>.yaml",
        [Finding(check=f"<script>{evil}", code="<i>X1</i>", severity="error", title=evil, message=evil, fix=evil,
                 samples={"<b>train</b>": [1]}, evidence={"note": "```\n</details><script>x</script>"})],
        [CheckResult(name=f"<b>{evil}</b>", status="error", duration_s=0.1, reason=evil)], 1.0)
    lines = markdown.render(report).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("```") and line.endswith("json"))
    fence = lines[start][:-len("json")]
    assert len(fence) >= 4  # longer than the backtick run inside the evidence, which stays inside
    end = lines.index(fence, start + 1)
    outside = "\n".join(lines[:start] + lines[end + 1:])
    for raw in ("<img", "<script", "<b>", "<i>", "[click](", "@everyone", "**bold**", "`code`", "</details><"):
        assert raw not in outside, raw
    assert "\\[click\\](https://evil.example)" in outside and "&#64;everyone" in outside
    assert all(line.count("|") - line.count("\\|") == 5 for line in lines if line.startswith("| ") and "error" in line)


def test_an_interrupted_report_says_so():
    from sanitycheck.faces.report import markdown, text

    report = Report(interrupted=True)
    assert "INTERRUPTED" in text.summary_line(report) and "interrupted" in markdown.render(report)
    assert Report.model_validate_json(report.model_dump_json()).interrupted
    assert Report.model_validate({"findings": []}).interrupted is False  # reports written before keep validating


def test_a_warning_of_the_users_model_is_shown_once_per_run_not_once_per_call(run_pipeline):
    import warnings

    import torch

    import casekit

    class Warns(torch.nn.Module):  # like dropout2d on a 2-D input: a warning on every forward call
        def __init__(self):
            super().__init__()
            self.net = casekit.mlp(64, 10)

        def forward(self, x):
            warnings.warn("forward: deprecated input shape", UserWarning)
            return self.net(x)

    (xt, yt), (xv, yv) = casekit.digits()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Python itself would show every call
        run_pipeline(only=["init-loss", "overfit-batch"], train=casekit.dataset(xt, yt), val=casekit.dataset(xv, yv),
                     model=Warns, loss=torch.nn.CrossEntropyLoss())
    assert [str(w.message) for w in caught].count("forward: deprecated input shape") == 1
