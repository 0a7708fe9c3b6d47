"""Refused requests: stored with the task in order, capped per run, logged as they come."""

from datetime import UTC, datetime, timedelta

import pytest

from chatops.core.network import BlockedRequest
from chatops.core.task import CliOrigin, TaskRequest
from chatops.store.engine import open_engine
from chatops.store.tasks import TaskStore
from chatops.tracking import BLOCKED_CAP, TaskEvents

START = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    return TaskStore(open_engine(f"sqlite:///{tmp_path / 'chatops.db'}"))


def refused(i: int) -> BlockedRequest:
    return BlockedRequest(at=START + timedelta(seconds=i), method="GET", host=f"h{i}.test",
                          url=f"http://h{i}.test/", reason="host", attempt=2)


def test_refusals_read_back_with_the_task_in_order_and_are_logged(store):
    task, _ = store.create(TaskRequest(origin=CliOrigin(), requester="ana", instruction="x"),
                           "web", "default", "")
    with TaskEvents(store, task.id, on_agent=lambda: None) as events:
        events.blocked([refused(1), refused(0)])
        events.blocked([])
    assert store.get(task.id).blocked == (refused(0), refused(1))
    log = "".join(entry.text for entry in store.logs(task.id))
    assert "network: blocked GET http://h1.test/ at 03:00:01 (not on the allowlist)" in log


def test_a_run_records_at_most_the_cap_and_says_so_once(store):
    task, _ = store.create(TaskRequest(origin=CliOrigin(), requester="ana", instruction="x"),
                           "web", "default", "")
    with TaskEvents(store, task.id, on_agent=lambda: None) as events:
        for start in range(0, BLOCKED_CAP + 150, 50):
            events.blocked([refused(i) for i in range(start, start + 50)])
    assert len(store.get(task.id).blocked) == BLOCKED_CAP
    log = "".join(entry.text for entry in store.logs(task.id))
    assert log.count(f"over {BLOCKED_CAP} requests blocked") == 1
    assert f"h{BLOCKED_CAP - 1}.test" in log and f"h{BLOCKED_CAP}.test" not in log
