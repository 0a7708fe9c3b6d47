"""collect_patch then publish: every kind of change survives the round trip byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatops.core.environment import Environment
from chatops.core.errors import RepositoryError
from integrations.git import GitRepository
from tests.integrations.gitutil import BINARY, git, spec, text, tree

UNICODE_NAME = "données à voir/naïve ünïcode ☃.txt"


def _edit_everything(work: Path) -> None:
    (work / "src" / "app.py").write_text("def main():\n    return 2\n")  # modified
    (work / "obsolete.txt").unlink()  # deleted
    os.rename(work / "docs" / "old name.txt", work / "docs" / "new name.txt")  # renamed
    (work / "run.sh").chmod(0o755)  # mode change only
    (work / "blob.bin").write_bytes(BINARY)  # binary modified
    (work / "new.bin").write_bytes(BINARY[::-1])  # binary added
    os.symlink("src/app.py", work / "app-link")  # symlink added
    (work / UNICODE_NAME).parent.mkdir()
    (work / UNICODE_NAME).write_text("snow\n")  # unicode path with spaces
    (work / "debug.log").write_text("ignored\n")  # .gitignore'd
    (work / "build").mkdir()
    (work / "build" / "out.o").write_bytes(b"\0ignored")


def test_collect_covers_every_kind_of_change(repo: GitRepository, env: Environment,
                                             tmp_path: Path) -> None:
    work = tmp_path / "work"
    repo.checkout(env, work)
    _edit_everything(work)

    patch = repo.collect_patch(work)

    assert not patch.empty
    data = patch.data
    assert b"GIT binary patch" in data
    assert b"deleted file mode 100644" in data
    assert b"rename from docs/old name.txt" in data and b"rename to docs/new name.txt" in data
    assert b"old mode 100644\nnew mode 100755" in data
    assert b"new file mode 120000" in data
    assert b"debug.log" not in data and b"build/out.o" not in data
    # modified, deleted, renamed, mode, 2 binaries, symlink, unicode
    assert patch.files_changed == 8
    assert patch.insertions == 1 + 1 + 1  # app.py, symlink target, snow
    assert patch.deletions == 1 + 1  # app.py, obsolete.txt


def test_published_tree_is_exactly_the_collected_one(repo: GitRepository, env: Environment,
                                                     origin: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    base = repo.checkout(env, work)
    _edit_everything(work)
    patch = repo.collect_patch(work)

    commit = repo.publish(env, spec(base, patch))

    assert text(origin, "rev-parse", "chatops/task-1") == commit
    assert text(origin, "rev-parse", f"{commit}^") == base
    # collect_patch staged the workdir: its index is the tree the agent left.
    assert text(origin, "rev-parse", f"{commit}^{{tree}}") == text(work, "write-tree")
    published = tree(origin, commit)
    assert published["blob.bin"] == ("100644", BINARY)
    assert published["new.bin"] == ("100644", BINARY[::-1])
    assert published["run.sh"][0] == "100755"
    assert published["app-link"] == ("120000", b"src/app.py")
    assert published[UNICODE_NAME] == ("100644", b"snow\n")
    assert "obsolete.txt" not in published and "docs/old name.txt" not in published
    assert "debug.log" not in published and "build/out.o" not in published


def test_nothing_changed_is_an_empty_patch(repo: GitRepository, env: Environment,
                                           tmp_path: Path) -> None:
    work = tmp_path / "work"
    repo.checkout(env, work)
    (work / "ignored.log").write_text("only ignored output\n")

    patch = repo.collect_patch(work)

    assert patch.empty and patch.data == b""
    assert (patch.files_changed, patch.insertions, patch.deletions) == (0, 0, 0)


def test_a_repository_without_commits_diffs_against_the_empty_tree(
    repo: GitRepository, tmp_path: Path
) -> None:
    work = tmp_path / "fresh"
    git(tmp_path, "init", "-q", str(work))
    (work / "a.txt").write_text("one\ntwo\n")

    patch = repo.collect_patch(work)

    assert b"new file mode 100644" in patch.data
    assert (patch.files_changed, patch.insertions) == (1, 2)


def test_collect_refuses_a_directory_inside_another_repository(
    repo: GitRepository, env: Environment, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    repo.checkout(env, work)
    with pytest.raises(RepositoryError, match="not the top of a git checkout"):
        repo.collect_patch(work / "src")
    with pytest.raises(RepositoryError, match="not the top of a git checkout"):
        repo.collect_patch(tmp_path)
