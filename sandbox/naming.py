"""Names and labels of what a run creates on the engine, so it can always be found again.

Every container, volume, network and snapshot image of a task carries these labels:

    chatops.managed=1          created by chatops (the reaper looks at nothing else)
    chatops.instance=NAME      which deployment made it; reapers leave other instances alone
    chatops.task=TASK_ID       the task, verbatim
    chatops.phase=PHASE        setup | agent | egress | snapshot | cache

Names are derived from the task id, so a retry of the same task finds (and clears) what an
earlier attempt left behind. Setup cache entries (``sandbox.cache``) belong to no task: their
``chatops.task`` is empty, so the per-task sweep and the reaper pass them by. A run holds the
entry it uses with a second reference, ``chatops-cache-use:<task>``, removed with the task.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

MANAGED = "chatops.managed"
INSTANCE = "chatops.instance"
TASK = "chatops.task"
PHASE = "chatops.phase"

# One engine may serve several deployments (or test sessions); each reaps only its own.
DEFAULT_INSTANCE = "default"

SNAPSHOT_REPOSITORY = "chatops-snapshot"
CACHE_REPOSITORY = "chatops-cache"
CACHE_USE_REPOSITORY = "chatops-cache-use"

# Docker object names and tags allow [A-Za-z0-9_.-], start alphanumeric, 128 chars at most.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_SLUG = 80


def slug(task_id: str) -> str:
    """``task_id`` made safe for container, volume and tag names, unique per task id."""
    cleaned = _UNSAFE.sub("-", task_id)[:_MAX_SLUG]
    if cleaned == task_id and cleaned[:1].isalnum():
        return cleaned
    # Sanitizing can map two ids to one name; a digest of the original keeps them apart.
    digest = hashlib.sha256(task_id.encode()).hexdigest()[:10]
    return f"t{cleaned}-{digest}"


@dataclass(frozen=True)
class RunNames:
    """The engine names of one task's run."""

    task_id: str
    instance: str = DEFAULT_INSTANCE

    def labels(self, phase: str) -> dict[str, str]:
        return {MANAGED: "1", INSTANCE: self.instance, TASK: self.task_id, PHASE: phase}

    def container(self, phase: str) -> str:
        return f"chatops-{slug(self.task_id)}-{phase}"

    def volume(self, purpose: str) -> str:
        return f"chatops-{slug(self.task_id)}-{purpose}"

    def network(self, purpose: str) -> str:
        return f"chatops-{slug(self.task_id)}-{purpose}"

    @property
    def snapshot_tag(self) -> str:
        return slug(self.task_id)

    @property
    def snapshot(self) -> str:
        return f"{SNAPSHOT_REPOSITORY}:{self.snapshot_tag}"

    @property
    def cache_use(self) -> str:
        """The reference by which this run holds the setup cache entry it uses."""
        return f"{CACHE_USE_REPOSITORY}:{slug(self.task_id)}"


def selector(instance: str, task_id: str | None = None) -> dict[str, Any]:
    """A docker ``filters`` value matching the instance's objects (of one task if given)."""
    wanted = [f"{MANAGED}=1", f"{INSTANCE}={instance}"]
    if task_id is not None:
        wanted.append(f"{TASK}={task_id}")
    return {"label": wanted}
