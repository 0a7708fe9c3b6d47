"""What a task is made of: where it came from, who asked, what for, with which context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chatops.core.lifecycle import TaskState
from chatops.core.network import BlockedRequest

# Candidates per task: each is a full agent container, so this bounds one request's load.
MAX_ATTEMPTS = 8


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CliOrigin(_Frozen):
    kind: Literal["cli"] = "cli"
    user: str = "cli"


class SlackThread(_Frozen):
    kind: Literal["slack"] = "slack"
    team_id: str
    channel_id: str
    thread_ts: str
    message_ts: str
    # The thread's permalink, for links back from the pull request.
    url: str = ""


class LinearIssue(_Frozen):
    kind: Literal["linear"] = "linear"
    issue_id: str
    identifier: str = ""
    agent_session_id: str | None = None
    url: str = ""
    # Where the issue sits, for environment mapping: every name each is known by.
    teams: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


Origin = Annotated[CliOrigin | SlackThread | LinearIssue, Field(discriminator="kind")]


class ContextMessage(_Frozen):
    """One message of the thread or issue the request came from."""

    author: str
    text: str
    at: datetime | None = None
    links: tuple[str, ...] = ()


class TaskRequest(_Frozen):
    """A normalized request, whichever door it came in by."""

    origin: Origin
    requester: str
    instruction: str = Field(min_length=1)
    context: tuple[ContextMessage, ...] = ()
    environment: str | None = None
    # Best-of-N: run this many candidates side by side; the requester picks one for the PR.
    attempts: int = Field(default=1, ge=1, le=MAX_ATTEMPTS)
    parent_task_id: str | None = None
    # Set on the task that delivers candidate K of its parent (the requester's pick).
    from_attempt: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS)
    # Set by adapters whose transport redelivers (Slack event ids, Linear deliveries):
    # a second request with the same key returns the first task instead of a new one.
    dedupe_key: str | None = None


class PullRequest(_Frozen):
    forge: str
    number: int
    url: str
    branch: str
    base: str
    title: str
    body: str = ""


class Patch(_Frozen):
    """A binary-safe patch (``git diff --binary``) and its stat."""

    data: bytes
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0

    @property
    def empty(self) -> bool:
        return not self.data.strip()

    @property
    def stat(self) -> str:
        files = "file" if self.files_changed == 1 else "files"
        return f"{self.files_changed} {files} changed, +{self.insertions} -{self.deletions}"


class Attempt(_Frozen):
    """One candidate of a best-of-N task."""

    number: int
    ok: bool
    reason: str = ""
    diffstat: str = ""
    summary: str = ""


class Task(_Frozen):
    """A persisted task as the service and the adapters see it."""

    id: str
    state: TaskState
    request: TaskRequest
    environment: str
    queue: str
    created_at: datetime
    updated_at: datetime
    environment_reason: str = ""
    reason: str = ""
    branch: str = ""
    base_commit: str = ""
    summary: str = ""
    diffstat: str = ""
    pull_request: PullRequest | None = None
    # The origin's handle on its status message (see Notifier); empty until one is posted.
    status_ref: str = ""
    # A best-of-N task's candidates, once they ran.
    candidates: tuple[Attempt, ...] = ()
    # What the network allowlist refused, in order; reported with the result.
    blocked: tuple[BlockedRequest, ...] = ()

    def sandbox_id(self, attempt: int = 0) -> str:
        """The id the sandbox labels a run with: the task's, or one per best-of-N candidate."""
        return f"{self.id}-{attempt}" if attempt else self.id

    @property
    def sandbox_ids(self) -> list[str]:
        """Every id this task's sandbox runs may carry (the reaper must keep them all)."""
        if self.request.attempts > 1:
            return [self.sandbox_id(n) for n in range(1, self.request.attempts + 1)]
        return [self.id]
