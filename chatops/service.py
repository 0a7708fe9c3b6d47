"""Use cases: submit a request, run a task, cancel it. Talks to ports and the store only.

Every task ends in exactly one terminal state and carries the reason in ``Task.reason``;
``run`` turns every failure, expected or not, into that reason rather than letting it escape.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chatops.core import texts
from chatops.core.environment import Catalogue, Environment
from chatops.core.errors import (
    ChatopsError,
    InvalidTransition,
    MissingSecret,
    NoChanges,
    QueueUnavailable,
    TaskCancelled,
)
from chatops.core.lifecycle import TaskState
from chatops.core.ports import (
    CommitSpec,
    Forge,
    Notifier,
    Phase,
    PullRequestDraft,
    Queue,
    Repository,
    Sandbox,
    SandboxJob,
)
from chatops.core.task import Patch, Task, TaskRequest
from chatops.store.tasks import TaskStore

log = logging.getLogger(__name__)

# Seconds between checks of the cancel flag while a container runs: fast enough to feel instant.
CANCEL_POLL_S = 0.5
# Log lines are written in batches at most this far apart (seconds) or this large (bytes).
LOG_FLUSH_S = 0.5
LOG_FLUSH_BYTES = 64 * 1024
# Per task; an agent that prints more gets a note instead of filling the database.
LOG_CAP_BYTES = 8 * 1024 * 1024
# Seconds between heartbeats of a running task; a long silence means its worker died.
HEARTBEAT_S = 5.0


@dataclass
class Services:
    """The ports a TaskService runs on, wired by chatops.app."""

    store: TaskStore
    catalogue: Catalogue
    queue: Queue
    sandbox: Sandbox
    repository: Repository
    forges: Mapping[str, Forge]
    notifier: Notifier
    # Where secret and credential values come from (the worker's environment).
    host_env: Mapping[str, str] = field(default_factory=dict)
    workdir: Path = Path("/tmp/chatops")
    author: str = "chatops <chatops@localhost>"
    branch_prefix: str = "chatops/"


class TaskService:
    def __init__(self, services: Services) -> None:
        self.s = services

    # -- submit ---------------------------------------------------------------------

    def submit(self, request: TaskRequest) -> Task:
        """Persist the request as a queued task, then hand it to a worker.

        The row is committed before the job is enqueued, so nothing is lost if Redis is down:
        the task then fails at once with the reason instead of vanishing.
        Raises UnknownEnvironment before anything is written when no environment fits.
        """
        env, why = self.s.catalogue.choose(request.environment)
        receipt = texts.environment_receipt(env.name, why)
        task, created = self.s.store.create(request, env.name, env.queue, receipt)
        if not created:
            return task
        self._notify(task)
        try:
            self.s.queue.enqueue(task.id, env.queue, env.job_timeout)
        except QueueUnavailable as exc:
            self._end(task.id, TaskState.FAILED, f"could not queue the task: {exc}")
            raise
        return self.s.store.get(task.id)

    # -- run (the worker's job) -------------------------------------------------------

    def run(self, task_id: str) -> Task:
        """Run one task to a terminal state; safe to call again for a redelivered job."""
        task = self.s.store.get(task_id)
        if task.state.terminal:
            return task
        if task.state is not TaskState.QUEUED:
            return self._end(task_id, TaskState.FAILED,
                             f"the worker running it stopped while it was {task.state.value}")
        if self.s.store.cancel_requested(task_id):
            return self._end(task_id, TaskState.CANCELLED, "cancelled before it started")
        workdir = self.s.workdir / task_id
        try:
            with _Heartbeat(self.s.store, task_id):
                self._run(task, workdir)
        except TaskCancelled as exc:
            self._end(task_id, TaskState.CANCELLED, exc.message)
        except ChatopsError as exc:
            self._end(task_id, TaskState.FAILED, str(exc))
        except Exception as exc:
            log.exception("task %s failed unexpectedly", task_id)
            self._end(task_id, TaskState.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return self.s.store.get(task_id)

    def _run(self, task: Task, workdir: Path) -> None:
        env = self.s.catalogue.get(task.environment)
        self._move(task.id, TaskState.PROVISIONING, f"{env.name} on image {env.image}")
        secrets = self._values(env, [(s.name, s.source) for s in env.secrets], "secret")
        credentials = self._values(env, [(n, n) for n in env.agent.resolved_credentials],
                                   "agent credential")
        checkout = workdir / "checkout"
        base = self.s.repository.checkout(env, checkout)
        self.s.store.update(task.id, base_commit=base)
        with _TaskEvents(self, task.id, env) as events:
            outcome = self.s.sandbox.run(
                SandboxJob(
                    task_id=task.id, environment=env, workspace=checkout,
                    instruction=task.request.instruction,
                    context=texts.context_markdown(task.request),
                    secrets=secrets, agent_env=credentials,
                ),
                events,
            )
        patch = self.s.repository.collect_patch(checkout)
        self.s.store.update(task.id, patch=patch.data, diffstat=patch.stat,
                            summary=outcome.summary)
        if patch.empty:
            raise NoChanges("no changes: the agent finished without editing any file")
        task = self.s.store.update(task.id, branch=f"{self.s.branch_prefix}{task.id}")
        self._move(task.id, TaskState.DELIVERING, patch.stat)
        self._deliver(task, env, base, patch)

    def _deliver(self, task: Task, env: Environment, base: str, patch: Patch) -> None:
        commit = self.s.repository.publish(env, CommitSpec(
            base_commit=base, patch=patch, branch=task.branch,
            message=texts.commit_message(task), author=self.s.author, date=task.created_at,
        ))
        self._log(task.id, Phase.DELIVER, f"pushed {commit[:12]} to {task.branch}\n")
        forge = self.s.forges[env.forge]
        pr = forge.open_pull_request(env, PullRequestDraft(
            branch=task.branch, base=env.base_branch,
            title=texts.pull_request_title(task.request),
            body=texts.pull_request_body(task, patch.stat),
        ))
        self.s.store.update(task.id, pull_request=pr)
        self._move(task.id, TaskState.SUCCEEDED, f"pull request #{pr.number} opened")

    def _values(self, env: Environment, names: list[tuple[str, str]], kind: str) -> dict[str, str]:
        values = {}
        for name, source in names:
            value = self.s.host_env.get(source)
            if value is None:
                raise MissingSecret(
                    f"the {kind} {name} of environment {env.name} has no value: "
                    f"{source} is not set in the worker's environment",
                    f"export {source}=... where the worker runs, then retry",
                )
            values[name] = value
        return values

    # -- cancel -----------------------------------------------------------------------

    def cancel(self, task_id: str) -> Task:
        """Ask for a task to stop. A queued task ends at once; a running one within a poll."""
        task = self.s.store.get(task_id)
        if task.state.terminal:
            return task
        self.s.store.request_cancel(task_id)
        try:
            return self._end(task_id, TaskState.CANCELLED, "cancelled before it started",
                             expect=TaskState.QUEUED)
        except InvalidTransition:
            return self.s.store.get(task_id)  # a worker has it; the sandbox stops it

    def abandon(self, task_id: str, reason: str) -> None:
        """End a task whose worker died; used by the worker's crash handler and reconciler."""
        try:
            task = self.s.store.get(task_id)
        except ChatopsError:
            return
        if not task.state.terminal:
            self._end(task_id, TaskState.FAILED, reason)

    # -- helpers ----------------------------------------------------------------------

    def _move(self, task_id: str, state: TaskState, reason: str) -> Task:
        if self.s.store.cancel_requested(task_id):
            raise TaskCancelled("cancelled by request")
        task = self.s.store.transition(task_id, state, reason)
        self._notify(task)
        return task

    def _end(self, task_id: str, state: TaskState, reason: str,
             expect: TaskState | None = None) -> Task:
        try:
            task = self.s.store.transition(task_id, state, reason, expect=expect)
        except InvalidTransition:
            if expect is not None:
                raise
            return self.s.store.get(task_id)  # ended already (cancelled while we worked)
        self._notify(task)
        return task

    def _notify(self, task: Task) -> None:
        try:
            self.s.notifier.task_changed(task)
        except Exception:
            # A chat outage must not change the task's outcome; the store still has it.
            log.exception("notifying the origin of task %s failed", task.id)

    def _log(self, task_id: str, phase: Phase, text: str) -> None:
        self.s.store.append_log(task_id, phase.value, text)


