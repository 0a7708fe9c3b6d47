"""Real git repositories on disk, built by the tests: an origin (bare) and its environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatops.core.environment import Environment
from integrations.git import GitRepository
from tests.integrations.gitutil import make_origin


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    bare = make_origin(tmp_path / "origin", {
        "README.md": b"# demo\n",
        "src/app.py": b"def main():\n    return 1\n",
        "docs/old name.txt": b"to be renamed\n" * 5,
        "obsolete.txt": b"to be deleted\n",
        "run.sh": b"#!/bin/sh\necho hi\n",
        "blob.bin": b"\0old binary\0",
        ".gitignore": b"*.log\nbuild/\n",
    })
    return bare


@pytest.fixture
def env(origin: Path) -> Environment:
    return Environment(name="demo", repository=str(origin), base_branch="main")


@pytest.fixture
def repo() -> GitRepository:
    return GitRepository()

