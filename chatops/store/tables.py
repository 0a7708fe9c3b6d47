"""The tables. One row per task, plus its transitions and its log lines."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel


class TaskRow(SQLModel, table=True):
    __tablename__ = "tasks"

    id: str = Field(primary_key=True)
    state: str = Field(index=True)
    reason: str = ""
    environment: str
    # Why this environment was chosen: the receipt every origin is shown.
    environment_reason: str = ""
    queue: str
    origin_kind: str = Field(index=True)
    # The normalized request, as the core's TaskRequest serializes it.
    request_json: str
    # Redelivered webhooks carry the same key; the unique index makes the second insert fail.
    dedupe_key: str | None = Field(default=None, unique=True)
    parent_id: str | None = Field(default=None, index=True)
    # The conversation the request came from (see tasks.thread_key), to find follow-ups' parent.
    thread_key: str = Field(default="", index=True)
    branch: str = ""
    base_commit: str = ""
    summary: str = ""
    diffstat: str = ""
    patch: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    pull_request_json: str = ""
    cancel_requested: bool = False
    # The origin's status message (Notifier); "pending" while one process is posting it.
    status_ref: str = ""
    # Touched by the worker while it runs the task; a stale one means the worker died.
    heartbeat_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class TransitionRow(SQLModel, table=True):
    __tablename__ = "task_transitions"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(index=True, foreign_key="tasks.id")
    from_state: str
    to_state: str
    reason: str = ""
    at: datetime


class LogRow(SQLModel, table=True):
    __tablename__ = "task_logs"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(index=True, foreign_key="tasks.id")
    phase: str
    text: str
    at: datetime


class BlockedRow(SQLModel, table=True):
    """A request the agent phase's network allowlist refused."""

    __tablename__ = "task_blocked_requests"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(index=True, foreign_key="tasks.id")
    attempt: int = 0
    method: str
    host: str
    url: str = ""
    reason: str
    at: datetime


class PendingRow(SQLModel, table=True):
    """A request waiting for its requester to pick an environment."""

    __tablename__ = "pending_requests"

    id: str = Field(primary_key=True)
    request_json: str
    choices_json: str
    # Set once answered, so a double click never makes two tasks.
    task_id: str | None = None
    created_at: datetime


class AttemptRow(SQLModel, table=True):
    """One candidate of a best-of-N task, with its own patch."""

    __tablename__ = "task_attempts"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(index=True, foreign_key="tasks.id")
    number: int
    ok: bool
    reason: str = ""
    diffstat: str = ""
    summary: str = ""
    patch: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
