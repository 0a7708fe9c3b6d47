"""Helpers for the git tests: a hermetic git of their own, trees, origins, commit specs."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from chatops.core.ports import CommitSpec
from chatops.core.task import Patch

# The tests' own git runs as hermetically as the code under test, so that whoever runs them
# (their global config, a GIT_DIR left in their shell) cannot change the repositories built.
TEST_GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Seed",
    "GIT_AUTHOR_EMAIL": "seed@example.com",
    "GIT_COMMITTER_NAME": "Seed",
    "GIT_COMMITTER_EMAIL": "seed@example.com",
    "LC_ALL": "C",
}

BINARY = bytes(range(256)) * 8 + b"\0\r\n\x00end"
AUTHOR = "Chatops Bot <bot@example.com>"
WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def git(cwd: Path, *args: str, input: bytes | None = None) -> bytes:
    """Run git for a test's own bookkeeping; raises with git's stderr on failure."""
    result = subprocess.run(["git", *args], cwd=cwd, env=TEST_GIT_ENV, input=input,
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr.decode()}")
    return result.stdout


def text(cwd: Path, *args: str) -> str:
    return git(cwd, *args).decode().strip()


def tree(repo: Path, ref: str) -> dict[str, tuple[str, bytes]]:
    """Path -> (mode, content) of every entry of ``ref``'s tree."""
    listing = git(repo, "ls-tree", "-r", "-z", ref).split(b"\0")
    entries = {}
    for line in filter(None, listing):
        info, path = line.split(b"\t", 1)
        mode, _, oid = info.decode().split()
        entries[path.decode()] = (mode, git(repo, "cat-file", "blob", oid))
    return entries


def make_origin(root: Path, files: dict[str, bytes], branch: str = "main") -> Path:
    """A bare repository whose ``branch`` holds ``files`` in one commit."""
    seed = root / "seed"
    seed.mkdir(parents=True)
    git(seed, "init", "-q", "-b", branch)
    for name, content in files.items():
        path = seed / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "seed")
    bare = root / "demo.git"
    git(root, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


def spec(base: str, patch: Patch, branch: str = "chatops/task-1", message: str = "Do it") \
        -> CommitSpec:
    return CommitSpec(base_commit=base, patch=patch, branch=branch, message=message,
                      author=AUTHOR, date=WHEN)
