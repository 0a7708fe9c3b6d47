"""The Notifier for Linear issues.

In an agent session, one activity per state: a ``thought`` when queued, an ``action`` for
setting up, running the agent and opening the pull request, and a final ``response`` (the
pull request, or a stop) or ``error`` (the reason). Outside sessions, one comment on the
issue, created with the first state and edited in place after (its id is the status ref).
On success the pull request is attached to the issue; optional workflow-state moves follow
the task (started when queued, review when the pull request is ready).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chatops.core import texts
from chatops.core.lifecycle import TaskState
from chatops.core.task import LinearIssue, Task
from integrations.linear.outbox import LinearOutbox

log = logging.getLogger(__name__)


class LinearNotifier:
    def __init__(self, outbox: LinearOutbox, started_state: str = "",
                 review_state: str = "") -> None:
        self.outbox = outbox
        self.started_state = started_state
        self.review_state = review_state

    def task_changed(self, task: Task) -> str | None:
        origin = task.request.origin
        if not isinstance(origin, LinearIssue):
            return None
        # Attached first: whoever reads the closing words finds the pull request on the issue.
        self._nicety(task, origin, self._attach)
        if origin.agent_session_id:
            activity = self.outbox.activity(origin.agent_session_id, activity_content(task),
                                            seed=f"{task.id}:{task.state.value}")
            ref = task.status_ref or activity
        else:
            ref = self._status_comment(task, origin)
        self._nicety(task, origin, self._move_issue)
        return ref

    def _status_comment(self, task: Task, origin: LinearIssue) -> str:
        body = texts.linear_status_comment(task)
        if task.status_ref and self.outbox.edit_comment(task.status_ref, body):
            return task.status_ref
        # The first state, or someone deleted the comment: post one (once per state).
        seed = f"{task.id}:status" + (f":{task.state.value}" if task.status_ref else "")
        return self.outbox.comment(origin.issue_id, body, seed)

    def _nicety(self, task: Task, origin: LinearIssue,
                action: Callable[[Task, LinearIssue], None]) -> None:
        """The pull request link and state moves: niceties that never fail the report."""
        try:
            action(task, origin)
        except Exception:
            log.exception("updating Linear issue %s for task %s failed", origin.issue_id,
                          task.id)

    def _attach(self, task: Task, origin: LinearIssue) -> None:
        if task.state is TaskState.SUCCEEDED and task.pull_request:
            self.outbox.attach(origin.issue_id, task.pull_request.url,
                               texts.linear_attachment_title(task), task.diffstat)

    def _move_issue(self, task: Task, origin: LinearIssue) -> None:
        state = {TaskState.QUEUED: self.started_state,
                 TaskState.SUCCEEDED: self.review_state}.get(task.state, "")
        if state:
            self.outbox.move(origin.issue_id, state)


def activity_content(task: Task) -> dict[str, Any]:
    """The agent activity that reports ``task``'s current state."""
    state = task.state
    if state is TaskState.QUEUED:
        return {"type": "thought", "body": texts.linear_queued(task)}
    if state in texts.LINEAR_ACTIONS:
        return {"type": "action", "action": texts.LINEAR_ACTIONS[state],
                "parameter": task.reason or task.environment}
    kind = "error" if state is TaskState.FAILED else "response"
    return {"type": kind, "body": texts.linear_final(task)}
