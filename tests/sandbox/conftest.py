"""Fixtures for the sandbox tests: a git checkout per test, a sandbox, a clean engine.

Every sandbox test runs under its own ``chatops.instance`` label, so the reaper tests never
touch what another test session (or a deployment) has on the same engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.cache import SetupCache
from sandbox.docker_runner import DockerSandbox
from tests.sandbox.helpers import BLOB, git, leftovers


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A committed git checkout with text, binary, nested and executable files."""
    root = tmp_path / "checkout"
    (root / "src").mkdir(parents=True)
    (root / "README.md").write_text("# demo\n")
    (root / "src" / "app.py").write_text("print('hello')\n")
    (root / "src" / "old.txt").write_text("to be removed\n")
    (root / "blob.bin").write_bytes(BLOB)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


@pytest.fixture(scope="session")
def instance(docker_client: Any) -> Iterator[str]:
    """The session's instance; the setup cache entries its runs made are removed at the end."""
    name = f"pytest-{uuid.uuid4().hex[:8]}"
    yield name
    removal = SetupCache(docker_client, instance=name).clear()
    assert removal.in_use == [], "a cache entry is still held after every run ended"


@pytest.fixture
def sandbox(docker_client: Any, instance: str) -> DockerSandbox:
    return DockerSandbox(docker_client, instance=instance)


@pytest.fixture
def task_id(docker_client: Any, instance: str) -> Iterator[str]:
    """A fresh task id; after the test, nothing of that task may remain on the engine."""
    task = f"t-{uuid.uuid4().hex[:12]}"
    yield task
    assert leftovers(docker_client, task, instance) == []
