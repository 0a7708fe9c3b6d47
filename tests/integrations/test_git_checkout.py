"""GitRepository.checkout against real repositories on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatops.core.environment import Environment
from chatops.core.errors import RepositoryError
from integrations.git import GitRepository
from tests.integrations.gitutil import git, text


def _second_commit(origin: Path, tmp_path: Path) -> tuple[str, str]:
    """Add a commit on main; return (first, second) commit ids."""
    first = text(origin, "rev-parse", "main")
    clone = tmp_path / "pusher"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    (clone / "README.md").write_text("# demo, second edition\n")
    git(clone, "commit", "-q", "-am", "second")
    git(clone, "push", "-q", "origin", "main")
    return first, text(origin, "rev-parse", "main")


def test_checks_out_the_base_branch(repo: GitRepository, env: Environment, origin: Path,
                                    tmp_path: Path) -> None:
    dest = tmp_path / "work"
    head = repo.checkout(env, dest)

    assert head == text(origin, "rev-parse", "main")
    assert text(dest, "rev-parse", "HEAD") == head
    assert text(dest, "symbolic-ref", "--short", "HEAD") == "main"
    assert (dest / "src" / "app.py").read_text() == "def main():\n    return 1\n"
    assert text(dest, "status", "--porcelain") == ""
    # Shallow by default: one commit is all the agent's workspace carries.
    assert (dest / ".git" / "shallow").exists()


def test_checks_out_a_commit_that_is_not_the_tip(repo: GitRepository, env: Environment,
                                                 origin: Path, tmp_path: Path) -> None:
    first, second = _second_commit(origin, tmp_path)
    dest = tmp_path / "old"

    assert repo.checkout(env, dest, ref=first) == first
    assert (dest / "README.md").read_text() == "# demo\n"
    assert text(dest, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached

    assert repo.checkout(env, tmp_path / "new") == second


def test_checks_out_another_branch_by_ref(repo: GitRepository, env: Environment, origin: Path,
                                          tmp_path: Path) -> None:
    main = text(origin, "rev-parse", "main")
    git(origin, "branch", "release/1.0", main)

    assert repo.checkout(env, tmp_path / "work", ref="release/1.0") == main
    assert text(tmp_path / "work", "symbolic-ref", "--short", "HEAD") == "release/1.0"


def test_full_history_when_asked(env: Environment, origin: Path, tmp_path: Path) -> None:
    _second_commit(origin, tmp_path)
    dest = tmp_path / "work"
    GitRepository(depth=None).checkout(env, dest)
    assert text(dest, "rev-list", "--count", "HEAD") == "2"


def test_works_from_a_file_url_and_a_non_bare_repository(repo: GitRepository, origin: Path,
                                                         tmp_path: Path) -> None:
    main = text(origin, "rev-parse", "main")
    by_url = Environment(name="demo", repository=origin.as_uri())
    assert repo.checkout(by_url, tmp_path / "a") == main

    work = tmp_path / "plain"
    git(tmp_path, "clone", "-q", str(origin), str(work))
    assert repo.checkout(Environment(name="d", repository=str(work)), tmp_path / "b") == main


def test_relative_repository_path(repo: GitRepository, origin: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(origin.parent)
    env = Environment(name="demo", repository=origin.name)
    assert repo.checkout(env, tmp_path / "work") == text(origin, "rev-parse", "main")


def test_unknown_branch_names_branch_repository_and_fix(repo: GitRepository, origin: Path,
                                                        tmp_path: Path) -> None:
    env = Environment(name="demo", repository=str(origin), base_branch="trunk")
    dest = tmp_path / "work"
    with pytest.raises(RepositoryError) as caught:
        repo.checkout(env, dest)
    assert caught.value.message == f"branch 'trunk' not found in {origin}"
    assert "base_branch" in caught.value.hint
    assert not dest.exists()  # nothing half-made is left behind


def test_unknown_commit(repo: GitRepository, env: Environment, origin: Path,
                        tmp_path: Path) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(RepositoryError, match=f"commit {missing} not found in {origin}"):
        repo.checkout(env, tmp_path / "work", ref=missing)


def test_short_commit_id_hint(repo: GitRepository, env: Environment, origin: Path,
                              tmp_path: Path) -> None:
    short = text(origin, "rev-parse", "--short", "main")
    with pytest.raises(RepositoryError) as caught:
        repo.checkout(env, tmp_path / "work", ref=short)
    assert "full 40-character id" in caught.value.hint


def test_missing_repository(repo: GitRepository, tmp_path: Path) -> None:
    env = Environment(name="demo", repository=str(tmp_path / "nowhere.git"))
    with pytest.raises(RepositoryError, match=r"cannot read repository .*nowhere\.git"):
        repo.checkout(env, tmp_path / "work")


def test_invalid_branch_name(repo: GitRepository, origin: Path, tmp_path: Path) -> None:
    env = Environment(name="demo", repository=str(origin), base_branch="bad..name")
    with pytest.raises(RepositoryError, match="not a valid branch name"):
        repo.checkout(env, tmp_path / "work")


def test_destination_must_be_empty(repo: GitRepository, env: Environment,
                                   tmp_path: Path) -> None:
    dest = tmp_path / "work"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(RepositoryError, match="not an empty directory"):
        repo.checkout(env, dest)
    assert (dest / "keep.txt").read_text() == "mine"


def test_an_existing_empty_destination_is_used_and_restored_on_failure(
    repo: GitRepository, origin: Path, env: Environment, tmp_path: Path
) -> None:
    dest = tmp_path / "work"
    dest.mkdir()
    bad = Environment(name="demo", repository=str(origin), base_branch="nope")
    with pytest.raises(RepositoryError):
        repo.checkout(bad, dest)
    assert dest.is_dir() and not any(dest.iterdir())
    assert repo.checkout(env, dest) == text(origin, "rev-parse", "main")


def test_credentials_never_appear_in_errors_or_the_workspace(tmp_path: Path) -> None:
    # Port 1 on loopback refuses at once: the clone fails without any network.
    url = "http://robot:s3cret-token@127.0.0.1:1/demo.git"
    env = Environment(name="demo", repository=url)
    repo = GitRepository(network_config=lambda _: {"http.extraHeader": "X-Token: hdr-secret"})
    dest = tmp_path / "work"
    with pytest.raises(RepositoryError) as caught:
        repo.checkout(env, dest)
    shown = str(caught.value)
    assert "s3cret-token" not in shown and "hdr-secret" not in shown
    assert "http://127.0.0.1:1/demo.git" in shown
    assert not dest.exists()


def test_workspace_remote_has_no_credentials(repo: GitRepository, origin: Path,
                                             tmp_path: Path) -> None:
    # git ignores userinfo on a file:// URL, which lets this test reach a real checkout; the
    # same must hold for a token in an https URL, since the workspace goes into containers.
    env = Environment(name="demo", repository=f"file://user:pw@{origin}")
    dest = tmp_path / "work"
    repo.checkout(env, dest)
    config = (dest / ".git" / "config").read_text()
    assert "user:pw" not in config


def test_ignores_a_git_dir_in_the_callers_environment(repo: GitRepository, env: Environment,
                                                      origin: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    decoy = tmp_path / "decoy"
    git(tmp_path, "init", "-q", str(decoy))
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(decoy))
    monkeypatch.setenv("GIT_INDEX_FILE", str(decoy / ".git" / "index"))

    dest = tmp_path / "work"
    assert repo.checkout(env, dest) == text(origin, "rev-parse", "main")
    assert (dest / "README.md").exists() and not (decoy / "README.md").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a repository to another user needs root")
def test_a_repository_of_another_user_is_explained(origin: Path, env: Environment,
                                                   tmp_path: Path) -> None:
    for path in [origin, *origin.rglob("*")]:
        os.lchown(path, 65534, 65534)  # nobody
    with pytest.raises(RepositoryError) as caught:
        GitRepository().checkout(env, tmp_path / "refused")
    assert "another user" in caught.value.hint
