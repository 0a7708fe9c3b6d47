"""What Slack (or someone pretending to be Slack) may send that must not become a task."""

from __future__ import annotations

import json
import time

import pytest

from tests.fakes.slack_signing import event_envelope, sign
from tests.slack_rig import ALICE, CHANNEL, SIGNING_SECRET

pytestmark = pytest.mark.docker


def mention_envelope(slack, text="touch x", **event_fields):
    ts = slack.fake.add_message(CHANNEL, text, user=ALICE)
    event = {"type": "app_mention", "user": ALICE, "ts": ts, "event_ts": ts, "channel": CHANNEL,
             "text": f"<@{slack.fake.bot_user_id}> {text}", **event_fields}
    return event_envelope(event, team_id=slack.fake.team_id, api_app_id=slack.fake.app_id,
                          event_id=f"Ev{ts.replace('.', '')}", bot_user_id=slack.fake.bot_user_id)


@pytest.mark.parametrize("tamper", ["unsigned", "wrong-secret", "stale", "edited-body"])
def test_unverifiable_requests_are_refused_with_401(slack, tamper):
    body = json.dumps(mention_envelope(slack)).encode()
    headers = {"Content-Type": "application/json"}
    if tamper == "wrong-secret":
        headers |= sign(body, "not-the-secret")
    elif tamper == "stale":
        headers |= sign(body, SIGNING_SECRET, timestamp=int(time.time()) - 6 * 60)
    elif tamper == "edited-body":
        headers |= sign(body, SIGNING_SECRET)
        body = body.replace(b"touch x", b"rm -rf /")
    response = slack.post(body, headers)
    assert response.status_code == 401
    assert slack.store.recent() == []


def test_malformed_json_is_a_4xx_not_a_crash(slack):
    body = b'{"type": "event_callback", "event": '
    response = slack.post(body, {"Content-Type": "application/json", **sign(body, SIGNING_SECRET)})
    assert 400 <= response.status_code < 500
    assert slack.store.recent() == []


def test_an_oversized_body_is_refused(slack):
    body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    response = slack.post(body, {"Content-Type": "application/json", **sign(body, SIGNING_SECRET)})
    assert response.status_code == 413


def test_url_verification_answers_the_challenge(slack):
    response = slack.signed({"token": "t", "challenge": "c-123", "type": "url_verification"})
    assert response.status_code == 200
    assert "c-123" in response.text


def test_unknown_event_types_are_acknowledged_and_ignored(slack):
    envelope = mention_envelope(slack)
    envelope["event"] = {"type": "reaction_added", "user": ALICE, "reaction": "tada",
                         "item": {"type": "message", "channel": CHANNEL, "ts": "1.0"},
                         "event_ts": "1.0"}
    assert slack.signed(envelope).status_code == 200
    assert slack.store.recent() == []


@pytest.mark.parametrize("fields", [
    {"bot_id": "B0OTHERBOT1"},   # another bot mentioning us
    {"subtype": "message_changed"},
])
def test_bot_and_edited_messages_never_trigger(slack, fields):
    assert slack.signed(mention_envelope(slack, **fields)).status_code == 200
    assert slack.store.recent() == []


def test_our_own_messages_never_trigger(slack):
    envelope = mention_envelope(slack)
    envelope["event"]["user"] = slack.fake.bot_user_id
    assert slack.signed(envelope).status_code == 200
    assert slack.store.recent() == []


def test_a_mention_without_an_instruction_gets_the_usage(slack):
    response, envelope = slack.mention("")
    assert response.status_code == 200
    reply = slack.fake.wait_for("chat.postMessage")[0]
    assert reply.args["thread_ts"] == envelope["event"]["ts"]
    assert "Tell me what to do" in reply.args["text"]
    assert slack.store.recent() == []


def test_an_unknown_environment_gets_a_helpful_reply(slack):
    slack.mention("env:nope touch x")
    reply = slack.fake.wait_for("chat.postMessage")[0]
    assert "no environment named 'nope' (known: ok)" in reply.args["text"]
    assert slack.store.recent() == []


def test_an_unauthorized_user_is_refused_politely(slack):
    slack.deployment.write_environments(replace=
        '[environments.restricted]\nrepository = "{repo}"\nqueue = "{queue}"\n'
        'allowed_users = ["U0NOBODY001"]\n')
    slack.mention("touch x")
    reply = slack.fake.wait_for("chat.postMessage")[0]
    assert reply.args["text"].startswith("Sorry, I can't take this one")
    assert "allowed users of environment restricted" in reply.args["text"]
    assert slack.store.recent() == []
