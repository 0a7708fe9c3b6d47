"""The small interfaces the service talks to; adapters implement them.

    Sandbox     runs one task's phases in containers            (sandbox/)
    Repository  git on the host: checkout, patch, push           (integrations/git/)
    Forge       opens or finds the pull request for a branch     (integrations/git/, github/)
    Notifier    tells the origin what happened                   (integrations/slack/, linear/)
    ContextSource reads the conversation a request came from    (integrations/slack/, linear/)
    Queue       hands a task to a worker                         (chatops/app/queue.py)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from chatops.core.environment import Environment
from chatops.core.network import BlockedRequest
from chatops.core.task import Patch, PullRequest, Task, TaskRequest


class Phase(StrEnum):
    SETUP = "setup"
    AGENT = "agent"
    COLLECT = "collect"
    DELIVER = "deliver"


@dataclass(frozen=True)
class SandboxJob:
    """Everything the sandbox needs for one run.

    ``workspace`` is a host directory holding a git checkout of the base commit. The sandbox
    copies it into the container and, once the agent is done, replaces its working tree (never
    its ``.git``) with what the agent left, so the host can diff it with its own git.
    """

    task_id: str
    environment: Environment
    workspace: Path
    instruction: str
    context: str = ""
    # Values for the setup phase only; they never reach the agent, its image or the logs.
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Values the agent phase sees on purpose (model API keys), from ``agent.credentials``.
    agent_env: Mapping[str, str] = field(default_factory=dict)
    # Which candidate this is when a task runs several (1..N), else 0; the agent sees it.
    attempt: int = 0


@dataclass(frozen=True)
class SandboxOutcome:
    summary: str = ""


class SandboxEvents(Protocol):
    """How the sandbox reports back while it runs; implemented by the service."""

    def phase(self, phase: Phase) -> None: ...

    def log(self, phase: Phase, text: str) -> None: ...

    def blocked(self, requests: Sequence[BlockedRequest]) -> None:
        """Requests the network allowlist refused; recorded and reported with the result."""
        ...

    def cancelled(self) -> bool:
        """Polled while containers run; True makes the sandbox kill them at once."""
        ...


class Sandbox(Protocol):
    def run(self, job: SandboxJob, events: SandboxEvents) -> SandboxOutcome:
        """Provision, run the agent, collect into ``job.workspace``; containers always removed.

        Raises SandboxError subclasses (SetupFailed, AgentFailed, AgentTimedOut, ...) or
        TaskCancelled.
        """
        ...


@dataclass(frozen=True)
class CommitSpec:
    base_commit: str
    patch: Patch
    branch: str
    message: str
    author: str  # "Name <email>"; also the committer
    # Author and committer date; fixed per task so that a retried delivery makes the same commit.
    date: datetime


class Repository(Protocol):
    def checkout(self, env: Environment, dest: Path, ref: str | None = None) -> str:
        """Clone ``env.repository`` into ``dest`` at ``ref`` (default: the base branch).

        Returns the checked-out commit.
        """
        ...

    def collect_patch(self, workdir: Path) -> Patch:
        """The binary-safe diff of ``workdir``'s working tree against its HEAD."""
        ...

    def publish(self, env: Environment, commit: CommitSpec) -> str:
        """Commit ``commit.patch`` on ``commit.base_commit``, push it as ``commit.branch``.

        Returns the new commit's id. Idempotent: the same spec yields the same commit, so a
        redelivered job pushes nothing new.
        """
        ...


@dataclass(frozen=True)
class PullRequestDraft:
    branch: str
    base: str
    title: str
    body: str
    draft: bool = False


class Forge(Protocol):
    def open_pull_request(self, env: Environment, draft: PullRequestDraft) -> PullRequest:
        """Open a pull request for ``draft.branch``, or return the one already open for it."""
        ...

    def comment(self, env: Environment, number: int, body: str) -> None:
        """Add a comment to pull request ``number`` (follow-ups report what they added)."""
        ...


class Notifier(Protocol):
    def task_changed(self, task: Task) -> str | None:
        """Tell the task's origin about its state; called after every persisted change.

        ``task.status_ref`` is what an earlier call returned (say, the ts of a Slack status
        message) or empty; return the reference to reuse next time, so one message is
        updated in place rather than a new one posted per state.
        """
        ...


class ContextSource(Protocol):
    def read(self, request: TaskRequest) -> TaskRequest:
        """The request with its origin's whole conversation as context (and the origin's
        link filled in), read when the task starts so it includes everything said until then.
        """
        ...


class Queue(Protocol):
    def enqueue(self, task_id: str, queue: str, timeout_s: int) -> None: ...


class TaskDesk(Protocol):
    """The use cases as chat adapters see them (implemented by chatops.service.TaskService)."""

    def submit(self, request: TaskRequest, announce: bool = True) -> Task: ...

    def announce(self, task_id: str) -> None: ...

    def hold(self, request: TaskRequest, choices: list[str]) -> tuple[str, bool]: ...

    def resolve(self, pending_id: str, environment: str, announce: bool = True) -> Task: ...

    def cancel(self, task_id: str) -> Task: ...

    def retry(self, task_id: str, requester: str | None = None) -> Task: ...

    def pick(self, task_id: str, number: int, requester: str | None = None) -> Task: ...

    def task(self, task_id: str) -> Task: ...
