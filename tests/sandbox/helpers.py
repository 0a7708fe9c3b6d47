"""Helpers for the sandbox tests: an events recorder, a test environment, engine checks."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatops.core.environment import AgentSpec, Environment, Resources
from chatops.core.network import BlockedRequest
from chatops.core.ports import Phase, SandboxJob, SandboxOutcome
from sandbox.docker_runner import DockerSandbox
from sandbox.naming import RunNames, selector

MiB = 1024**2

# Random bytes that include every byte value, for byte-exact round trips.
BLOB = bytes(range(256)) + os.urandom(4096) + b"\r\n\x00\x1a"


@dataclass
class Recorder:
    """A SandboxEvents that keeps everything and can cancel on a condition."""

    cancel_when: Callable[[Recorder], bool] | None = None
    on_phase: Callable[[Phase], None] | None = None
    on_log: Callable[[Phase, str], None] | None = None
    phases: list[Phase] = field(default_factory=list)
    logs: list[tuple[Phase, str]] = field(default_factory=list)
    refused: list[BlockedRequest] = field(default_factory=list)

    def phase(self, phase: Phase) -> None:
        self.phases.append(phase)
        if self.on_phase:
            self.on_phase(phase)

    def log(self, phase: Phase, text: str) -> None:
        self.logs.append((phase, text))
        if self.on_log:
            self.on_log(phase, text)

    def blocked(self, requests: Sequence[BlockedRequest]) -> None:
        self.refused.extend(requests)

    def cancelled(self) -> bool:
        return bool(self.cancel_when and self.cancel_when(self))

    def text(self, phase: Phase | None = None) -> str:
        return "\n".join(t for p, t in self.logs if phase is None or p == phase)


def git(workspace: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(workspace), "-c", "user.name=Test", "-c", "user.email=test@example.com",
         *args],
        check=True, capture_output=True, text=True,
    ).stdout


def leftovers(client: Any, task_id: str, instance: str) -> list[str]:
    """Every engine object of the task, by label and by name."""
    names = RunNames(task_id, instance)
    filters = selector(instance, task_id)
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=filters)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=filters)]
    found += [f"image {i.tags}" for i in client.images.list(filters=filters)]
    found += [f"network {n.name}" for n in client.networks.list(filters=filters)]
    found += [f"network {n.name}" for n in client.networks.list(names=[names.network("egress")])]
    found += [f"image {names.snapshot}" for _ in client.images.list(name=names.snapshot)]
    found += [f"image {names.cache_use}" for _ in client.images.list(name=names.cache_use)]
    for phase in ("setup", "agent", "proxy"):
        found += [f"container {c.name}" for c in client.containers.list(
            all=True, filters={"name": f"^/{names.container(phase)}$"})]
    for purpose in ("workspace", "chatops"):
        found += [f"volume {v.name}" for v in client.volumes.list(
            filters={"name": names.volume(purpose)})]
    return found


def environment(image: str, **overrides: Any) -> Environment:
    """A test environment: the script agent, small limits, short timeouts."""
    fields: dict[str, Any] = {
        "name": "test",
        "repository": "/unused",
        "image": image,
        "agent": AgentSpec(preset="script"),
        "resources": Resources(memory=256 * MiB, pids=128, cpus=1.0),
        "timeout": 20,
        "setup_timeout": 20,
        **overrides,
    }
    return Environment(**fields)


def run(
    sandbox: DockerSandbox,
    task_id: str,
    workspace: Path,
    env: Environment,
    instruction: str,
    events: Recorder | None = None,
    **job: Any,
) -> SandboxOutcome:
    return sandbox.run(
        SandboxJob(task_id=task_id, environment=env, workspace=workspace,
                   instruction=instruction, **job),
        events or Recorder(),
    )
