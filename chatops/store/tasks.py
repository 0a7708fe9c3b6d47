"""Queries over tasks: create, read, move through the lifecycle, append and read logs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chatops.core.errors import InvalidTransition, TaskNotFound
from chatops.core.lifecycle import TERMINAL_STATES, TaskState, check_transition
from chatops.core.network import BlockedRequest, BlockReason
from chatops.core.task import (
    Attempt,
    LinearIssue,
    PullRequest,
    SlackThread,
    Task,
    TaskRequest,
)
from chatops.store.tables import (
    AttemptRow,
    BlockedRow,
    LogRow,
    PendingRow,
    TaskRow,
    TransitionRow,
)

Clock = Callable[[], datetime]
# Marks a status message being posted by some process; never shown outside the store.
PENDING_REF = "pending"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_task_id() -> str:
    # Time-ordered so ids sort like tasks; 40 random bits keep concurrent submits apart.
    return f"t{int(utcnow().timestamp()):x}{secrets.token_hex(5)}"


@dataclass(frozen=True)
class LogEntry:
    id: int
    phase: str
    text: str
    at: datetime


@dataclass(frozen=True)
class Held:
    """A request waiting for (or given) its environment; ``task_id`` once answered."""

    id: str
    request: TaskRequest
    choices: tuple[str, ...]
    task_id: str | None


@dataclass(frozen=True)
class Transition:
    from_state: TaskState | None  # None for the row's creation
    to_state: TaskState
    reason: str
    at: datetime


class TaskStore:
    """All reads and writes of tasks go through here; every method is one transaction."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        # SQLite takes one writer at a time and makes the others sleep and retry, in steps of
        # up to 100 ms; queueing this process's writers on a lock instead keeps bursts fast.
        self._write_lock = (threading.Lock() if engine.dialect.name == "sqlite"
                            else contextlib.nullcontext())

    @contextlib.contextmanager
    def _write(self) -> Iterator[Session]:
        with self._write_lock, Session(self.engine) as session:
            yield session

    # -- creation and reads -------------------------------------------------------------

    def create(
        self, request: TaskRequest, environment: str, queue: str, reason: str
    ) -> tuple[Task, bool]:
        """Persist a queued task. Returns (task, created); a known dedupe key returns the old."""
        if request.dedupe_key:
            existing = self.find_by_dedupe_key(request.dedupe_key)
            if existing is not None:
                return existing, False
        now = self.clock()
        row = TaskRow(
            id=new_task_id(),
            state=TaskState.QUEUED.value,
            reason=reason,
            environment=environment,
            environment_reason=reason,
            queue=queue,
            origin_kind=request.origin.kind,
            request_json=request.model_dump_json(),
            dedupe_key=request.dedupe_key,
            parent_id=request.parent_task_id,
            thread_key=thread_key(request),
            created_at=now,
            updated_at=now,
        )
        try:
            with self._write() as session:
                session.add(row)
                session.add(TransitionRow(task_id=row.id, from_state="", to_state=row.state,
                                          reason=reason, at=now))
                session.commit()
                session.refresh(row)
        except IntegrityError:
            # Two deliveries of one event raced past the lookup: the first insert won.
            if request.dedupe_key:
                existing = self.find_by_dedupe_key(request.dedupe_key)
                if existing is not None:
                    return existing, False
            raise
        return _to_task(row), True

    def find_by_dedupe_key(self, key: str) -> Task | None:
        with Session(self.engine) as session:
            row = session.exec(select(TaskRow).where(TaskRow.dedupe_key == key)).first()
            return _to_task(row) if row else None

    def get(self, task_id: str) -> Task:
        task = _to_task(self._row(task_id))
        extra: dict[str, Any] = {"blocked": tuple(self.blocked(task_id))}
        if task.request.attempts > 1:
            extra["candidates"] = tuple(self.attempts(task_id))
        return task.model_copy(update=extra)

    def recent(self, limit: int = 50, states: set[TaskState] | None = None) -> list[Task]:
        query = select(TaskRow).order_by(col(TaskRow.created_at).desc()).limit(limit)
        if states:
            query = query.where(col(TaskRow.state).in_([s.value for s in states]))
        with Session(self.engine) as session:
            return [_to_task(row) for row in session.exec(query)]

    def active(self) -> list[Task]:
        live = set(TaskState) - TERMINAL_STATES
        return self.recent(limit=10_000, states=live)

    def patch(self, task_id: str) -> bytes | None:
        return self._row(task_id).patch

    def transitions(self, task_id: str) -> list[Transition]:
        query = (select(TransitionRow).where(TransitionRow.task_id == task_id)
                 .order_by(col(TransitionRow.id)))
        with Session(self.engine) as session:
            return [
                Transition(TaskState(r.from_state) if r.from_state else None,
                           TaskState(r.to_state), r.reason, r.at)
                for r in session.exec(query)
            ]

    # -- writes -----------------------------------------------------------------------

    def transition(
        self, task_id: str, target: TaskState, reason: str = "",
        expect: TaskState | None = None,
    ) -> Task:
        """Move a task to ``target``, checked against the lifecycle table.

        The update is a compare-and-set on the state read, so a worker and a cancelling
        user can never both win; ``expect`` additionally requires a particular current state.
        Raises InvalidTransition when the move is not allowed from the state it is in.
        """
        while True:
            current = TaskState(self._row(task_id).state)
            if expect is not None and current is not expect:
                raise InvalidTransition(
                    f"task {task_id} is {current.value}, not {expect.value}",
                    "it moved on in the meantime",
                )
            check_transition(current, target)
            now = self.clock()
            with self._write() as session:
                result = session.execute(
                    update(TaskRow)
                    .where(col(TaskRow.id) == task_id, col(TaskRow.state) == current.value)
                    .values(state=target.value, reason=reason, updated_at=now)
                )
                if result.rowcount == 0:  # type: ignore[attr-defined]
                    session.rollback()
                    continue  # somebody moved it first: re-read and re-check
                session.add(TransitionRow(task_id=task_id, from_state=current.value,
                                          to_state=target.value, reason=reason, at=now))
                session.commit()
            return self.get(task_id)

    def update(self, task_id: str, **fields: Any) -> Task:
        """Set result fields (branch, base_commit, summary, diffstat, patch, pull_request)."""
        pull_request = fields.pop("pull_request", None)
        if isinstance(pull_request, PullRequest):
            fields["pull_request_json"] = pull_request.model_dump_json()
        with self._write() as session:
            session.execute(
                update(TaskRow).where(col(TaskRow.id) == task_id)
                .values(updated_at=self.clock(), **fields)
            )
            session.commit()
        return self.get(task_id)

    def touch(self, task_id: str) -> None:
        with self._write() as session:
            session.execute(update(TaskRow).where(col(TaskRow.id) == task_id)
                            .values(heartbeat_at=self.clock()))
            session.commit()

    def stale(self, older_than: datetime) -> list[Task]:
        """Tasks past queued whose worker has not touched them since ``older_than``."""
        live = [s.value for s in TaskState if not s.terminal and s is not TaskState.QUEUED]
        query = select(TaskRow).where(
            col(TaskRow.state).in_(live),
            (col(TaskRow.heartbeat_at) < older_than) | col(TaskRow.heartbeat_at).is_(None),
        )
        with Session(self.engine) as session:
            return [_to_task(row) for row in session.exec(query)]

    def claim_status_ref(self, task_id: str) -> bool:
        """Take the right to post the task's first status message; True for one caller only."""
        with self._write() as session:
            result = session.execute(
                update(TaskRow).where(col(TaskRow.id) == task_id, col(TaskRow.status_ref) == "")
                .values(status_ref=PENDING_REF))
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def set_status_ref(self, task_id: str, ref: str) -> None:
        with self._write() as session:
            session.execute(update(TaskRow).where(col(TaskRow.id) == task_id)
                            .values(status_ref=ref))
            session.commit()

    def status_ref_pending(self, task_id: str) -> bool:
        return self._row(task_id).status_ref == PENDING_REF

    def latest_in_thread(self, request: TaskRequest) -> Task | None:
        """The task a new request in the same thread or issue follows up on, if any:
        the newest one that opened a pull request, else the newest one."""
        key = thread_key(request)
        if not key:
            return None
        query = (select(TaskRow).where(TaskRow.origin_kind == request.origin.kind,
                                       TaskRow.thread_key == key)
                 .order_by(col(TaskRow.created_at).desc()).limit(50))
        with Session(self.engine) as session:
            rows = list(session.exec(query))
        chosen = next((row for row in rows if row.pull_request_json), rows[0] if rows else None)
        return _to_task(chosen) if chosen else None

    def set_request(self, task_id: str, request: TaskRequest) -> Task:
        """Replace the stored request (the worker adds the conversation it read)."""
        return self.update(task_id, request_json=request.model_dump_json())

    # -- requests waiting for an answer --------------------------------------------------

    def hold(self, request: TaskRequest, choices: list[str]) -> tuple[str, bool]:
        """Keep a request until its environment is picked. Returns (id, created): a
        redelivered request (same dedupe key) gets the id it had, and created=False."""
        if request.dedupe_key:
            digest = hashlib.sha256(request.dedupe_key.encode()).hexdigest()[:16]
            pending_id = f"p{digest}"
        else:
            pending_id = f"p{secrets.token_hex(8)}"
        try:
            with self._write() as session:
                session.add(PendingRow(id=pending_id, request_json=request.model_dump_json(),
                                       choices_json=json.dumps(choices),
                                       created_at=self.clock()))
                session.commit()
        except IntegrityError:
            return pending_id, False
        return pending_id, True

    def pending(self, pending_id: str) -> tuple[TaskRequest, list[str], str | None]:
        with Session(self.engine) as session:
            row = session.get(PendingRow, pending_id)
        if row is None:
            raise TaskNotFound(f"there is no pending request {pending_id!r}",
                               "it may have expired; mention the bot again")
        return (TaskRequest.model_validate_json(row.request_json), json.loads(row.choices_json),
                row.task_id)

    def held(self, limit: int = 200) -> list[Held]:
        """The newest held requests, answered or not (adapters match answers to them)."""
        query = select(PendingRow).order_by(col(PendingRow.created_at).desc()).limit(limit)
        with Session(self.engine) as session:
            return [Held(row.id, TaskRequest.model_validate_json(row.request_json),
                         tuple(json.loads(row.choices_json)), row.task_id)
                    for row in session.exec(query)]

    def settle(self, pending_id: str, task_id: str) -> bool:
        """Record the task a pending request became; False if another answer won."""
        with self._write() as session:
            result = session.execute(
                update(PendingRow).where(col(PendingRow.id) == pending_id,
                                         col(PendingRow.task_id).is_(None))
                .values(task_id=task_id))
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- best-of-N candidates ------------------------------------------------------------

    def save_attempt(self, task_id: str, attempt: Attempt, patch: bytes | None) -> None:
        with self._write() as session:
            session.add(AttemptRow(task_id=task_id, number=attempt.number, ok=attempt.ok,
                                   reason=attempt.reason, diffstat=attempt.diffstat,
                                   summary=attempt.summary, patch=patch))
            session.commit()

    def attempts(self, task_id: str) -> list[Attempt]:
        query = (select(AttemptRow).where(AttemptRow.task_id == task_id)
                 .order_by(col(AttemptRow.number)))
        with Session(self.engine) as session:
            return [Attempt(number=r.number, ok=r.ok, reason=r.reason, diffstat=r.diffstat,
                            summary=r.summary) for r in session.exec(query)]

    def attempt_patch(self, task_id: str, number: int) -> bytes | None:
        query = select(AttemptRow).where(AttemptRow.task_id == task_id,
                                         AttemptRow.number == number)
        with Session(self.engine) as session:
            row = session.exec(query).first()
        if row is None:
            raise TaskNotFound(f"task {task_id} has no attempt {number}",
                               f"`chatops tasks show {task_id}` lists its attempts")
        return row.patch

    def request_cancel(self, task_id: str) -> None:
        self.update(task_id, cancel_requested=True)

    def cancel_requested(self, task_id: str) -> bool:
        with Session(self.engine) as session:
            row = session.get(TaskRow, task_id)
            return bool(row and row.cancel_requested)

    # -- what the network allowlist refused ---------------------------------------------

    def add_blocked(self, task_id: str, requests: Sequence[BlockedRequest]) -> None:
        with self._write() as session:
            session.add_all(BlockedRow(task_id=task_id, attempt=r.attempt, method=r.method,
                                       host=r.host, url=r.url, reason=r.reason, at=r.at)
                            for r in requests)
            session.commit()

    def blocked(self, task_id: str) -> list[BlockedRequest]:
        query = (select(BlockedRow).where(BlockedRow.task_id == task_id)
                 .order_by(col(BlockedRow.at), col(BlockedRow.id)))
        with Session(self.engine) as session:
            return [BlockedRequest(at=_aware(r.at), method=r.method, host=r.host, url=r.url,
                                   reason=cast(BlockReason, r.reason), attempt=r.attempt)
                    for r in session.exec(query)]

    # -- logs -------------------------------------------------------------------------

    def append_log(self, task_id: str, phase: str, text: str) -> None:
        with self._write() as session:
            session.add(LogRow(task_id=task_id, phase=phase, text=text, at=self.clock()))
            session.commit()

    def logs(self, task_id: str, after: int = 0, phase: str | None = None) -> list[LogEntry]:
        query = (select(LogRow).where(LogRow.task_id == task_id, col(LogRow.id) > after)
                 .order_by(col(LogRow.id)))
        if phase:
            query = query.where(LogRow.phase == phase)
        with Session(self.engine) as session:
            return [LogEntry(r.id or 0, r.phase, r.text, r.at) for r in session.exec(query)]

    def _row(self, task_id: str) -> TaskRow:
        with Session(self.engine) as session:
            row = session.get(TaskRow, task_id)
        if row is None:
            raise TaskNotFound(f"there is no task {task_id!r}")
        return row


def thread_key(request: TaskRequest) -> str:
    """One string per conversation: a Slack thread, a Linear issue; empty for the CLI."""
    origin = request.origin
    if isinstance(origin, SlackThread):
        return f"{origin.team_id}/{origin.channel_id}/{origin.thread_ts}"
    if isinstance(origin, LinearIssue):
        return origin.issue_id
    return ""


def _to_task(row: TaskRow) -> Task:
    pull_request = (PullRequest.model_validate_json(row.pull_request_json)
                    if row.pull_request_json else None)
    return Task(
        id=row.id,
        state=TaskState(row.state),
        request=TaskRequest.model_validate_json(row.request_json),
        environment=row.environment,
        environment_reason=row.environment_reason,
        queue=row.queue,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        reason=row.reason,
        branch=row.branch,
        base_commit=row.base_commit,
        summary=row.summary,
        diffstat=row.diffstat,
        pull_request=pull_request,
        status_ref="" if row.status_ref == PENDING_REF else row.status_ref,
    )


def _aware(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; every time we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)

