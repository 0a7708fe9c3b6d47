"""Tasks: the ids their sandbox runs carry."""

from datetime import UTC, datetime

from chatops.core.lifecycle import TaskState
from chatops.core.task import CliOrigin, Task, TaskRequest

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def _task(attempts: int) -> Task:
    return Task(id="t1", state=TaskState.RUNNING, environment="web", queue="default",
                created_at=NOW, updated_at=NOW,
                request=TaskRequest(instruction="x", requester="ann", origin=CliOrigin(),
                                    attempts=attempts))


def test_a_best_of_n_task_names_every_candidates_sandbox_run():
    # The reaper keeps what running tasks use: it must know each candidate's run id.
    single = _task(1)
    assert single.sandbox_ids == ["t1"] and single.sandbox_id() == "t1"
    assert _task(3).sandbox_ids == ["t1-1", "t1-2", "t1-3"]
