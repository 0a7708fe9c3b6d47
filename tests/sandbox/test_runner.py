"""DockerSandbox on the real engine: the round trip, and every way a run can end badly."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path
from typing import Any

import docker
import pytest

from chatops.core.environment import Resources
from chatops.core.errors import (
    AgentFailed,
    AgentTimedOut,
    ImageMissing,
    SandboxUnavailable,
    SetupFailed,
    TaskCancelled,
    WorkspaceTooLarge,
)
from chatops.core.ports import Phase
from sandbox.docker_runner import DockerSandbox
from tests.sandbox.helpers import BLOB, MiB, Recorder, environment, git, run

pytestmark = pytest.mark.docker


def test_round_trip_brings_back_the_agents_edits_byte_exact(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    head = git(workspace, "rev-parse", "HEAD")
    events = Recorder()
    script = r"""
        test "$(id -u):$(id -g)" = 1000:1000
        cp blob.bin copy.bin
        printf '\000\001\377\r\n\032' > written.bin
        echo "more" >> README.md
        rm src/old.txt
        mkdir -p new/dir && printf '#!/bin/sh\necho hi\n' > new/dir/run.sh
        chmod +x new/dir/run.sh
        ln -s README.md alias
        echo "the agent ran"
        cp "$CHATOPS_PROMPT_FILE" prompt-seen.md
        cp "$CHATOPS_CONTEXT_FILE" context-seen.md
        printf 'Changed the README.\n' > "$CHATOPS_SUMMARY_FILE"
    """
    context = "**alice**: the README needs more"
    outcome = run(sandbox, task_id, workspace, environment(sandbox_image), script, events,
                  context=context)

    assert outcome.summary == "Changed the README."
    assert (workspace / "prompt-seen.md").read_text() == f"{script}\n\n{context}"
    assert (workspace / "context-seen.md").read_text() == context
    assert events.phases == [Phase.SETUP, Phase.AGENT, Phase.COLLECT]
    assert "the agent ran" in events.text(Phase.AGENT)
    assert (workspace / "copy.bin").read_bytes() == BLOB
    assert (workspace / "blob.bin").read_bytes() == BLOB
    assert (workspace / "written.bin").read_bytes() == b"\x00\x01\xff\r\n\x1a"
    assert (workspace / "README.md").read_text() == "# demo\nmore\n"
    assert not (workspace / "src" / "old.txt").exists()
    assert (workspace / "new" / "dir" / "run.sh").stat().st_mode & 0o100
    assert (workspace / "alias").is_symlink()
    assert (workspace / "alias").readlink() == Path("README.md")
    # The host's repository is the one that was there: same HEAD, the edits as changes.
    assert git(workspace, "rev-parse", "HEAD") == head
    status = git(workspace, "status", "--porcelain", "--untracked-files=all")
    assert " M README.md" in status
    assert " D src/old.txt" in status
    assert "?? copy.bin" in status


def test_the_containers_git_directory_is_ignored(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    config = (workspace / ".git" / "config").read_bytes()
    script = """
        mkdir -p .git/hooks
        printf '#!/bin/sh\\ntouch /tmp/hook-ran\\n' > .git/hooks/post-checkout
        chmod +x .git/hooks/post-checkout
        printf '[core]\\n\\tfsmonitor = touch /tmp/fsmonitor-ran\\n' >> .git/config
        echo edited > README.md
    """
    events = Recorder()
    run(sandbox, task_id, workspace, environment(sandbox_image), script, events)

    assert (workspace / "README.md").read_text() == "edited\n"
    assert (workspace / ".git" / "config").read_bytes() == config
    assert not (workspace / ".git" / "hooks" / "post-checkout").exists()
    assert "ignored the container's .git" in events.text(Phase.COLLECT)


def test_an_agent_that_exits_non_zero_fails_the_run(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    events = Recorder()
    with pytest.raises(AgentFailed, match="exited with status 7") as failure:
        run(sandbox, task_id, workspace, environment(sandbox_image), "echo boom; exit 7", events)
    assert task_id in failure.value.hint
    assert "boom" in events.text(Phase.AGENT)
    assert (workspace / "README.md").read_text() == "# demo\n"


def test_a_runaway_agent_is_stopped_at_its_timeout(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    env = environment(sandbox_image, timeout=2)
    with pytest.raises(AgentTimedOut, match="past its 2 s timeout"):
        run(sandbox, task_id, workspace, env, "echo working; sleep 1000")


def test_cancelling_kills_the_agent(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    # The timeout is long: only the cancel can end this run with TaskCancelled.
    events = Recorder(cancel_when=lambda r: "agent started" in r.text(Phase.AGENT))
    env = environment(sandbox_image, timeout=60)
    with pytest.raises(TaskCancelled, match="agent phase"):
        run(sandbox, task_id, workspace, env, "echo agent started; sleep 1000", events)


def test_cancelling_during_setup_kills_the_setup_script(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    events = Recorder(cancel_when=lambda r: "setup started" in r.text(Phase.SETUP))
    env = environment(sandbox_image, setup="echo setup started; sleep 1000", setup_timeout=60)
    with pytest.raises(TaskCancelled, match="setup phase"):
        run(sandbox, task_id, workspace, env, "true", events)
    assert Phase.AGENT not in events.phases


def test_a_failing_setup_script_fails_the_run_with_its_status(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    events = Recorder()
    env = environment(sandbox_image, setup="echo installing; echo oops >&2; exit 3")
    with pytest.raises(SetupFailed, match="the setup script exited with status 3") as failure:
        run(sandbox, task_id, workspace, env, "true", events)
    assert f"chatops logs {task_id}" in failure.value.hint
    assert "installing" in events.text(Phase.SETUP)
    assert "oops" in events.text(Phase.SETUP)
    assert Phase.AGENT not in events.phases


def test_a_setup_script_past_its_timeout_is_stopped(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    env = environment(sandbox_image, setup="sleep 1000", setup_timeout=1)
    with pytest.raises(SetupFailed, match="timed out"):
        run(sandbox, task_id, workspace, env, "true")


def test_setup_output_reaches_the_agent_through_the_snapshot(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    env = environment(
        sandbox_image,
        setup="mkdir -p /opt/tool && echo from-setup > /opt/tool/version && whoami",
        env={"GREETING": "hello"},
    )
    events = Recorder()
    run(sandbox, task_id, workspace, env,
        'cat /opt/tool/version > seen.txt; echo "$GREETING" >> seen.txt', events)
    assert (workspace / "seen.txt").read_text() == "from-setup\nhello\n"
    assert "root" in events.text(Phase.SETUP)


def test_an_oversized_result_is_refused_and_the_checkout_left_alone(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    env = environment(sandbox_image, resources=Resources(memory=256 * MiB, workspace=MiB))
    with pytest.raises(WorkspaceTooLarge):
        run(sandbox, task_id, workspace, env, "head -c 2000000 /dev/zero > big.bin")
    assert not (workspace / "big.bin").exists()
    assert (workspace / "src" / "old.txt").exists()


def test_a_missing_image_is_reported_by_name(
    sandbox: DockerSandbox, task_id: str, workspace: Path
) -> None:
    env = environment("chatops/no-such-image:missing")
    with pytest.raises(ImageMissing, match="chatops/no-such-image:missing"):
        run(sandbox, task_id, workspace, env, "true")


def test_an_unreachable_engine_is_reported(workspace: Path, sandbox_image: str) -> None:
    client: Any = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    try:
        with pytest.raises(SandboxUnavailable, match="cannot be reached"):
            run(DockerSandbox(client), "t-unreachable", workspace,
                environment(sandbox_image), "true")
    finally:
        client.close()
        # docker-py leaves the socket of a failed unix connect to the garbage collector.
        del client
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def test_an_error_raised_by_the_events_still_removes_everything(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    def explode(phase: Phase, text: str) -> None:
        if phase == Phase.AGENT:
            raise RuntimeError("the service fell over")

    events = Recorder(on_log=explode)
    with pytest.raises(RuntimeError, match="fell over"):
        run(sandbox, task_id, workspace, environment(sandbox_image),
            "echo hello; sleep 1000", events)
    # The task_id fixture checks that no container, volume or snapshot of the task remains.


def test_no_summary_file_means_an_empty_summary(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    assert run(sandbox, task_id, workspace, environment(sandbox_image), "true").summary == ""
