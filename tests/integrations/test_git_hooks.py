"""No program the repository or the caller's git config names ever runs.

Hooks are planted everywhere git would look for them: the caller's global config
(core.hooksPath, init.templateDir, core.fsmonitor), GIT_TEMPLATE_DIR, and the workdir's own
.git/hooks and .git/config. A control test shows that plain git does run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from chatops.core.environment import Environment
from integrations.git import GitRepository
from tests.integrations.gitutil import spec

HOOKS = ("post-checkout", "post-index-change", "reference-transaction", "pre-commit",
         "post-commit", "pre-push", "pre-auto-gc", "post-rewrite")


def _script(path: Path, marker: Path) -> Path:
    path.write_text(f'#!/bin/sh\necho "$0" >> "{marker}"\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A marker file every planted hook appends to; the caller's config points at them all."""
    marker = tmp_path / "hooks-ran.txt"
    hooks = tmp_path / "trap" / "hooks"
    hooks.mkdir(parents=True)
    for name in HOOKS:
        _script(hooks / name, marker)
    template = tmp_path / "trap" / "template"
    shutil.copytree(hooks, template / "hooks")
    monitor = _script(tmp_path / "trap" / "fsmonitor", marker)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        f"[core]\n\thooksPath = {hooks}\n\tfsmonitor = {monitor}\n"
        f"[init]\n\ttemplateDir = {template}\n"
        "[user]\n\tname = Caller\n\temail = caller@example.com\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_TEMPLATE_DIR", str(template))
    return marker


def _plant_in_workdir(work: Path, marker: Path) -> None:
    for name in HOOKS:
        _script(work / ".git" / "hooks" / name, marker)
    monitor = _script(work / ".git" / "fsmonitor", marker)
    with (work / ".git" / "config").open("a") as config:
        config.write(f"[core]\n\tfsmonitor = {monitor}\n\thooksPath = {work / '.git/hooks'}\n")


def _plain_git(cwd: Path, *args: str) -> None:
    # The caller's environment as it is: this is what the trap is built to catch.
    subprocess.run(["git", *args], cwd=cwd, env=dict(os.environ), check=True,
                   capture_output=True)


def test_control_plain_git_runs_the_planted_hooks(marker: Path, origin: Path,
                                                  tmp_path: Path) -> None:
    _plain_git(tmp_path, "clone", "-q", str(origin), str(tmp_path / "plain"))
    assert marker.exists()
    ran_on_clone = marker.read_text()
    assert "post-checkout" in ran_on_clone

    work = tmp_path / "work"
    GitRepository().checkout(Environment(name="d", repository=str(origin)), work)
    _plant_in_workdir(work, marker)
    marker.unlink()
    (work / "new.txt").write_text("x\n")
    _plain_git(work, "add", "-A")
    ran_on_add = marker.read_text()
    assert "fsmonitor" in ran_on_add and "post-index-change" in ran_on_add


def test_no_hook_runs_during_checkout_collect_or_publish(marker: Path, env: Environment,
                                                        origin: Path, tmp_path: Path) -> None:
    repo = GitRepository()
    work = tmp_path / "work"
    base = repo.checkout(env, work)
    _plant_in_workdir(work, marker)
    (work / "README.md").write_text("# changed\n")

    patch = repo.collect_patch(work)
    repo.publish(env, spec(base, patch))
    repo.publish(env, spec(base, patch))

    assert not marker.exists(), marker.read_text()
    # The caller's global identity did not leak into the commit either.
    assert b"Caller" not in subprocess.run(
        ["git", "--git-dir", str(origin), "log", "-1", "--format=%an%cn", "chatops/task-1"],
        capture_output=True, check=True, env={"PATH": os.environ["PATH"]},
    ).stdout
