"""Every way a task can go wrong ends it with the cause and the fix, and leaves nothing behind."""

from __future__ import annotations

import time

import pytest

from chatops.core.lifecycle import TaskState
from tests.deployment import kill_tree

pytestmark = pytest.mark.docker

FAILING_ENVIRONMENTS = """
[environments.broken-setup]
repository = "{repo}"
queue = "{queue}"
setup = "echo installing; exit 3"

[environments.needs-secret]
repository = "{repo}"
queue = "{queue}"
secrets = [{ name = "API_TOKEN", from_env = "CHATOPS_TEST_UNSET_TOKEN" }]

[environments.quick]
repository = "{repo}"
queue = "{queue}"
timeout = "2s"

[environments.wrong-branch]
repository = "{repo}"
base_branch = "release"
queue = "{queue}"

[environments.missing-image]
repository = "{repo}"
queue = "{queue}"
image = "chatops/does-not-exist:1"
"""


def containers_of(docker_client, task_id, **filters):
    # sparse: no per-container inspect, which would race with the removal we are checking for
    return docker_client.containers.list(
        all=True, sparse=True, filters={"label": f"chatops.task={task_id}", **filters})


def wait_for_agent_container(docker_client, task_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if containers_of(docker_client, task_id, status="running"):
            return
        time.sleep(0.1)
    raise AssertionError(f"no running container for {task_id}")


def test_each_failure_names_its_cause(deployment, docker_client):
    deployment.write_environments(FAILING_ENVIRONMENTS)
    cases = {
        deployment.submit("echo working; exit 4"): "the agent exited with status 4",
        deployment.submit("echo looked around, changed nothing"): "no changes",
        deployment.submit("true", env="broken-setup"): "the setup script exited with status 3",
        deployment.submit("touch x", env="needs-secret"):
            "CHATOPS_TEST_UNSET_TOKEN is not set in the worker's environment",
        deployment.submit("sleep 300", env="quick"): "timeout",
        deployment.submit("touch x", env="wrong-branch"): "release",
        deployment.submit("touch x", env="missing-image"): "chatops/does-not-exist:1",
    }
    deployment.work()
    store = deployment.runtime.store
    for task_id, cause in cases.items():
        task = store.get(task_id)
        assert task.state is TaskState.FAILED, (task_id, task.reason)
        assert cause in task.reason, (cause, task.reason)
        assert not containers_of(docker_client, task_id)
        assert task.pull_request is None
    shown = deployment.cli("tasks", "show", list(cases)[2]).stdout
    assert "chatops logs" in shown  # the reason says where to look


def test_a_failing_task_makes_the_waiting_exec_exit_non_zero(deployment):
    deployment.start_worker()
    result = deployment.cli("exec", "--env", "ok", "exit 9")
    assert result.returncode == 1
    assert "failed: the agent exited with status 9" in result.stdout


def test_setup_logs_can_be_read_back_after_a_failure(deployment):
    deployment.write_environments(FAILING_ENVIRONMENTS)
    task_id = deployment.submit("true", env="broken-setup")
    deployment.work()
    logs = deployment.cli("logs", task_id).stdout
    assert "installing" in logs


def test_unknown_environment_is_refused_before_anything_is_stored(deployment):
    result = deployment.cli("exec", "--env", "nope", "touch x")
    assert result.returncode == 2
    assert "no environment named 'nope' (known: ok)" in result.stderr
    assert "envs list" in result.stderr
    assert deployment.json("tasks", "list") == []


def test_a_malformed_environment_file_names_the_field(deployment):
    deployment.write_environments(replace='[environments.ok]\nrepository = "x"\ntimeout = "soon"\n')
    result = deployment.cli("envs", "list")
    assert result.returncode == 2
    assert "environments.ok.timeout: invalid duration 'soon'" in result.stderr


def test_unreachable_redis_fails_the_task_with_the_reason(deployment):
    result = deployment.cli("exec", "--env", "ok", "touch x",
                            env={"CHATOPS_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 2
    assert "cannot reach Redis" in result.stderr
    [task] = deployment.json("tasks", "list")
    assert task["state"] == "failed"
    assert "could not queue the task" in task["reason"]


def test_cancel_stops_a_running_agent_at_once(deployment, docker_client):
    deployment.start_worker()
    task_id = deployment.submit("echo started; sleep 300")
    deployment.wait_for(task_id, {"running"})
    wait_for_agent_container(docker_client, task_id)
    result = deployment.cli("cancel", task_id)
    assert result.returncode == 0
    ended = deployment.wait_for(task_id, {"cancelled", "failed", "succeeded"}, timeout=30)
    assert ended["state"] == "cancelled"
    assert not containers_of(docker_client, task_id)


def test_cancel_of_a_queued_task_ends_it_before_it_starts(deployment):
    task_id = deployment.submit("touch never")
    assert "cancelled" in deployment.cli("cancel", task_id).stdout
    deployment.work()
    task = deployment.runtime.store.get(task_id)
    assert task.state is TaskState.CANCELLED
    assert task.reason == "cancelled before it started"


def test_a_killed_worker_is_detected_and_its_container_reaped(deployment, docker_client):
    worker = deployment.start_worker()
    task_id = deployment.submit("sleep 300")
    deployment.wait_for(task_id, {"running"})
    wait_for_agent_container(docker_client, task_id)
    kill_tree(worker)  # the worker and its work horse, no clean-up
    assert containers_of(docker_client, task_id), "the crash should leave the container"
    time.sleep(1.5)
    deployment.environ["CHATOPS_STALE_AFTER"] = "1"
    deployment.work()  # a new worker reconciles on start
    task = deployment.runtime.store.get(task_id)
    assert task.state is TaskState.FAILED
    assert "worker running it stopped while it was running" in task.reason
    assert not containers_of(docker_client, task_id)


def test_a_running_worker_reports_a_dead_workers_task(deployment, docker_client):
    doomed = deployment.start_worker()
    task_id = deployment.submit("sleep 300")
    deployment.wait_for(task_id, {"running"})
    wait_for_agent_container(docker_client, task_id)
    # A second worker, already up (its start-up check finds the task alive), sweeping often;
    # 8 s is above the 5 s heartbeat, so only a dead worker's task looks stale.
    deployment.start_worker(env={"CHATOPS_STALE_AFTER": "8", "CHATOPS_SWEEP_S": "1"})
    time.sleep(1)
    kill_tree(doomed)
    ended = deployment.wait_for(task_id, {"failed", "cancelled", "succeeded"}, timeout=60)
    assert ended["state"] == "failed"
    assert "worker running it stopped while it was running" in ended["reason"]
    deadline = time.monotonic() + 30
    while containers_of(docker_client, task_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not containers_of(docker_client, task_id)
