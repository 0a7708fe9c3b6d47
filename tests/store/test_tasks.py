import threading

import pytest

from chatops.core.errors import InvalidTransition, TaskNotFound
from chatops.core.lifecycle import TaskState
from chatops.core.task import CliOrigin, SlackThread, TaskRequest
from chatops.store.engine import open_engine
from chatops.store.tasks import TaskStore


@pytest.fixture
def store(tmp_path):
    return TaskStore(open_engine(f"sqlite:///{tmp_path / 'chatops.db'}"))


def request(**overrides):
    fields = {"origin": CliOrigin(user="ana"), "requester": "ana", "instruction": "fix it"}
    return TaskRequest(**(fields | overrides))


def test_a_created_task_reads_back_whole(store):
    origin = SlackThread(team_id="T1", channel_id="C1", thread_ts="1.0", message_ts="1.1")
    task, created = store.create(request(origin=origin), "web", "default", "only one")
    assert created
    again = store.get(task.id)
    assert again == task
    assert again.state is TaskState.QUEUED
    assert again.request.origin == origin
    assert [t.to_state for t in store.transitions(task.id)] == [TaskState.QUEUED]


def test_a_dedupe_key_returns_the_first_task(store):
    first, created = store.create(request(dedupe_key="Ev1"), "web", "default", "")
    second, created_again = store.create(request(dedupe_key="Ev1"), "web", "default", "")
    assert created and not created_again
    assert second.id == first.id
    assert len(store.recent()) == 1


def test_concurrent_deliveries_of_one_event_make_one_task(store):
    results = []
    barrier = threading.Barrier(8)

    def deliver():
        barrier.wait()
        results.append(store.create(request(dedupe_key="Ev-race"), "web", "default", ""))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({task.id for task, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_transitions_are_recorded_with_reasons(store):
    task, _ = store.create(request(), "web", "default", "receipt")
    store.transition(task.id, TaskState.PROVISIONING, "setting up")
    store.transition(task.id, TaskState.FAILED, "setup exited 1")
    steps = store.transitions(task.id)
    assert [(s.from_state, s.to_state, s.reason) for s in steps] == [
        (None, TaskState.QUEUED, "receipt"),
        (TaskState.QUEUED, TaskState.PROVISIONING, "setting up"),
        (TaskState.PROVISIONING, TaskState.FAILED, "setup exited 1"),
    ]
    assert store.get(task.id).reason == "setup exited 1"


def test_an_illegal_transition_raises_and_changes_nothing(store):
    task, _ = store.create(request(), "web", "default", "")
    store.transition(task.id, TaskState.CANCELLED, "by request")
    with pytest.raises(InvalidTransition, match="from cancelled to provisioning"):
        store.transition(task.id, TaskState.PROVISIONING)
    assert store.get(task.id).state is TaskState.CANCELLED


def test_expect_guards_against_a_state_that_moved_on(store):
    task, _ = store.create(request(), "web", "default", "")
    store.transition(task.id, TaskState.PROVISIONING)
    with pytest.raises(InvalidTransition, match="is provisioning, not queued"):
        store.transition(task.id, TaskState.CANCELLED, expect=TaskState.QUEUED)
    assert store.get(task.id).state is TaskState.PROVISIONING


def test_racing_enders_produce_exactly_one_terminal_transition(store):
    task, _ = store.create(request(), "web", "default", "")
    store.transition(task.id, TaskState.PROVISIONING)
    barrier = threading.Barrier(2)
    outcomes = []

    def end(state):
        barrier.wait()
        try:
            store.transition(task.id, state, state.value)
            outcomes.append(state)
        except InvalidTransition:
            outcomes.append(None)

    threads = [threading.Thread(target=end, args=(s,))
               for s in (TaskState.FAILED, TaskState.CANCELLED)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1
    assert store.get(task.id).state is winners[0]
    assert sum(s.to_state.terminal for s in store.transitions(task.id)) == 1


def test_logs_read_back_in_order_and_incrementally(store):
    task, _ = store.create(request(), "web", "default", "")
    store.append_log(task.id, "setup", "one\n")
    store.append_log(task.id, "agent", "two\n")
    entries = store.logs(task.id)
    assert [(e.phase, e.text) for e in entries] == [("setup", "one\n"), ("agent", "two\n")]
    assert [e.text for e in store.logs(task.id, after=entries[0].id)] == ["two\n"]
    assert [e.text for e in store.logs(task.id, phase="setup")] == ["one\n"]


def test_results_and_binary_patches_are_stored(store):
    task, _ = store.create(request(), "web", "default", "")
    data = b"diff --git a/x b/x\nGIT binary patch\n\x00\xff\n"
    store.update(task.id, patch=data, diffstat="1 file changed, +0 -0", branch="chatops/x")
    assert store.patch(task.id) == data
    assert store.get(task.id).branch == "chatops/x"


def test_unknown_task_is_a_clear_error(store):
    with pytest.raises(TaskNotFound, match="there is no task 'nope'"):
        store.get("nope")


def test_only_one_process_may_post_the_first_status_message(store):
    task, _ = store.create(request(), "web", "default", "")
    assert store.claim_status_ref(task.id) is True
    assert store.claim_status_ref(task.id) is False
    assert store.status_ref_pending(task.id)
    assert store.get(task.id).status_ref == ""  # "pending" never leaks out
    store.set_status_ref(task.id, "1700000000.000100")
    assert store.get(task.id).status_ref == "1700000000.000100"
    assert store.claim_status_ref(task.id) is False


def test_a_held_request_settles_once(store):
    pending_id, created = store.hold(request(), ["api", "web"])
    assert created
    held, choices, task_id = store.pending(pending_id)
    assert held.instruction == "fix it" and choices == ["api", "web"] and task_id is None
    task, _ = store.create(held, "web", "default", "")
    assert store.settle(pending_id, task.id) is True
    assert store.settle(pending_id, "another") is False
    assert store.pending(pending_id)[2] == task.id
    with pytest.raises(TaskNotFound, match="no pending request"):
        store.pending("p-unknown")


def test_follow_ups_find_the_thread_task_with_a_pull_request(store):
    from chatops.core.task import PullRequest

    origin = SlackThread(team_id="T1", channel_id="C1", thread_ts="5.0", message_ts="5.0")
    elsewhere = SlackThread(team_id="T1", channel_id="C1", thread_ts="6.0", message_ts="6.0")
    first, _ = store.create(request(origin=origin), "web", "default", "")
    store.update(first.id, pull_request=PullRequest(forge="local", number=1, url="u",
                                                    branch="b", base="main", title="t"))
    store.create(request(origin=origin), "web", "default", "")  # a later one without a PR
    follow_up = request(origin=origin.model_copy(update={"message_ts": "5.9"}))
    assert store.latest_in_thread(follow_up).id == first.id
    assert store.latest_in_thread(request(origin=elsewhere)) is None
    assert store.latest_in_thread(request()) is None  # the CLI has no threads


def test_a_redelivered_request_is_held_once(store):
    first = store.hold(request(dedupe_key="slack:T1:Ev9"), ["api", "web"])
    again = store.hold(request(dedupe_key="slack:T1:Ev9"), ["api", "web"])
    assert first[1] is True and again == (first[0], False)
