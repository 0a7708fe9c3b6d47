"""GitRepository.publish: deterministic commits, idempotent pushes, clear refusals."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from chatops.core.environment import Environment
from chatops.core.errors import NoChanges, PatchDoesNotApply, RepositoryError
from chatops.core.ports import CommitSpec
from chatops.core.task import Patch
from integrations.git import GitRepository
from tests.integrations.gitutil import AUTHOR, WHEN, git, spec, text


def _patch(repo: GitRepository, env: Environment, work: Path, content: str) -> tuple[str, Patch]:
    base = repo.checkout(env, work)
    (work / "README.md").write_text(content)
    return base, repo.collect_patch(work)


def test_commit_carries_the_spec(repo: GitRepository, env: Environment, origin: Path,
                                 tmp_path: Path) -> None:
    base, patch = _patch(repo, env, tmp_path / "work", "# changed\n")
    when = datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    commit = repo.publish(env, CommitSpec(
        base_commit=base, patch=patch, branch="chatops/t1",
        message="\n\nFix the README  \n\n#42 stays, trailing spaces go   \n\n", author=AUTHOR,
        date=when,
    ))

    fields = text(origin, "show", "-s", "--format=%an <%ae>|%cn <%ce>|%at|%ct|%ai", commit)
    stamp = str(int(when.timestamp()))
    assert fields == f"{AUTHOR}|{AUTHOR}|{stamp}|{stamp}|2024-05-01 14:30:00 +0200"
    message = git(origin, "cat-file", "commit", commit).split(b"\n\n", 1)[1]
    assert message == b"Fix the README\n\n#42 stays, trailing spaces go\n"


def test_publishing_twice_yields_the_same_commit_and_pushes_nothing(
    env: Environment, origin: Path, tmp_path: Path
) -> None:
    repo = GitRepository()
    base, patch = _patch(repo, env, tmp_path / "work", "# changed\n")
    first = repo.publish(env, spec(base, patch))
    objects_before = text(origin, "count-objects", "-v")

    # A redelivered job: another process, another temporary clone, the same spec.
    again = GitRepository().publish(env, spec(base, patch))

    assert again == first
    assert text(origin, "rev-parse", "chatops/task-1") == first
    assert text(origin, "count-objects", "-v") == objects_before


def test_a_naive_date_is_utc(repo: GitRepository, env: Environment, origin: Path,
                             tmp_path: Path) -> None:
    base, patch = _patch(repo, env, tmp_path / "work", "# changed\n")
    naive = CommitSpec(base_commit=base, patch=patch, branch="b", message="m", author=AUTHOR,
                       date=WHEN.replace(tzinfo=None))
    commit = repo.publish(env, naive)
    assert text(origin, "show", "-s", "--format=%at %ai", commit) == (
        f"{int(WHEN.timestamp())} 2024-05-01 12:30:00 +0000"
    )


def test_a_conflicting_patch_does_not_apply(repo: GitRepository, env: Environment,
                                            origin: Path, tmp_path: Path) -> None:
    base, patch = _patch(repo, env, tmp_path / "work", "# ours\n")
    # Someone else changes the same line on main; the task is re-delivered on the new tip.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    (other / "README.md").write_text("# theirs\n")
    git(other, "commit", "-q", "-am", "theirs")
    git(other, "push", "-q", "origin", "main")
    moved = text(origin, "rev-parse", "main")

    with pytest.raises(PatchDoesNotApply) as caught:
        repo.publish(env, spec(moved, patch))
    assert "README.md" in caught.value.message
    assert moved[:12] in caught.value.message
    assert "chatops/task-1" not in text(origin, "branch", "--list")
    # On its own base it still applies.
    assert repo.publish(env, spec(base, patch))


def test_an_empty_patch_is_no_changes(repo: GitRepository, env: Environment, origin: Path) -> None:
    base = text(origin, "rev-parse", "main")
    with pytest.raises(NoChanges):
        repo.publish(env, spec(base, Patch(data=b"")))
    with pytest.raises(NoChanges):
        repo.publish(env, spec(base, Patch(data=b"\n  \n")))


def test_a_patch_already_in_the_base_does_not_apply(repo: GitRepository, env: Environment,
                                                     origin: Path, tmp_path: Path) -> None:
    base, patch = _patch(repo, env, tmp_path / "work", "# changed\n")
    merged = repo.publish(env, spec(base, patch))
    # The same change on top of itself: its preimage is gone, so git apply refuses it.
    with pytest.raises(PatchDoesNotApply):
        repo.publish(env, spec(merged, patch, branch="again"))


def test_an_existing_branch_elsewhere_is_not_overwritten(repo: GitRepository, env: Environment,
                                                         origin: Path, tmp_path: Path) -> None:
    base, first = _patch(repo, env, tmp_path / "one", "# first\n")
    _, second = _patch(repo, env, tmp_path / "two", "# second\n")
    pushed = repo.publish(env, spec(base, first))

    with pytest.raises(RepositoryError) as caught:
        repo.publish(env, spec(base, second))
    assert "already exists" in caught.value.message
    assert text(origin, "rev-parse", "chatops/task-1") == pushed


def test_a_follow_up_on_the_branch_fast_forwards(repo: GitRepository, env: Environment,
                                                 origin: Path, tmp_path: Path) -> None:
    base, first = _patch(repo, env, tmp_path / "one", "# first\n")
    tip = repo.publish(env, spec(base, first))
    work = tmp_path / "follow-up"
    repo.checkout(env, work, ref="chatops/task-1")
    (work / "NOTES.md").write_text("more\n")

    follow = repo.publish(env, spec(tip, repo.collect_patch(work), message="Follow-up"))

    assert text(origin, "rev-parse", "chatops/task-1") == follow
    assert text(origin, "rev-parse", f"{follow}^") == tip


def test_a_push_refused_by_the_remote_is_a_repository_error(
    repo: GitRepository, env: Environment, origin: Path, tmp_path: Path
) -> None:
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branches are frozen today' >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    base, patch = _patch(repo, env, tmp_path / "work", "# changed\n")

    with pytest.raises(RepositoryError) as caught:
        repo.publish(env, spec(base, patch))
    assert "refused branch 'chatops/task-1'" in caught.value.message


def test_an_unreachable_remote_is_a_repository_error(repo: GitRepository, env: Environment,
                                                     origin: Path, tmp_path: Path) -> None:
    base, patch = _patch(repo, env, tmp_path / "work", "# changed\n")
    gone = Environment(name="demo", repository=str(tmp_path / "gone.git"))
    with pytest.raises(RepositoryError, match=r"cannot read repository .*gone\.git"):
        repo.publish(gone, spec(base, patch))


@pytest.mark.parametrize("author", ["nobody", "<x@y>", "Name <>", "A <a@b> <c@d>"])
def test_an_invalid_author_is_refused(repo: GitRepository, env: Environment, origin: Path,
                                      tmp_path: Path, author: str) -> None:
    base, patch = _patch(repo, env, tmp_path / "work", "# changed\n")
    bad = CommitSpec(base_commit=base, patch=patch, branch="b", message="m", author=author,
                     date=WHEN)
    with pytest.raises(RepositoryError, match="invalid commit author"):
        repo.publish(env, bad)


@pytest.mark.parametrize("branch", ["bad..name", "-x", "ends.lock", "has space"])
def test_an_invalid_branch_is_refused(repo: GitRepository, env: Environment, origin: Path,
                                      tmp_path: Path, branch: str) -> None:
    base, patch = _patch(repo, env, tmp_path / "work", "# changed\n")
    with pytest.raises(RepositoryError, match="not a valid branch name"):
        repo.publish(env, spec(base, patch, branch=branch))


def test_the_base_must_be_a_full_commit_id(repo: GitRepository, env: Environment,
                                           tmp_path: Path) -> None:
    _, patch = _patch(repo, env, tmp_path / "work", "# changed\n")
    with pytest.raises(RepositoryError, match="not a full commit id"):
        repo.publish(env, spec("main", patch))
