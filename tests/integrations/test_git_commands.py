"""The git runner: a clean environment, secrets kept out of messages, no hanging."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatops.core.errors import RepositoryError
from integrations.git.commands import (
    display_url,
    git_environment,
    is_local,
    redact,
    run_git,
    source_for_git,
)


def test_environment_drops_the_callers_git_variables() -> None:
    env = git_environment(base={
        "PATH": "/usr/bin", "GIT_DIR": "/elsewhere/.git", "GIT_WORK_TREE": "/elsewhere",
        "GIT_INDEX_FILE": "/x/index", "GIT_CONFIG_PARAMETERS": "'core.hooksPath'='/evil'",
        "GIT_AUTHOR_NAME": "Someone", "GIT_SSH_COMMAND": "ssh -i /keys/deploy",
        "LANG": "de_DE.UTF-8",
    })
    assert env["PATH"] == "/usr/bin"
    for dropped in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS",
                    "GIT_AUTHOR_NAME"):
        assert dropped not in env
    assert env["GIT_SSH_COMMAND"] == "ssh -i /keys/deploy"
    assert env["LC_ALL"] == "C" and env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"


def test_config_travels_in_the_environment_after_the_hardening() -> None:
    env = git_environment(config={"http.extraHeader": "Authorization: Bearer t0ken",
                                  "core.hooksPath": "/tmp/hooks"}, base={})
    pairs = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
             for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert pairs["core.hooksPath"] == "/dev/null"
    assert pairs["core.fsmonitor"] == "false"
    assert pairs["http.extraHeader"] == "Authorization: Bearer t0ken"
    assert env["GIT_SSH_COMMAND"] == "ssh -o BatchMode=yes"


def test_git_sees_the_config(tmp_path: Path) -> None:
    seen = run_git(["config", "--get", "x.token"], tmp_path, config={"x.token": "v"}).text
    assert seen == "v"
    assert run_git(["config", "--get", "core.hooksPath"], tmp_path).text == "/dev/null"


@pytest.mark.parametrize(("url", "shown"), [
    ("https://x-access-token:ghs_abc@github.com/o/r.git", "https://github.com/o/r.git"),
    ("https://ghp_token@github.com/o/r", "https://github.com/o/r"),
    ("ssh://git@host:22/r.git", "ssh://host:22/r.git"),
    ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ("/srv/git/demo.git", "/srv/git/demo.git"),
])
def test_display_url_strips_userinfo(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_redact_removes_secrets_and_userinfo() -> None:
    text = "fatal: unable to access 'https://u:pw@h/r/': header Bearer t0ken refused"
    assert redact(text, ["Bearer t0ken", ""]) == (
        "fatal: unable to access 'https://h/r/': header *** refused"
    )


@pytest.mark.parametrize(("repository", "local"), [
    ("/srv/demo.git", True), ("demo.git", True), ("./a:b", True), ("file:///srv/x", False),
    ("https://h/r", False), ("git@h:r.git", False), ("h:r", False),
])
def test_is_local_follows_gits_rule(repository: str, local: bool) -> None:
    assert is_local(repository) is local


def test_local_sources_are_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert source_for_git("-x.git") == str(tmp_path / "-x.git")
    assert source_for_git("https://h/r") == "https://h/r"


def test_failure_carries_gits_message_without_secrets(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError) as caught:
        run_git(["rev-parse", "--verify", "no-such-ref-t0ken"], tmp_path,
                config={"x.secret": "t0ken"})
    assert "git rev-parse failed" in caught.value.message
    assert "not a git repository" in caught.value.message
    assert "t0ken" not in str(caught.value)


def test_unchecked_failures_are_returned(tmp_path: Path) -> None:
    result = run_git(["rev-parse", "HEAD"], tmp_path, check=False)
    assert result.returncode != 0 and "not a git repository" in result.stderr


def test_a_command_past_its_timeout_is_killed(tmp_path: Path) -> None:
    # An alias running a shell: the sleep is a grandchild, killed with git's process group.
    with pytest.raises(RepositoryError, match="did not finish within"):
        run_git(["-c", "alias.nap=!sleep 30", "nap"], tmp_path, timeout=0.5)
