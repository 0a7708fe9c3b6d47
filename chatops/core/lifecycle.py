"""Task states and the transitions allowed between them.

    queued ─> provisioning ─> running ─> delivering ─> succeeded
       │            │            │            │
       └────────────┴────────────┴────────────┴──> failed | cancelled

Terminal states never change again: a task that ended is reported, not revived; a retry is
a new task linked to the old one.
"""

from __future__ import annotations

from enum import StrEnum

from chatops.core.errors import InvalidTransition


class TaskState(StrEnum):
    QUEUED = "queued"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    DELIVERING = "delivering"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})

_ENDINGS = {TaskState.FAILED, TaskState.CANCELLED}

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.PROVISIONING, *_ENDINGS}),
    TaskState.PROVISIONING: frozenset({TaskState.RUNNING, *_ENDINGS}),
    TaskState.RUNNING: frozenset({TaskState.DELIVERING, *_ENDINGS}),
    TaskState.DELIVERING: frozenset({TaskState.SUCCEEDED, *_ENDINGS}),
    TaskState.SUCCEEDED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}


def check_transition(current: TaskState, target: TaskState) -> None:
    """Raise InvalidTransition unless ``current -> target`` is in the table."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing"
        raise InvalidTransition(
            f"cannot move a task from {current.value} to {target.value}",
            f"from {current.value} it may move to: {allowed}",
        )
