"""Use cases: submit a request, run a task, cancel or retry it. Talks to ports and the store.

Best-of-N (several candidates of one task, one picked to deliver) is in chatops.candidates.

Every task ends in exactly one terminal state and carries the reason in ``Task.reason``;
``run`` turns every failure, expected or not, into that reason rather than letting it escape.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chatops.candidates import Candidates
from chatops.core import texts
from chatops.core.environment import Catalogue, Environment, LinearPlace
from chatops.core.errors import (
    ChatopsError,
    ForgeError,
    InvalidTransition,
    MissingSecret,
    NoChanges,
    NotAuthorized,
    QueueUnavailable,
    TaskCancelled,
)
from chatops.core.lifecycle import TaskState
from chatops.core.ports import (
    CommitSpec,
    ContextSource,
    Forge,
    Notifier,
    Phase,
    PullRequestDraft,
    Queue,
    Repository,
    Sandbox,
    SandboxJob,
)
from chatops.core.task import LinearIssue, Patch, SlackThread, Task, TaskRequest
from chatops.store.tasks import TaskStore
from chatops.tracking import Heartbeat, TaskEvents

log = logging.getLogger(__name__)

# Seconds a process waits for another to finish posting a task's first status message
# before it posts one of its own (only the first message is ever raced for).
STATUS_REF_WAIT_S = 10.0


@dataclass
class Services:
    """The ports a TaskService runs on, wired by chatops.app."""

    store: TaskStore
    # The current environments; a callable so that an edited file is picked up without a restart.
    catalogue: Callable[[], Catalogue]
    queue: Queue
    sandbox: Sandbox
    repository: Repository
    forges: Mapping[str, Forge]
    notifier: Notifier
    # Readers of the conversation a request came from, by origin kind ("slack", "linear").
    context_sources: Mapping[str, ContextSource] = field(default_factory=dict)
    # Where secret and credential values come from (the worker's environment).
    host_env: Mapping[str, str] = field(default_factory=dict)
    workdir: Path = Path("/tmp/chatops")
    author: str = "chatops <chatops@localhost>"
    branch_prefix: str = "chatops/"


class TaskService:
    def __init__(self, services: Services) -> None:
        self.s = services
        # Best-of-N lives in chatops.candidates; it runs on this service's helpers.
        self.candidates = Candidates(self)

    # -- submit ---------------------------------------------------------------------

    def submit(self, request: TaskRequest, announce: bool = True) -> Task:
        """Persist the request as a queued task, then hand it to a worker.

        The row is committed before the job is enqueued, so nothing is lost if Redis is down:
        the task then fails at once with the reason instead of vanishing. A new request in a
        thread that already had a task continues that task's branch and pull request.
        Raises UnknownEnvironment / AmbiguousEnvironment / NotAuthorized before anything is
        written. ``announce=False`` leaves the first notification to ``announce()``, for
        adapters that must answer their webhook before talking back to the origin.
        """
        if request.dedupe_key:
            known = self.s.store.find_by_dedupe_key(request.dedupe_key)
            if known is not None:
                return known
        request, env, why = self._place(request)
        task, created = self.s.store.create(request, env.name, env.queue,
                                            texts.environment_receipt(env.name, why))
        if not created:
            return task
        try:
            self.s.queue.enqueue(task.id, env.queue, env.job_timeout)
        except QueueUnavailable as exc:
            self._end(task.id, TaskState.FAILED, f"could not queue the task: {exc}")
            raise
        if announce:
            self.announce(task.id)
        return self.s.store.get(task.id)

    def _place(self, request: TaskRequest) -> tuple[TaskRequest, Environment, str]:
        """Choose the environment, check the requester, link a follow-up to its parent."""
        origin = request.origin
        channel = origin.channel_id if isinstance(origin, SlackThread) else None
        place = (LinearPlace(origin.teams, origin.projects, origin.labels)
                 if isinstance(origin, LinearIssue) else None)
        parent = None if request.parent_task_id else self.s.store.latest_in_thread(request)
        if parent is not None and not request.environment:
            env = self.s.catalogue().get(parent.environment)
            why = f"follow-up to task {parent.id} in this thread"
        else:
            env, why = self.s.catalogue().choose(request.environment, channel, place)
        refusal = env.refusal(request.requester, channel)
        if refusal:
            raise NotAuthorized(refusal)
        if parent is not None and parent.environment == env.name:
            request = request.model_copy(update={"parent_task_id": parent.id})
        return request, env, why

    def task(self, task_id: str) -> Task:
        return self.s.store.get(task_id)

    def announce(self, task_id: str) -> None:
        """Send the first notification of a task submitted with ``announce=False``."""
        self._notify(self.s.store.get(task_id))

    def hold(self, request: TaskRequest, choices: list[str]) -> tuple[str, bool]:
        """Keep a request whose environment must be asked for: (pending id, newly held)."""
        return self.s.store.hold(request, choices)

    def resolve(self, pending_id: str, environment: str, announce: bool = True) -> Task:
        """Submit a held request with the environment its requester picked (once).

        ``announce`` as for ``submit``."""
        request, choices, task_id = self.s.store.pending(pending_id)
        if task_id is not None:
            return self.s.store.get(task_id)
        if environment not in choices:
            raise ChatopsError(f"{environment!r} was not one of the choices",
                               f"pick one of: {', '.join(choices)}")
        task = self.submit(request.model_copy(update={
            "environment": environment, "dedupe_key": f"pending:{pending_id}"}), announce)
        self.s.store.settle(pending_id, task.id)
        return task

    def retry(self, task_id: str, requester: str | None = None) -> Task:
        """Run an ended task's request again as a new task (the Retry button)."""
        old = self.s.store.get(task_id)
        if not old.state.terminal:
            raise ChatopsError(f"task {task_id} is still {old.state.value}",
                               "wait for it to end, or cancel it first")
        return self.submit(old.request.model_copy(update={
            "environment": old.environment, "dedupe_key": None,
            "requester": requester or old.request.requester,
        }))

    def pick(self, task_id: str, number: int, requester: str | None = None) -> Task:
        """Open the pull request of candidate ``number`` of a best-of-N task (a new task)."""
        return self.candidates.pick(task_id, number, requester)

    # -- run (the worker's job) -------------------------------------------------------

    def run(self, task_id: str) -> Task:
        """Run one task to a terminal state; safe to call again for a redelivered job."""
        task = self.s.store.get(task_id)
        if task.state.terminal:
            return task
        if task.state is not TaskState.QUEUED:
            # A second delivery of a job some worker already holds (or held: if that worker
            # died, the reconciler fails the task once its heartbeat goes stale).
            log.warning("task %s is already %s; not running it twice", task_id, task.state.value)
            return task
        if self.s.store.cancel_requested(task_id):
            return self._end(task_id, TaskState.CANCELLED, "cancelled before it started")
        workdir = self.s.workdir / task_id
        try:
            with Heartbeat(self.s.store, task_id):
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
        env = self.s.catalogue().get(task.environment)
        forge = self._forge(env)
        self._move(task.id, TaskState.PROVISIONING, f"{env.name} on image {env.image}")
        if task.request.from_attempt:
            return self.candidates.deliver(task, env, forge)
        task = self._read_conversation(task)
        secrets = self._values(env, [(s.name, s.source) for s in env.secrets], "secret")
        credentials = self._values(env, [(n, n) for n in env.agent.resolved_credentials],
                                   "agent credential")
        parent = self._continued(task)
        ref = parent.branch if parent else None
        if task.request.attempts > 1:
            return self.candidates.run(task, env, workdir, ref, secrets, credentials)
        checkout = workdir / "checkout"
        base = self.s.repository.checkout(env, checkout, ref)
        self.s.store.update(task.id, base_commit=base)
        with TaskEvents(self.s.store, task.id, on_agent=lambda: self._move(
                task.id, TaskState.RUNNING, texts.agent_receipt(env))) as events:
            outcome = self.s.sandbox.run(
                self._job(task, env, checkout, secrets, credentials), events)
        patch = self.s.repository.collect_patch(checkout)
        self.s.store.update(task.id, patch=patch.data, diffstat=patch.stat,
                            summary=outcome.summary)
        if patch.empty:
            raise NoChanges("no changes: the agent finished without editing any file")
        branch = parent.branch if parent else f"{self.s.branch_prefix}{task.id}"
        task = self.s.store.update(task.id, branch=branch)
        self._move(task.id, TaskState.DELIVERING, patch.stat)
        self._deliver(task, env, forge, base, patch, follow_up=parent is not None)

    def _job(self, task: Task, env: Environment, checkout: Path, secrets: dict[str, str],
             credentials: dict[str, str], attempt: int = 0) -> SandboxJob:
        return SandboxJob(
            task_id=task.sandbox_id(attempt), environment=env,
            workspace=checkout, instruction=task.request.instruction,
            context=texts.context_markdown(task.request), secrets=secrets,
            agent_env=credentials, attempt=attempt,
        )

    def _forge(self, env: Environment) -> Forge:
        forge = self.s.forges.get(env.forge)
        if forge is None:
            raise ForgeError(
                f"environment {env.name} delivers to {env.forge}, which is not configured",
                "set GITHUB_TOKEN (or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY) for the worker",
            )
        return forge

    def _read_conversation(self, task: Task) -> Task:
        source = self.s.context_sources.get(task.request.origin.kind)
        if source is None:
            return task
        request = source.read(task.request)
        self._log(task.id, Phase.SETUP,
                  f"read {len(request.context)} message(s) of the conversation\n")
        return self.s.store.set_request(task.id, request)

    def _continued(self, task: Task) -> Task | None:
        """The earlier task whose branch a follow-up builds on, if it opened a pull request."""
        if not task.request.parent_task_id:
            return None
        parent = self.s.store.get(task.request.parent_task_id)
        return parent if parent.pull_request and parent.branch else None

    def _deliver(self, task: Task, env: Environment, forge: Forge, base: str, patch: Patch,
                 follow_up: bool) -> None:
        commit = self.s.repository.publish(env, CommitSpec(
            base_commit=base, patch=patch, branch=task.branch,
            message=texts.commit_message(task), author=self.s.author, date=task.created_at,
        ))
        self._log(task.id, Phase.DELIVER, f"pushed {commit[:12]} to {task.branch}\n")
        pr = forge.open_pull_request(env, PullRequestDraft(
            branch=task.branch, base=env.base_branch,
            title=texts.pull_request_title(task.request),
            body=texts.pull_request_body(task, task.diffstat),
            draft=env.draft,
        ))
        if follow_up:
            forge.comment(env, pr.number, texts.follow_up_comment(task, task.diffstat))
        self.s.store.update(task.id, pull_request=pr)
        verb = "updated" if follow_up else "opened"
        self._move(task.id, TaskState.SUCCEEDED, f"pull request #{pr.number} {verb}")

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
        """Tell the origin, keeping one status message per task across processes."""
        try:
            if not task.status_ref:
                if self.s.store.claim_status_ref(task.id):
                    ref = self.s.notifier.task_changed(task)
                    self.s.store.set_status_ref(task.id, ref or "")
                    return
                task = self._await_status_ref(task)
            ref = self.s.notifier.task_changed(task)
            if ref and ref != task.status_ref:
                self.s.store.set_status_ref(task.id, ref)
        except Exception:
            # A chat outage must not change the task's outcome; the store still has it.
            log.exception("notifying the origin of task %s failed", task.id)

    def _await_status_ref(self, task: Task) -> Task:
        deadline = time.monotonic() + STATUS_REF_WAIT_S
        while self.s.store.status_ref_pending(task.id) and time.monotonic() < deadline:
            time.sleep(0.1)
        fresh = self.s.store.get(task.id)
        return task.model_copy(update={"status_ref": fresh.status_ref})

    def _log(self, task_id: str, phase: Phase, text: str) -> None:
        self.s.store.append_log(task_id, phase.value, text)
