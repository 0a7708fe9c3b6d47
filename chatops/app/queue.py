"""The Queue port on RQ: one job per task, whose id is the task id."""

from __future__ import annotations

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from chatops.core.errors import QueueUnavailable

# Seconds RQ keeps a finished job's record; the task row is the lasting record.
RESULT_TTL_S = 3600
FAILURE_TTL_S = 7 * 24 * 3600
JOB_FUNCTION = "chatops.app.worker.run_task"


class RQQueue:
    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def enqueue(self, task_id: str, queue: str, timeout_s: int) -> None:
        try:
            Queue(queue, connection=self.connection).enqueue_call(
                JOB_FUNCTION,
                args=(task_id,),
                job_id=task_id,
                # RQ's 180 s default would kill most real agent runs half way.
                timeout=timeout_s,
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
                description=f"chatops task {task_id}",
            )
        except RedisError as exc:
            raise QueueUnavailable(f"cannot reach Redis to queue task {task_id}: {exc}") from None


def connect(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
