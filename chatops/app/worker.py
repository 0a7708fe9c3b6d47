"""The worker: RQ's job entry point, crash handling, and reconciliation at start.

RQ forks a work horse per job; ``run_task`` builds its own Runtime in the horse so no database
connection or Docker socket crosses the fork.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from chatops.app.settings import Settings
from chatops.app.wiring import Runtime
from chatops.core.lifecycle import TaskState
from chatops.store.tasks import utcnow

log = logging.getLogger(__name__)


def run_task(task_id: str) -> str:
    """RQ job: run one task to its end. Returns the terminal state for RQ's record."""
    runtime = Runtime(Settings.from_env())
    task = runtime.service.run(task_id)
    runtime.engine.dispose()
    return task.state.value


def reconcile(runtime: Runtime) -> list[str]:
    """Settle what a previous crash left: tasks no worker holds, containers no task owns.

    A queued task whose job vanished from Redis (a Redis restart without persistence) is
    queued again; a task past queued whose heartbeat went stale is failed with the reason.
    Returns a line per action, for the log.
    """
    actions = []
    cutoff = utcnow() - timedelta(seconds=runtime.settings.stale_after_s)
    for task in runtime.store.active():
        # Only tasks queued a while ago: a brand-new one may be between its commit and its
        # enqueue, and queueing it here too would run it twice.
        if (task.state is TaskState.QUEUED and task.created_at < cutoff
                and _job_status(runtime, task.id) is None):
            env = runtime.catalogue.get(task.environment)
            runtime.service.s.queue.enqueue(task.id, task.queue, env.job_timeout)
            actions.append(f"re-queued {task.id}: its job was missing from Redis")
    for task in runtime.store.stale(cutoff):
        runtime.service.abandon(
            task.id, f"the worker running it stopped while it was {task.state.value}")
        actions.append(f"failed {task.id}: its worker stopped while it was {task.state.value}")
    try:
        from sandbox.reaper import reap

        keep = {run for task in runtime.store.active() for run in task.sandbox_ids}
        reaped = reap(runtime.docker, keep, instance=runtime.settings.instance)
        actions += [f"removed containers left by {task_id}" for task_id in reaped]
    except Exception as exc:  # the engine may be down; the next task run will say so
        actions.append(f"could not look for leftover containers: {exc}")
    return actions


def _sweep(runtime: Runtime) -> None:
    """While this worker lives, settle what other workers left when they died: without it a
    crashed worker's task would wait for some worker to start before its origin is told."""
    while True:
        time.sleep(runtime.settings.sweep_s)
        try:
            for line in reconcile(runtime):
                log.warning("%s", line)
        except Exception:
            log.exception("the sweep for dead workers' tasks failed; trying again later")


def _preload() -> None:
    """Import what every job uses once, in the parent: each forked work horse inherits it
    instead of importing Docker, git and forge modules again per task."""
    import integrations.git.local_forge
    import integrations.git.repository  # noqa: F401
    import sandbox.docker_runner  # noqa: F401


def _job_status(runtime: Runtime, task_id: str) -> JobStatus | None:
    try:
        return Job.fetch(task_id, connection=runtime.redis).get_status()
    except NoSuchJobError:
        return None


def work(runtime: Runtime, queues: Sequence[str], burst: bool = False) -> bool:
    for line in reconcile(runtime):
        log.warning("%s", line)
    _preload()

    def horse_killed(job: Job, pid: int, status: int, rusage: Any) -> None:
        # The horse died without finishing (OOM killer, SIGKILL): its task must still end.
        reason = f"the worker process died (pid {pid}, status {status})"
        runtime.service.abandon(job.id, reason)

    sweeper = threading.Thread(target=_sweep, args=(runtime,), daemon=True, name="sweeper")
    sweeper.start()
    worker = Worker(
        [Queue(name, connection=runtime.redis) for name in queues],
        connection=runtime.redis,
        work_horse_killed_handler=horse_killed,
    )
    return bool(worker.work(burst=burst, logging_level="INFO"))
