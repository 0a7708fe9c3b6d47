"""The GraphQL client, outbox, notifier and issue reader against the loopback fake Linear API
(no Docker, no Redis): authentication, bounded retries, errors, idempotent posting."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import httpx
import pytest

from chatops.core.lifecycle import TaskState
from chatops.core.task import LinearIssue, PullRequest, Task, TaskRequest
from integrations.linear import documents
from integrations.linear.client import LinearClient, authorization
from integrations.linear.errors import (
    LinearAuthError,
    LinearNotFound,
    LinearRateLimited,
    LinearUnavailable,
)
from integrations.linear.identity import BotIdentity
from integrations.linear.issue import LinearIssueReader
from integrations.linear.notifier import LinearNotifier
from integrations.linear.outbox import LinearOutbox, stable_id
from tests.fakes.linear_api import API_KEY, OAUTH_TOKEN, FakeLinear


@pytest.fixture
def fake():
    with FakeLinear() as server:
        yield server


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(fake, sleeps):
    client = LinearClient(API_KEY, fake.url, sleep=sleeps.append)
    yield client
    client.close()


def test_api_keys_go_as_is_and_oauth_tokens_as_bearer(fake):
    assert authorization(api_key="k") == "k"
    assert authorization(api_key="k", oauth_token="t") == "Bearer t"
    with pytest.raises(LinearAuthError):
        authorization()
    oauth = LinearClient(authorization(oauth_token=OAUTH_TOKEN), fake.url)
    assert oauth.execute(documents.VIEWER)["viewer"]["id"] == fake.bot_id
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {OAUTH_TOKEN}"


def test_a_refused_key_is_an_auth_error_with_the_fix(fake):
    with pytest.raises(LinearAuthError) as info:
        LinearClient("lin_api_wrong", fake.url).execute(documents.VIEWER)
    assert "LINEAR_API_KEY" in info.value.hint


@pytest.mark.parametrize("how", ["http", "graphql"])
def test_rate_limits_back_off_and_then_succeed(fake, client, sleeps, how):
    fake.rate_limit(times=2, how=how, retry_after=7)
    assert client.execute(documents.VIEWER)["viewer"]["id"] == fake.bot_id
    assert len(fake.requests) == 3
    assert sleeps == ([7.0, 7.0] if how == "http" else [1.0, 2.0])


def test_rate_limits_give_up_after_the_bounded_retries(fake, client, sleeps):
    fake.rate_limit(times=10, how="graphql")
    with pytest.raises(LinearRateLimited):
        client.execute(documents.VIEWER)
    assert len(fake.requests) == 4 and sleeps == [1.0, 2.0, 4.0]


def test_an_unreachable_server_is_retried_then_unavailable(sleeps):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = LinearClient(API_KEY, f"http://127.0.0.1:{port}/graphql", sleep=sleeps.append)
    with pytest.raises(LinearUnavailable):
        client.execute(documents.VIEWER)
    assert len(sleeps) == 3


def test_a_request_that_may_have_landed_is_retried_only_when_idempotent(sleeps):
    calls = []

    def drop(request):
        calls.append(request)
        raise httpx.ReadTimeout("no answer", request=request)

    client = LinearClient(API_KEY, "http://linear.invalid/graphql", sleep=sleeps.append,
                          transport=httpx.MockTransport(drop))
    with pytest.raises(LinearUnavailable):
        client.execute(documents.COMMENT_CREATE, {"input": {}}, idempotent=False)
    assert len(calls) == 1
    with pytest.raises(LinearUnavailable):
        client.execute(documents.VIEWER)
    assert len(calls) == 5


def test_unknown_entities_are_not_found(client):
    with pytest.raises(LinearNotFound):
        client.execute(documents.ISSUE_CONTEXT, {"id": "nope", "comments": 5})


def test_posting_the_same_activity_twice_posts_it_once(fake, client):
    team = fake.add_team("ENG")
    session = fake.add_session(fake.add_issue(team, "x"))
    outbox = LinearOutbox(client)
    first = outbox.activity(session, {"type": "thought", "body": "hi"}, seed="t1:queued")
    again = outbox.activity(session, {"type": "thought", "body": "hi"}, seed="t1:queued")
    assert first == again == stable_id("activity:t1:queued")
    assert len(fake.activities(session)) == 1
    assert len(fake.requests_for("agentActivityCreate")) == 2


def test_stable_ids_are_version_4_uuids():
    import uuid

    value = uuid.UUID(stable_id("anything"))
    assert value.version == 4 and value.variant == uuid.RFC_4122


def task(origin, state=TaskState.QUEUED, status_ref="", **fields):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Task(id="t-1", state=state, environment="ok", queue="q", created_at=now,
                updated_at=now, environment_reason="the only environment (ok)",
                status_ref=status_ref, request=TaskRequest(
                    origin=origin, requester="u", instruction="touch x"), **fields)


def test_the_notifier_keeps_one_comment_and_replaces_a_deleted_one(fake, client):
    team = fake.add_team("ENG", states=("Todo", "Doing", "Review"))
    issue = fake.add_issue(team, "x")
    notifier = LinearNotifier(LinearOutbox(client), started_state="doing",
                              review_state="Review")
    origin = LinearIssue(issue_id=issue)
    ref = notifier.task_changed(task(origin))
    assert fake.state_of(issue) == "Doing"
    assert notifier.task_changed(task(origin, TaskState.RUNNING, ref, reason="agent")) == ref
    [comment] = fake.comments(issue, by=fake.bot_id)
    assert comment["body"].startswith("🤖 **Agent running — agent**")
    del fake.data.comments[ref]
    pr = PullRequest(forge="local", number=3, url="https://forge.test/pr/3", branch="b",
                     base="main", title="T")
    new_ref = notifier.task_changed(task(origin, TaskState.SUCCEEDED, ref, pull_request=pr,
                                         diffstat="1 file changed, +1 -0"))
    assert new_ref != ref
    [comment] = fake.comments(issue, by=fake.bot_id)
    assert "https://forge.test/pr/3" in comment["body"]
    assert fake.state_of(issue) == "Review"
    assert [a["url"] for a in fake.attachments(issue)] == ["https://forge.test/pr/3"]


def test_a_failed_state_move_never_stops_the_report(fake, client):
    issue = fake.add_issue(fake.add_team("ENG"), "x")
    notifier = LinearNotifier(LinearOutbox(client), started_state="No Such State")
    assert notifier.task_changed(task(LinearIssue(issue_id=issue)))
    assert len(fake.comments(issue, by=fake.bot_id)) == 1


def test_the_reader_reads_issue_parent_and_comments_without_ours(fake, client):
    team = fake.add_team("ENG")
    alice = fake.add_user("alice")
    parent = fake.add_issue(team, "Epic", "The big picture", creator=alice)
    issue = fake.add_issue(team, "Child", "Small part", creator=alice, parent=parent)
    fake.add_comment(issue, "first", alice)
    fake.add_comment(issue, "status", fake.bot_id)
    fake.add_comment(issue, "second", alice)
    reader = LinearIssueReader(client, BotIdentity(client))  # learns its id from `viewer`
    read = reader.read(TaskRequest(origin=LinearIssue(issue_id=issue), requester="u",
                                   instruction="x"))
    assert [m.text for m in read.context] == [
        "ENG-2 Child\n\nSmall part", "Parent issue ENG-1 Epic\n\nThe big picture",
        "first", "second"]
    assert {m.author for m in read.context[2:]} == {"Alice"}
    assert read.origin.url.endswith("ENG-2") and read.origin.identifier == "ENG-2"
