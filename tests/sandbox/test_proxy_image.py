"""The offline squid egress image: a reproducible build, and a clear answer without squid.

Squid filtering real requests in it is tested through ``sandbox.egress`` (test_egress.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chatops.core.errors import ImageMissing
from sandbox.proxy_image import (
    PROXY_GID,
    PROXY_UID,
    build_proxy_image,
    host_files,
)

pytestmark = pytest.mark.docker


@pytest.fixture
def scratch_tags(docker_client: Any) -> Iterator[list[str]]:
    tags = [f"chatops/egress-test:{uuid.uuid4().hex[:8]}" for _ in range(2)]
    yield tags
    for tag in tags:
        docker_client.images.remove(tag, force=True)


def test_building_twice_gives_the_same_layer(docker_client: Any, scratch_tags: list[str]) -> None:
    # The image id also hashes the import time, so the layer digest is what must repeat.
    layers = []
    for tag in scratch_tags:
        image_id = build_proxy_image(docker_client, tag)
        image = docker_client.images.get(tag)
        assert image.id == image_id
        assert image.attrs["Config"]["Labels"]["chatops.image"] == "egress"
        assert image.attrs["Config"]["User"] == f"{PROXY_UID}:{PROXY_GID}"
        layers.append(image.attrs["RootFS"]["Layers"])
    assert layers[0] == layers[1]


def test_a_host_without_squid_gets_an_install_hint() -> None:
    # host_files is what the image build collects the squid binaries with.
    with pytest.raises(ImageMissing, match="/nonexistent/sbin/squid") as missing:
        host_files(["/nonexistent/sbin/squid"])
    assert "apt-get install squid-openssl" in missing.value.hint
