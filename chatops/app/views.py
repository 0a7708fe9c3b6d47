"""Tasks as plain data, shared by the CLI's --json output and the JSON task API."""

from __future__ import annotations

from typing import Any

from chatops.core.environment import Environment
from chatops.core.task import Task
from chatops.store.tasks import TaskStore


def task_view(task: Task, store: TaskStore | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": task.id,
        "state": task.state.value,
        "reason": task.reason,
        "environment": task.environment,
        "environment_reason": task.environment_reason,
        "queue": task.queue,
        "origin": task.request.origin.model_dump(),
        "requester": task.request.requester,
        "instruction": task.request.instruction,
        "parent_task_id": task.request.parent_task_id,
        "attempts_requested": task.request.attempts,
        "from_attempt": task.request.from_attempt,
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
        "branch": task.branch,
        "base_commit": task.base_commit,
        "diffstat": task.diffstat,
        "summary": task.summary,
        "pull_request": task.pull_request.model_dump() if task.pull_request else None,
        "blocked": [b.model_dump(mode="json") for b in task.blocked],
    }
    if store is not None:
        view["attempts"] = [a.model_dump() for a in store.attempts(task.id)]
        view["transitions"] = [
            {"from": t.from_state.value if t.from_state else None, "to": t.to_state.value,
             "reason": t.reason, "at": t.at.isoformat()}
            for t in store.transitions(task.id)
        ]
    return view


def environment_view(env: Environment) -> dict[str, Any]:
    return {
        "name": env.name,
        "description": env.description,
        "repository": env.repository,
        "base_branch": env.base_branch,
        "image": env.image,
        "agent": env.agent.preset or "command",
        "network": env.network.model_dump(mode="json"),
        "queue": env.queue,
        "forge": env.forge,
        "timeout_s": env.timeout,
        "secrets": [s.name for s in env.secrets],
        "resources": env.resources.model_dump(),
    }
