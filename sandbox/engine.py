"""docker-py plumbing the runner needs beyond the SDK's own calls; engine errors in our terms."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container

from chatops.core.errors import SandboxError, SandboxUnavailable

# 1 MiB: read size of an archive stream; large enough to keep per-chunk overhead negligible.
ARCHIVE_CHUNK_BYTES = 1024**2


@contextlib.contextmanager
def archive_stream(
    api: docker.APIClient, container_id: str, path: str
) -> Iterator[Iterator[bytes]]:
    """``path`` in the container as a stream of tar chunks; the response is closed on exit.

    Like ``APIClient.get_archive``, but that one hides the response: a stream abandoned
    half-way (an oversized result, a capped summary) would keep the engine writing to a socket
    nobody reads, and the container could not be removed until the read timed out.
    Raises docker's NotFound when ``path`` does not exist.
    """
    url = f"{api.base_url}/v{api.api_version}/containers/{container_id}/archive"
    response = api.get(url, params={"path": path}, stream=True)
    try:
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            docker.errors.create_api_error_from_http_exception(exc)  # raises NotFound, APIError
        yield response.iter_content(chunk_size=ARCHIVE_CHUNK_BYTES)
    finally:
        response.close()


def close_stream(stream: Any) -> None:
    """Close a docker-py streaming response (exec output, logs), socket included.

    ``CancellableStream.close`` skips a stream that reached its end, and the connection of an
    exec (an upgraded HTTP connection) is never returned to the pool, so its socket would
    stay open until garbage collection; closing the response closes the connection.
    """
    with contextlib.suppress(Exception):
        stream.close()
    response = getattr(stream, "_response", None)
    if response is not None:
        response.close()


def kill(container: Container) -> None:
    """SIGKILL the container; one that already stopped or vanished is fine."""
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.kill()


def container_state(api: docker.APIClient, container: Container) -> dict[str, Any]:
    """The container's ``State`` (Running, ExitCode, OOMKilled, ...)."""
    result: dict[str, Any] = api.inspect_container(str(container.id))["State"]
    return result


def engine_error(exc: Exception, redact: Callable[[str], str]) -> SandboxError:
    """A docker or transport exception as the SandboxError to report; ``redact`` masks secrets."""
    if isinstance(exc, docker.errors.APIError):
        detail = exc.explanation or str(exc)
        return SandboxError(
            f"the Docker engine refused a request: {redact(str(detail))}",
            hint="check the engine's log (`journalctl -u docker`) and its free disk space",
        )
    return SandboxUnavailable(f"the Docker engine cannot be reached: {redact(str(exc))}")
