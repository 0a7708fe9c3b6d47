"""What Linear (or someone pretending to be Linear) may send that must not become a task."""

from __future__ import annotations

import json

import pytest

from tests.linear.payloads import comment_create, issue_update, session_created, sign
from tests.linear_rig import WEBHOOK_SECRET

pytestmark = pytest.mark.docker


def assignment(linear):
    issue = linear.fake.add_issue(linear.team, "touch x")
    return issue_update(linear.fake, issue, linear.alice, assigneeId=linear.fake.bot_id)


@pytest.mark.parametrize("tamper", ["unsigned", "wrong-secret", "edited-body", "not-hex"])
def test_unverifiable_deliveries_are_refused_with_401(linear, tamper):
    body = json.dumps(assignment(linear)).encode()
    headers = {"Content-Type": "application/json"}
    if tamper == "wrong-secret":
        headers |= sign(body, "not-the-secret")
    elif tamper == "edited-body":
        headers |= sign(body, WEBHOOK_SECRET)
        body = body.replace(b"touch x", b"rm -rf /")
    elif tamper == "not-hex":
        headers["Linear-Signature"] = "sha256=zzz"
    response = linear.post(body, headers)
    assert response.status_code == 401
    assert linear.tasks() == []


@pytest.mark.parametrize("offset_ms", [-61_000, 61_000, -3_600_000])
def test_stale_or_future_timestamps_are_refused_with_401(linear, offset_ms):
    payload = assignment(linear)
    payload["webhookTimestamp"] += offset_ms
    response = linear.deliver(payload)
    assert response.status_code == 401 and "webhookTimestamp" in response.text
    assert linear.tasks() == []


def test_a_timestamp_within_the_minute_is_accepted(linear):
    payload = assignment(linear)
    payload["webhookTimestamp"] -= 50_000
    assert linear.deliver(payload).status_code == 200
    assert len(linear.tasks()) == 1


@pytest.mark.parametrize("kind,action", [("Reaction", "create"), ("Issue", "remove"),
                                         ("Comment", "update"), ("Project", "update"),
                                         ("AgentSessionEvent", "updated")])
def test_unknown_types_and_actions_are_acknowledged_and_ignored(linear, kind, action):
    payload = assignment(linear)
    payload.update(type=kind, action=action)
    response = linear.deliver(payload)
    assert response.status_code == 200 and "ignored" in response.json()
    assert linear.tasks() == []


def _drop(payload, path):
    *parents, last = path.split(".")
    target = payload
    for key in parents:
        target = target[key]
    del target[last]
    return payload


@pytest.mark.parametrize("build,path", [
    ("assignment", "type"),
    ("assignment", "webhookTimestamp"),
    ("assignment", "data"),
    ("assignment", "data.id"),
    ("assignment", "data.updatedAt"),
    ("comment", "data.body"),
    ("comment", "data.id"),
    ("session", "agentSession"),
    ("session", "agentSession.id"),
])
def test_payloads_missing_what_they_need_are_400(linear, build, path):
    fake = linear.fake
    issue = fake.add_issue(linear.team, "touch y")
    payload = {
        "assignment": lambda: issue_update(fake, issue, linear.alice, assigneeId=fake.bot_id),
        "comment": lambda: comment_create(fake, issue, "@chatops touch y", linear.alice),
        "session": lambda: session_created(fake, issue, linear.alice, "@chatops touch y")[1],
    }[build]()
    response = linear.deliver(_drop(payload, path))
    assert response.status_code == 400, response.text
    assert linear.tasks() == []


@pytest.mark.parametrize("body", [b'{"type": "Issue", "action": ', b"[1, 2]", b"\xff\xfe"])
def test_malformed_bodies_are_400(linear, body):
    response = linear.post(body, {"Content-Type": "application/json",
                                  **sign(body, WEBHOOK_SECRET)})
    assert response.status_code == 400
    assert linear.tasks() == []


def test_an_oversized_body_is_refused(linear):
    body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    response = linear.post(body, {"Content-Type": "application/json",
                                  **sign(body, WEBHOOK_SECRET)})
    assert response.status_code == 413


def test_a_prompt_without_a_body_is_400(linear):
    from tests.linear.payloads import session_prompted

    issue = linear.fake.add_issue(linear.team, "x")
    session = linear.fake.add_session(issue, creator=linear.alice)
    payload = session_prompted(linear.fake, session, linear.alice, "hello")
    del payload["agentActivity"]["content"]["body"]
    assert linear.deliver(payload).status_code == 400


def test_a_mention_without_words_works_from_the_issue_title(linear):
    issue = linear.fake.add_issue(linear.team, "touch from-title")
    linear.deliver(comment_create(linear.fake, issue, "@chatops", linear.alice))
    [task] = linear.tasks()
    assert task.request.instruction == "touch from-title"
