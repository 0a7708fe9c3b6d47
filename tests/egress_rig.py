"""The `outside` fixture: a network standing in for the internet, for the egress tests.

Three busybox web servers (on ports 80 and 443) under made-up names, on a bridge network the
tests make: what an allowlist's proxy reaches out to. Nothing here is an outside address.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

SERVE = ("mkdir -p /www && echo \"body of $(hostname)\" > /www/index.html && "
         "httpd -p 443 -h /www && exec httpd -f -p 80 -h /www")


@dataclass(frozen=True)
class Outside:
    network: str
    addresses: dict[str, str]  # container name -> its address on the network


@pytest.fixture(scope="session")
def outside(docker_client: Any, sandbox_image: str) -> Iterator[Outside]:
    """An outbound network with three web servers: allowed.test, api.wild.test, blocked.test."""
    suffix = uuid.uuid4().hex[:8]
    network = docker_client.networks.create(f"chatops-test-out-{suffix}", driver="bridge")
    containers = []
    try:
        for name, alias in (("allowed", "allowed.test"), ("wild", "api.wild.test"),
                            ("blocked", "blocked.test")):
            container = docker_client.containers.run(
                sandbox_image, ["sh", "-c", SERVE], name=f"chatops-test-{name}-{suffix}",
                hostname=name, detach=True, network=network.name)
            containers.append(container)
            network.disconnect(container)
            network.connect(container, aliases=[alias])
        addresses = {}
        for container in containers:
            container.reload()
            settings = container.attrs["NetworkSettings"]["Networks"][network.name]
            addresses[container.name.split("-")[2]] = settings["IPAddress"]
        yield Outside(network.name, addresses)
    finally:
        for container in containers:
            container.remove(force=True)
        network.remove()


