"""apply_to_worktree: a task's patch on the user's own clone, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatops.core.environment import Environment
from chatops.core.errors import NoChanges, PatchDoesNotApply, RepositoryError
from chatops.core.task import Patch
from integrations.git import GitRepository, apply_to_worktree
from integrations.git.patches import conflicting_paths
from tests.integrations.gitutil import BINARY, git, text


@pytest.fixture
def patch(repo: GitRepository, env: Environment, tmp_path: Path) -> Patch:
    work = tmp_path / "agent"
    repo.checkout(env, work)
    (work / "src" / "app.py").write_text("def main():\n    return 2\n")
    (work / "blob.bin").write_bytes(BINARY)
    (work / "docs" / "old name.txt").rename(work / "docs" / "renamed.txt")
    return repo.collect_patch(work)


@pytest.fixture
def user_clone(origin: Path, tmp_path: Path) -> Path:
    clone = tmp_path / "mine"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    return clone


def test_applies_from_a_subdirectory_to_the_whole_tree(patch: Patch, user_clone: Path) -> None:
    applied = apply_to_worktree(user_clone / "src", patch.data)

    assert not applied.merged
    assert set(applied.files) == {"src/app.py", "blob.bin", "docs/renamed.txt"}
    assert (user_clone / "src" / "app.py").read_text() == "def main():\n    return 2\n"
    assert (user_clone / "blob.bin").read_bytes() == BINARY
    assert (user_clone / "docs" / "renamed.txt").exists()
    assert not (user_clone / "docs" / "old name.txt").exists()


def test_check_only_writes_nothing(patch: Patch, user_clone: Path) -> None:
    applied = apply_to_worktree(user_clone, patch.data, check_only=True)
    assert "src/app.py" in applied.files
    assert text(user_clone, "status", "--porcelain") == ""


def test_falls_back_to_a_clean_three_way_merge(patch: Patch, user_clone: Path) -> None:
    # The user moved on: app.py gained a header, so the hunk (anchored at line 1) no longer
    # applies as it is, yet merges cleanly with the blobs the patch records.
    app = user_clone / "src" / "app.py"
    app.write_text("# header\n\ndef main():\n    return 1\n")
    git(user_clone, "commit", "-q", "-am", "mine")

    applied = apply_to_worktree(user_clone, patch.data)

    assert applied.merged
    assert app.read_text() == "# header\n\ndef main():\n    return 2\n"
    assert (user_clone / "blob.bin").read_bytes() == BINARY


def test_conflicts_are_reported_by_file_and_nothing_is_written(patch: Patch,
                                                               user_clone: Path) -> None:
    app = user_clone / "src" / "app.py"
    app.write_text("def main():\n    return 3\n")
    git(user_clone, "commit", "-q", "-am", "mine")

    for check_only in (True, False):
        with pytest.raises(PatchDoesNotApply) as caught:
            apply_to_worktree(user_clone, patch.data, check_only=check_only)
        assert "src/app.py" in caught.value.message
        assert "blob.bin" not in caught.value.message

    assert app.read_text() == "def main():\n    return 3\n"
    assert text(user_clone, "status", "--porcelain") == ""
    assert not (user_clone / "docs" / "renamed.txt").exists()


def test_uncommitted_edits_in_the_way_are_named(patch: Patch, user_clone: Path) -> None:
    (user_clone / "src" / "app.py").write_text("work in progress\n")
    with pytest.raises(PatchDoesNotApply, match=r"src/app\.py"):
        apply_to_worktree(user_clone, patch.data)
    assert (user_clone / "src" / "app.py").read_text() == "work in progress\n"


def test_empty_patch_and_not_a_repository(patch: Patch, tmp_path: Path) -> None:
    with pytest.raises(NoChanges):
        apply_to_worktree(tmp_path, b"")
    outside = tmp_path / "plain-dir"
    outside.mkdir()
    with pytest.raises(RepositoryError, match="not inside a git working tree"):
        apply_to_worktree(outside, patch.data)


def test_garbage_is_not_a_patch(user_clone: Path) -> None:
    with pytest.raises(PatchDoesNotApply, match="not a valid git patch"):
        apply_to_worktree(user_clone, b"diff --git a/x b/x\n@@ nonsense @@\n+\n")


def test_quoted_names_in_gits_messages_are_shown_as_typed() -> None:
    stderr = ('error: patch failed: "d\\303\\251j\\303\\240 vu.txt":3\n'
              "error: plain.txt: already exists in working directory\n"
              "Applied patch to 'src/app.py' with conflicts.\nU src/app.py\n")
    assert conflicting_paths(stderr) == ["déjà vu.txt", "plain.txt", "src/app.py"]
