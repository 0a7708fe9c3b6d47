"""What the agent phase must not have: secrets, network, unbounded processes or memory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import socket
from pathlib import Path
from typing import Any

import docker
import pytest

from chatops.core.environment import Resources
from chatops.core.errors import AgentFailed, AgentTimedOut
from chatops.core.ports import Phase
from sandbox.docker_runner import DockerSandbox
from sandbox.naming import RunNames
from tests.sandbox.helpers import MiB, Recorder, environment, run

pytestmark = pytest.mark.docker

# Setup proves it saw the secret without printing it: a digest, and the secret itself split
# across two writes half a second apart, so the log redaction must cope with split chunks.
SETUP = """
printf %s "$CHATOPS_CANARY" | sha256sum | cut -d' ' -f1 > /workspace/setup-proof.txt
echo "setup sees $CHATOPS_CANARY"
head=${CHATOPS_CANARY%????????????????}
printf 'split: %s' "$head"
sleep 0.5
printf '%s end\\n' "${CHATOPS_CANARY#"$head"}"
"""

AGENT = """
env | sort > agent-env.txt
for f in /proc/[0-9]*/environ; do cat "$f" 2>/dev/null || true; echo; done \
    | tr '\\0' '\\n' > agent-proc-environ.txt
echo "agent environment:"
cat agent-env.txt
cat agent-proc-environ.txt
"""


class EngineSpy:
    """Snapshots what the engine holds for the task while it runs: configs, image, history."""

    def __init__(self, client: Any, names: RunNames) -> None:
        self.client = client
        self.names = names
        self.seen: dict[str, Any] = {}

    def on_log(self, phase: Phase, text: str) -> None:
        name = self.names.container(phase.value)
        if phase in (Phase.SETUP, Phase.AGENT) and name not in self.seen:
            # Setup also logs before its container exists (the cache lookup) and after.
            with contextlib.suppress(docker.errors.NotFound):
                self.seen[name] = self.client.api.inspect_container(name)

    def on_phase(self, phase: Phase) -> None:
        if phase == Phase.AGENT:
            # The agent starts from the setup cache entry the run made (the run holds it by
            # this name) or, with the cache off, from the task's snapshot.
            for image in (self.names.cache_use, self.names.snapshot):
                with contextlib.suppress(docker.errors.NotFound):
                    self.seen["image"] = self.client.api.inspect_image(image)
                    self.seen["image history"] = self.client.api.history(image)
                    break


def test_secrets_reach_the_setup_script_and_nothing_else(
    docker_client: Any,
    instance: str,
    sandbox: DockerSandbox,
    sandbox_image: str,
    task_id: str,
    workspace: Path,
) -> None:
    canary = f"canary-{secrets.token_hex(16)}"
    spy = EngineSpy(docker_client, RunNames(task_id, instance))
    events = Recorder(on_log=spy.on_log, on_phase=spy.on_phase)
    run(
        sandbox, task_id, workspace, environment(sandbox_image, setup=SETUP), AGENT, events,
        secrets={"CHATOPS_CANARY": canary},
        agent_env={"MODEL_API_KEY": "model-key-for-the-agent"},
    )

    # Setup saw it.
    proof = (workspace / "setup-proof.txt").read_text().strip()
    assert proof == hashlib.sha256(canary.encode()).hexdigest()
    assert "setup sees ***" in events.text(Phase.SETUP)
    assert "split: *** end" in events.text(Phase.SETUP)
    # The agent did not, though it saw what it is meant to see.
    agent_env = (workspace / "agent-env.txt").read_text()
    proc_environ = (workspace / "agent-proc-environ.txt").read_text()
    assert f"CHATOPS_TASK_ID={task_id}" in agent_env
    assert "MODEL_API_KEY=model-key-for-the-agent" in agent_env
    assert f"CHATOPS_TASK_ID={task_id}" in proc_environ
    assert canary not in agent_env
    assert canary not in proc_environ
    # Nowhere in the logs (the agent's credential is masked there too) ...
    assert canary not in events.text()
    assert "model-key-for-the-agent" not in events.text()
    # ... the collected checkout ...
    for path in workspace.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert canary.encode() not in path.read_bytes(), path
    # ... or anything the engine kept about the run.
    assert set(spy.seen) == {
        spy.names.container("setup"),
        spy.names.container("agent"),
        "image",
        "image history",
    }
    for what, record in spy.seen.items():
        assert canary not in json.dumps(record), what


def test_the_agent_has_no_network(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    # A listener on the host's loopback: reachable only from the host's network namespace.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)
        port = listener.getsockname()[1]
        script = f"""
            ls /sys/class/net > interfaces.txt
            tail -n +2 /proc/net/route > routes.txt
            if nc -w 2 127.0.0.1 {port} </dev/null 2>nc-error.txt; then
                echo connected > connect.txt
            else
                echo refused > connect.txt
            fi
        """
        run(sandbox, task_id, workspace, environment(sandbox_image), script)
        with pytest.raises(TimeoutError):
            listener.accept()

    assert (workspace / "interfaces.txt").read_text().split() == ["lo"]
    assert (workspace / "routes.txt").read_text().strip() == ""
    assert (workspace / "connect.txt").read_text().strip() == "refused"


def test_the_agent_gets_a_network_interface_when_the_environment_allows_it(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    env = environment(sandbox_image, network="on")
    run(sandbox, task_id, workspace, env, "ls /sys/class/net > interfaces.txt")
    assert "eth0" in (workspace / "interfaces.txt").read_text().split()


def test_the_agent_runs_unprivileged_on_a_read_only_root(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    script = """
        id -u > id.txt
        grep -E '^Cap(Prm|Eff|Bnd):' /proc/self/status > caps.txt
        grep NoNewPrivs /proc/self/status > nnp.txt
        probe() { if touch "$1" 2>/dev/null; then echo writable; else echo denied; fi; }
        probe /etc/x > root.txt
        probe /chatops/x > chatops.txt
        probe /tmp/x > tmp.txt
        probe "$HOME/x" > home.txt
    """
    run(sandbox, task_id, workspace, environment(sandbox_image), script)
    assert (workspace / "id.txt").read_text().strip() == "1000"
    caps = (workspace / "caps.txt").read_text().split("\n")
    assert all(line.endswith("0000000000000000") for line in caps if line)
    assert (workspace / "nnp.txt").read_text().split() == ["NoNewPrivs:", "1"]
    assert (workspace / "root.txt").read_text().strip() == "denied"
    assert (workspace / "chatops.txt").read_text().strip() == "denied"
    assert (workspace / "tmp.txt").read_text().strip() == "writable"
    assert (workspace / "home.txt").read_text().strip() == "writable"


def test_a_fork_bomb_is_contained_by_the_pid_limit(
    docker_client: Any, sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    env = environment(sandbox_image, resources=Resources(memory=256 * MiB, pids=64), timeout=3)
    with pytest.raises((AgentTimedOut, AgentFailed)):
        run(sandbox, task_id, workspace, env, "bomb() { bomb | bomb & }; bomb; sleep 30")
    assert docker_client.ping()


def test_a_memory_hog_is_killed_and_reported_as_such(
    sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path
) -> None:
    env = environment(sandbox_image, resources=Resources(memory=64 * MiB))
    hog = "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"
    with pytest.raises(AgentFailed, match="64 MiB memory limit"):
        run(sandbox, task_id, workspace, env, hog)
