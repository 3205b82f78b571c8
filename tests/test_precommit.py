"""The pre-commit hook, run the way pre-commit runs it: `pre-commit try-repo` in a scratch git repository.

try-repo clones this repository's committed-or-not hook definition (.pre-commit-hooks.yaml); the hook is
`language: system`, so it runs the `sanitycheck` of this environment (put first on PATH).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from pipelines import write_pipeline
from sanitycheck.engine.config import load_config
from sanitycheck.faces.precommit import touched, watched

BIN = Path(sys.executable).parent


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def try_repo(repo: Path, env: dict, *files: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pre-commit"), "try-repo", str(ROOT), "sanitycheck", "--verbose",
                           *(["--files", *files] if files else ["--all-files"])],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_hook_runs_via_try_repo(tmp_path, host):
    if not (BIN / "pre-commit").exists():
        pytest.skip("pre-commit is not installed (it is in the `test` extra)")
    repo = tmp_path / "project"
    # Only the instant checks: this tests the hook, not the probes (whose number grows with every plugin).
    off = "".join(f"  {name}: {{enabled: false}}\n" for name in host.checks if name not in ("data-integrity", "class-balance"))
    write_pipeline(repo, nan=[4, 44], config_extra="checks:\n" + off)
    (repo / "notes.py").write_text("x = 1\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PRE_COMMIT_HOME": str(tmp_path / "cache"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    unrelated = try_repo(repo, env, "notes.py")  # a file the config does not name: no probe run
    assert unrelated.returncode == 0, unrelated.stdout + unrelated.stderr
    assert "nothing sanitycheck.yaml depends on changed; skipped" in unrelated.stdout

    buggy = try_repo(repo, env, "pipeline.py")  # the pipeline changed: the fast profile runs and finds the NaNs
    assert buggy.returncode == 1, buggy.stdout + buggy.stderr
    assert "SC801" in buggy.stdout and "sanitycheck (fast profile)" in buggy.stdout

    (repo / "nan.json").write_text("[]")
    clean = try_repo(repo, env)  # --all-files: the fixed pipeline passes
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Passed" in clean.stdout


def test_watched_files_are_the_config_and_the_modules_it_names(tmp_path):
    config = write_pipeline(tmp_path / "p", nan=[])
    package = tmp_path / "p" / "mylib"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text("")
    config.write_text(config.read_text().replace("model: pipeline:make_model", "model: mylib.models:make"))
    watch = watched(load_config(config), config)
    p = tmp_path / "p"
    assert touched([p / "sanitycheck.yaml", p / "pipeline.py", p / "mylib" / "helpers.py"], watch) == \
        [(p / "sanitycheck.yaml").resolve(), (p / "pipeline.py").resolve(), (p / "mylib" / "helpers.py").resolve()]
    assert touched([p / "notes.py", tmp_path / "other.py"], watch) == []