class _Heartbeat:
    """Touches the task every HEARTBEAT_S while the worker holds it."""

    def __init__(self, store: TaskStore, task_id: str) -> None:
        self.store = store
        self.task_id = task_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"beat-{task_id}")

    def __enter__(self) -> _Heartbeat:
        self.store.touch(self.task_id)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.store.touch(self.task_id)
            except Exception:
                log.exception("heartbeat of task %s failed", self.task_id)


class _TaskEvents:
    """The sandbox's view of the task: phase changes, buffered logs, the cancel flag."""

    def __init__(self, service: TaskService, task_id: str, env: Environment,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.task_id = task_id
        self.env = env
        self.clock = clock
        self._lock = threading.Lock()
        self._buffer: list[tuple[str, str]] = []
        self._buffered = 0
        self._written = 0
        self._last_flush = clock()
        self._last_poll = 0.0
        self._cancelled = False

    def __enter__(self) -> _TaskEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def phase(self, phase: Phase) -> None:
        self.flush()
        if phase is Phase.AGENT:
            self.service._move(self.task_id, TaskState.RUNNING, texts.agent_receipt(self.env))

    def log(self, phase: Phase, text: str) -> None:
        with self._lock:
            if self._written + self._buffered > LOG_CAP_BYTES:
                return
            self._buffer.append((phase.value, text))
            self._buffered += len(text)
            if self._written + self._buffered > LOG_CAP_BYTES:
                self._buffer.append((phase.value, "\n[log truncated: over the per-task cap]\n"))
            due = (self._buffered >= LOG_FLUSH_BYTES
                   or self.clock() - self._last_flush >= LOG_FLUSH_S)
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._buffer = self._buffer, []
            self._written += self._buffered
            self._buffered = 0
            self._last_flush = self.clock()
        merged: list[tuple[str, str]] = []
        for phase, text in pending:
            if merged and merged[-1][0] == phase:
                merged[-1] = (phase, merged[-1][1] + text)
            else:
                merged.append((phase, text))
        for phase, text in merged:
            self.service.s.store.append_log(self.task_id, phase, text)

    def cancelled(self) -> bool:
        now = self.clock()
        if not self._cancelled and now - self._last_poll >= CANCEL_POLL_S:
            self._last_poll = now
            self._cancelled = self.service.s.store.cancel_requested(self.task_id)
        if self.clock() - self._last_flush >= LOG_FLUSH_S:
            self.flush()
        return self._cancelled

