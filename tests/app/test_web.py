"""The JSON task API over real HTTP on loopback."""

from __future__ import annotations

from contextlib import ExitStack

import httpx
import pytest

from chatops.app.settings import Settings
from chatops.app.web import MAX_BODY_BYTES
from chatops.app.wiring import Runtime
from chatops.core.task import CliOrigin, TaskRequest
from tests.serving import serving

TOKEN = "s3cret-token"
ENVIRONMENTS = '[environments.web]\nrepository = "/nonexistent.git"\nqueue = "web-tests"\n'


@pytest.fixture
def serve(tmp_path, redis_url, redis_conn):
    with ExitStack() as servers:

        def start(token: str = TOKEN) -> tuple[str, Runtime]:
            (tmp_path / "environments.toml").write_text(ENVIRONMENTS)
            runtime = Runtime(Settings.from_env({
                "CHATOPS_HOME": str(tmp_path / "state"),
                "CHATOPS_REDIS_URL": redis_url,
                "CHATOPS_ENVIRONMENTS": str(tmp_path / "environments.toml"),
                "CHATOPS_API_TOKEN": token,
            }))
            return servers.enter_context(serving(runtime)), runtime

        yield start


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def test_health_reports_database_and_redis(serve):
    base, _ = serve()
    response = httpx.get(f"{base}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_submit_list_show_and_cancel(serve, redis_conn):
    base, runtime = serve()
    created = httpx.post(f"{base}/api/tasks", headers=auth(),
                         json={"instruction": "touch x", "requester": "ci-bot"})
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["state"] == "queued" and task["environment"] == "web"
    assert redis_conn.llen("rq:queue:web-tests") == 1  # really enqueued, id = task id
    assert redis_conn.lrange("rq:queue:web-tests", 0, -1) == [task["id"].encode()]

    listed = httpx.get(f"{base}/api/tasks", headers=auth()).json()["tasks"]
    assert [t["id"] for t in listed] == [task["id"]]
    shown = httpx.get(f"{base}/api/tasks/{task['id']}", headers=auth()).json()
    assert shown["transitions"][0]["to"] == "queued"
    assert shown["requester"] == "ci-bot"

    cancelled = httpx.post(f"{base}/api/tasks/{task['id']}/cancel", headers=auth())
    assert cancelled.status_code == 202
    assert cancelled.json()["state"] == "cancelled"
    assert runtime.store.get(task["id"]).state.value == "cancelled"


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), [
    ("post", "/api/tasks", {"instruction": ""}, 400, "invalid task request"),
    ("post", "/api/tasks", {"instruction": "x", "extra": 1}, 400, "invalid task request"),
    ("post", "/api/tasks", {"instruction": "x", "environment": "nope"}, 422, "nope"),
    ("get", "/api/tasks/t0000", None, 404, "there is no task"),
    ("get", "/api/tasks/t0000/diff", None, 404, "there is no task"),
])
def test_bad_requests_get_clear_4xx(serve, method, path, body, status, needle):
    base, _ = serve()
    response = httpx.request(method.upper(), f"{base}{path}", headers=auth(), json=body)
    assert response.status_code == status
    assert needle in response.json()["error"]


def test_malformed_and_oversized_bodies(serve):
    base, _ = serve()
    bad = httpx.post(f"{base}/api/tasks", headers={**auth(), "content-type": "application/json"},
                     content=b"{not json")
    assert bad.status_code == 400
    big = httpx.post(f"{base}/api/tasks", headers=auth(),
                     content=b'{"instruction": "' + b"x" * MAX_BODY_BYTES + b'"}')
    assert big.status_code == 413


def test_the_token_is_required_and_checked(serve):
    base, _ = serve()
    assert httpx.get(f"{base}/api/tasks").status_code == 401
    assert httpx.get(f"{base}/api/tasks", headers=auth("wrong")).status_code == 401
    assert httpx.post(f"{base}/api/tasks", json={"instruction": "x"}).status_code == 401


def test_without_a_token_loopback_may_read_but_nobody_may_write(serve):
    base, runtime = serve(token="")
    assert httpx.get(f"{base}/api/tasks").status_code == 200
    refused = httpx.post(f"{base}/api/tasks", json={"instruction": "x"})
    assert refused.status_code == 403
    assert "CHATOPS_API_TOKEN" in refused.json()["fix"]
    assert runtime.store.recent() == []


def test_logs_are_readable_incrementally(serve):
    base, runtime = serve()
    task, _ = runtime.store.create(TaskRequest(origin=CliOrigin(), requester="a",
                                               instruction="x"), "web", "web-tests", "")
    runtime.store.append_log(task.id, "setup", "one\n")
    first = httpx.get(f"{base}/api/tasks/{task.id}/logs", headers=auth()).json()
    assert [e["text"] for e in first["entries"]] == ["one\n"]
    runtime.store.append_log(task.id, "agent", "two\n")
    later = httpx.get(f"{base}/api/tasks/{task.id}/logs", headers=auth(),
                      params={"after": first["last"]}).json()
    assert [(e["phase"], e["text"]) for e in later["entries"]] == [("agent", "two\n")]
    no_patch = httpx.get(f"{base}/api/tasks/{task.id}/diff", headers=auth())
    assert no_patch.status_code == 404
    assert "has no patch yet" in no_patch.json()["error"]
