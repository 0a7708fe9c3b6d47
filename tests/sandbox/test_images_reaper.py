"""The offline image build, and the reaper clearing what a killed worker left behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatops.core.errors import AgentFailed, ImageMissing
from sandbox.docker_runner import DockerSandbox
from sandbox.images import DEFAULT_TAG, build_busybox_image, ensure_image
from sandbox.naming import RunNames
from sandbox.reaper import reap
from tests.sandbox.helpers import environment, leftovers, run

pytestmark = pytest.mark.docker


@pytest.fixture
def scratch_tag(docker_client: Any) -> Iterator[str]:
    tag = f"chatops/sandbox-test:{uuid.uuid4().hex[:8]}"
    yield tag
    docker_client.images.remove(tag, force=True)


def test_the_busybox_image_has_the_layout_the_runner_relies_on(
    docker_client: Any, scratch_tag: str
) -> None:
    image_id = build_busybox_image(docker_client, scratch_tag)
    config = docker_client.images.get(scratch_tag).attrs["Config"]
    assert docker_client.images.get(scratch_tag).id == image_id
    assert config["WorkingDir"] == "/workspace"
    assert config["Labels"]["chatops.image"] == "busybox"
    assert any(env.startswith("PATH=/bin:/usr/bin") for env in config["Env"])
    script = "id agent; stat -c '%n %u:%g %a' /workspace /home/agent /tmp /chatops; which git sh"
    output = docker_client.containers.run(
        scratch_tag, ["sh", "-c", script + " || true"], remove=True, network_mode="none"
    ).decode()
    assert "uid=1000(agent) gid=1000(agent)" in output
    assert "/workspace 1000:1000 755" in output
    assert "/home/agent 1000:1000 755" in output
    assert "/tmp 0:0 1777" in output
    assert "/chatops 0:0 755" in output
    assert "/bin/sh" in output


def test_ensure_image_returns_the_existing_default_image(
    docker_client: Any, sandbox_image: str
) -> None:
    assert sandbox_image == DEFAULT_TAG
    assert ensure_image(docker_client, DEFAULT_TAG) == docker_client.images.get(DEFAULT_TAG).id


def test_ensure_image_cannot_build_other_images(docker_client: Any) -> None:
    with pytest.raises(ImageMissing, match="example/absent:1") as missing:
        ensure_image(docker_client, "example/absent:1")
    assert "docker build" in missing.value.hint


def test_the_reaper_removes_the_leftovers_of_tasks_not_kept(
    docker_client: Any, instance: str, sandbox_image: str
) -> None:
    instance = f"{instance}-reaper"  # its own, so no other test's run can be in the way
    crashed, running = (f"t-{uuid.uuid4().hex[:12]}" for _ in range(2))
    for task in (crashed, running):
        names = RunNames(task, instance)
        container = docker_client.containers.create(
            sandbox_image, ["true"], name=names.container("agent"), labels=names.labels("agent")
        )
        docker_client.volumes.create(names.volume("workspace"), labels=names.labels("agent"))
        docker_client.networks.create(names.network("egress"), internal=True,
                                      labels=names.labels("egress"))
        container.commit(
            repository="chatops-snapshot", tag=names.snapshot_tag,
            conf={"Labels": names.labels("snapshot")},
        )
    try:
        assert f"network {RunNames(crashed, instance).network('egress')}" in leftovers(
            docker_client, crashed, instance)
        assert reap(docker_client, keep={running}, instance=instance) == [crashed]
        assert leftovers(docker_client, crashed, instance) == []
        assert len(leftovers(docker_client, running, instance)) > 0
        # Another instance's reaper leaves them alone.
        assert reap(docker_client, instance=f"{instance}-other") == []
        assert len(leftovers(docker_client, running, instance)) > 0
    finally:
        reap(docker_client, instance=instance)
    assert leftovers(docker_client, running, instance) == []


def test_a_run_clears_what_an_earlier_attempt_of_the_task_left(
    docker_client: Any,
    instance: str,
    sandbox: DockerSandbox,
    sandbox_image: str,
    task_id: str,
    workspace: Path,
) -> None:
    names = RunNames(task_id, instance)
    docker_client.containers.create(
        sandbox_image, ["true"], name=names.container("setup"), labels=names.labels("setup")
    )
    run(sandbox, task_id, workspace, environment(sandbox_image), "echo again > again.txt")
    assert (workspace / "again.txt").read_text() == "again\n"


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_the_agent_cannot_reach_the_host_through_a_symlink(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path, target: str
) -> None:
    outside = workspace.parent / "outside"
    outside.mkdir()
    link = str(outside) if target == "absolute" else "../outside"
    # Inside the container the link resolves to a path the agent may write; on the host it
    # would lead out of the checkout.
    script = f"""
        mkdir -p {outside} 2>/dev/null || true
        ln -s {link} escape
        echo planted > escape/planted.txt 2>/dev/null || true
        echo edited > README.md
    """
    with pytest.raises(AgentFailed, match="symlink escape"):
        run(sandbox, task_id, workspace, environment(sandbox_image), script)
    assert list(outside.iterdir()) == []
    assert not (workspace / "escape").exists()
    assert (workspace / "README.md").read_text() == "# demo\n"
