"""Best-of-N: run several candidates of one task side by side, then deliver the one picked.

A task asking for more than one attempt does not open a pull request itself. Its candidates
run in parallel, each one's patch is stored, and the task succeeds with a prompt to pick.
Picking candidate K submits a new task that delivers K's stored patch without running the
agent again. The steps shared with a single run (state moves, notifications, sandbox jobs,
delivery) stay in TaskService; this module only decides when to take them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from chatops.core import texts
from chatops.core.environment import Environment
from chatops.core.errors import ChatopsError, NoChanges, TaskCancelled
from chatops.core.lifecycle import TaskState
from chatops.core.ports import Forge
from chatops.core.task import Attempt, Patch, Task
from chatops.tracking import Once, TaskEvents

if TYPE_CHECKING:
    # Only for annotations: chatops.service imports this module to build its Candidates.
    from chatops.service import TaskService


class Candidates:
    """The best-of-N use cases of a TaskService, built on its helpers.

    Holds the service rather than copies of its parts so that a candidate moves, notifies and
    delivers exactly as a single run does.
    """

    def __init__(self, service: TaskService) -> None:
        self.service = service
        self.s = service.s

    def run(self, task: Task, env: Environment, workdir: Path, ref: str | None,
            secrets: dict[str, str], credentials: dict[str, str]) -> None:
        """Run the candidates side by side, keep each one's patch, let the requester pick
        (``pick``); one failing candidate does not fail the others."""
        service = self.service
        count = task.request.attempts
        # Every candidate reports its agent starting; the task moves to RUNNING only once.
        running = Once(lambda: service._move(
            task.id, TaskState.RUNNING, f"{texts.agent_receipt(env)}, {count} attempts"))

        # One base for all: the first checkout pins the commit and the others fetch exactly
        # it, so a picked candidate is published on the commit it was made from even if the
        # branch moved meanwhile.
        base = self.s.repository.checkout(env, workdir / "checkout-1", ref)

        def candidate(number: int) -> tuple[Attempt, bytes | None]:
            checkout = workdir / f"checkout-{number}"
            if number > 1:
                self.s.repository.checkout(env, checkout, base)
            try:
                with TaskEvents(self.s.store, task.id, on_agent=running,
                                prefix=f"[attempt {number}] ") as events:
                    outcome = self.s.sandbox.run(
                        service._job(task, env, checkout, secrets, credentials, number), events)
                patch = self.s.repository.collect_patch(checkout)
            except ChatopsError as exc:
                # A cancel stops the whole task; any other failure only this candidate.
                if isinstance(exc, TaskCancelled):
                    raise
                return Attempt(number=number, ok=False, reason=str(exc)), None
            if patch.empty:
                return Attempt(number=number, ok=False, reason="no changes"), None
            return Attempt(number=number, ok=True, diffstat=patch.stat,
                           summary=outcome.summary), patch.data

        with ThreadPoolExecutor(max_workers=count, thread_name_prefix=task.id) as pool:
            results = list(pool.map(candidate, range(1, count + 1)))
        for attempt, patch_data in results:
            self.s.store.save_attempt(task.id, attempt, patch_data)
        attempts = [attempt for attempt, _ in results]
        good = [attempt for attempt in attempts if attempt.ok]
        self.s.store.update(task.id, base_commit=base, summary=texts.attempts_summary(attempts))
        if not good:
            raise NoChanges(f"none of the {count} attempts produced a change: "
                            + "; ".join(f"{a.number}: {a.reason}" for a in attempts))
        service._move(task.id, TaskState.DELIVERING, f"{len(good)} of {count} attempts ready")
        service._move(task.id, TaskState.SUCCEEDED, texts.pick_prompt(len(good), count))

    def pick(self, task_id: str, number: int, requester: str | None = None) -> Task:
        """Open the pull request of candidate ``number`` of a best-of-N task (a new task)."""
        task = self.s.store.get(task_id)
        chosen = {a.number: a for a in self.s.store.attempts(task_id)}.get(number)
        if chosen is None or not chosen.ok:
            why = chosen.reason if chosen else "there is no such attempt"
            raise ChatopsError(f"attempt {number} of task {task_id} cannot be delivered: {why}",
                               f"`chatops tasks show {task_id}` lists its attempts")
        # The dedupe key makes a double click (or a second pick of K) return the same task.
        return self.service.submit(task.request.model_copy(update={
            "attempts": 1, "from_attempt": number, "parent_task_id": task_id,
            "environment": task.environment, "requester": requester or task.request.requester,
            "dedupe_key": f"pick:{task_id}:{number}",
        }))

    def deliver(self, task: Task, env: Environment, forge: Forge) -> None:
        """The delivery of a picked candidate: its stored patch, no agent run."""
        service = self.service
        parent = self.s.store.get(task.request.parent_task_id or "")
        number = task.request.from_attempt or 0
        chosen = {a.number: a for a in self.s.store.attempts(parent.id)}[number]
        data = self.s.store.attempt_patch(parent.id, number) or b""
        service._move(task.id, TaskState.RUNNING, f"using attempt {number} of task {parent.id}")
        task = self.s.store.update(task.id, patch=data, diffstat=chosen.diffstat,
                                   summary=chosen.summary, base_commit=parent.base_commit,
                                   branch=f"{self.s.branch_prefix}{task.id}")
        service._move(task.id, TaskState.DELIVERING, chosen.diffstat)
        service._deliver(task, env, forge, parent.base_commit, Patch(data=data), follow_up=False)
