"""Shared fixtures: real Redis, the real Docker engine, the offline sandbox image.

In CI (``CI=true``) a missing Redis or Docker fails the run; elsewhere the tests that need
them skip with the reason, so a clone without them still runs the rest.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# The whole-deployment fixture, shared by the end-to-end suites.
pytest_plugins = [
    "tests.deployment", "tests.slack_rig", "tests.linear_rig", "tests.egress_rig",
]


def require(condition: bool, reason: str) -> None:
    """Skip outside CI, fail in CI, when a real dependency is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for the session, on a free loopback port."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server is not installed (apt-get install redis-server)")
    assert binary is not None
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start within 10 s")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[object]:
    """A connection to a freshly flushed database (rq's own tests keep the same hygiene)."""
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # any failure to reach the engine means the same thing here
        require(False, f"the Docker engine is not reachable: {exc}")
        raise
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: object) -> str:
    """The offline busybox sandbox image, built once if the engine lacks it."""
    from sandbox.images import DEFAULT_TAG, ensure_image

    require(shutil.which("busybox") is not None or Path("/bin/busybox").exists(),
            "busybox is not installed (apt-get install busybox-static)")
    ensure_image(docker_client, DEFAULT_TAG)  # type: ignore[arg-type]
    return DEFAULT_TAG
