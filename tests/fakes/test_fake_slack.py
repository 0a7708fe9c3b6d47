"""FakeSlack behaves like the Slack Web API for the real slack_sdk WebClient.

Also checks the signing helpers against slack_sdk's own verifier, so a test that signs with
them proves what Slack's signature would prove.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import Clock, SignatureVerifier

from tests.fakes import FakeSlack
from tests.fakes.slack_signing import block_actions_form, event_envelope, sign

CHANNEL = "C0CHAN00001"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    return WebClient(token=slack.bot_token, base_url=slack.base_url)


def test_base_url_is_a_loopback_api_root(slack: FakeSlack) -> None:
    assert slack.base_url == f"http://127.0.0.1:{slack.port}/api/"


def test_auth_test_names_the_bot(slack: FakeSlack, client: WebClient) -> None:
    answer = client.auth_test()
    assert answer["user_id"] == slack.bot_user_id
    assert answer["bot_id"] == slack.bot_id
    assert answer["team_id"] == slack.team_id
    assert answer["url"] == "https://example.slack.test/"
    (call,) = slack.calls_to("auth.test")
    assert call.headers["Authorization"] == f"Bearer {slack.bot_token}"


def test_post_then_update_then_replies_shows_the_edit(slack: FakeSlack, client: WebClient) -> None:
    thread = slack.add_thread(CHANNEL, [{"user": "U0ALICE0001", "text": "<@U0BOT000001> fix"}])
    posted = client.chat_postMessage(channel=CHANNEL, thread_ts=thread, text="Queued")
    assert posted["channel"] == CHANNEL
    assert posted["ts"] > thread
    assert posted["message"]["thread_ts"] == thread
    assert posted["message"]["bot_id"] == slack.bot_id

    updated = client.chat_update(channel=CHANNEL, ts=posted["ts"], text="Running")
    assert updated["ts"] == posted["ts"]
    assert updated["message"]["text"] == "Running"
    assert "edited" in updated["message"]

    replies = client.conversations_replies(channel=CHANNEL, ts=thread)
    assert [m["text"] for m in replies["messages"]] == ["<@U0BOT000001> fix", "Running"]
    assert replies["messages"][0]["reply_count"] == 1
    assert replies["messages"][0]["latest_reply"] == posted["ts"]
    assert replies["messages"][1]["parent_user_id"] == "U0ALICE0001"
    assert replies["has_more"] is False


def test_form_and_json_bodies_are_both_understood(slack: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel=CHANNEL, text="json body")  # WebClient sends JSON here
    posted = client.api_call("chat.postMessage", params={"channel": CHANNEL, "text": "form"})
    assert posted["message"]["text"] == "form"
    first, second = slack.calls_to("chat.postMessage")
    assert first.headers["Content-Type"].startswith("application/json")
    assert second.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert [m["text"] for m in slack.messages(CHANNEL)] == ["json body", "form"]


def test_update_of_an_unknown_message_is_refused(slack: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel=CHANNEL, text="hello")
    with pytest.raises(SlackApiError) as caught:
        client.chat_update(channel=CHANNEL, ts="1600000000.000100", text="x")
    assert caught.value.response["error"] == "message_not_found"


def test_the_bot_cannot_edit_a_human_message(slack: FakeSlack, client: WebClient) -> None:
    ts = slack.add_message(CHANNEL, "mine", user="U0ALICE0001")
    with pytest.raises(SlackApiError) as caught:
        client.chat_update(channel=CHANNEL, ts=ts, text="x")
    assert caught.value.response["error"] == "cant_update_message"


def test_replies_paginate_with_cursors(slack: FakeSlack, client: WebClient) -> None:
    texts = [f"message {n}" for n in range(45)]
    thread = slack.add_thread(CHANNEL, texts)
    # WebClient follows next_cursor; each iteration reuses one response object, so read it now.
    pages = [(page["messages"], page["has_more"])
             for page in client.conversations_replies(channel=CHANNEL, ts=thread, limit=20)]
    assert [len(messages) for messages, _ in pages] == [20, 20, 5]
    assert [has_more for _, has_more in pages] == [True, True, False]
    assert [m["text"] for messages, _ in pages for m in messages] == texts
    cursors = [call.args.get("cursor") for call in slack.calls_to("conversations.replies")]
    assert cursors[0] is None and all(cursors[1:])


def test_replies_of_an_unknown_thread(slack: FakeSlack, client: WebClient) -> None:
    slack.add_message(CHANNEL, "lonely")
    with pytest.raises(SlackApiError) as caught:
        client.conversations_replies(channel=CHANNEL, ts="1600000000.000100")
    assert caught.value.response["error"] == "thread_not_found"


def test_reactions_permalinks_and_ephemeral_messages(slack: FakeSlack, client: WebClient) -> None:
    thread = slack.add_thread(CHANNEL, ["please fix", "second"])
    client.reactions_add(channel=CHANNEL, name="eyes", timestamp=thread)
    with pytest.raises(SlackApiError) as caught:
        client.reactions_add(channel=CHANNEL, name="eyes", timestamp=thread)
    assert caught.value.response["error"] == "already_reacted"
    assert slack.message(CHANNEL, thread)["reactions"] == [  # type: ignore[index]
        {"name": "eyes", "users": [slack.bot_user_id], "count": 1}]

    link = client.chat_getPermalink(channel=CHANNEL, message_ts=thread)
    digits = thread.replace(".", "")
    assert link["permalink"] == f"https://example.slack.test/archives/{CHANNEL}/p{digits}"

    ephemeral = client.chat_postEphemeral(channel=CHANNEL, user="U0ALICE0001", text="only you")
    assert ephemeral["message_ts"]
    assert slack.ephemerals[0]["text"] == "only you"
    assert len(slack.messages(CHANNEL)) == 2


def test_users_info(slack: FakeSlack, client: WebClient) -> None:
    slack.add_user("U0ALICE0001", "alice", "Alice Liddell", "alice.l")
    user = client.users_info(user="U0ALICE0001")["user"]
    assert user["name"] == "alice"
    assert user["real_name"] == "Alice Liddell"
    assert user["profile"]["display_name"] == "alice.l"
    with pytest.raises(SlackApiError) as caught:
        client.users_info(user="U0NOBODY001")
    assert caught.value.response["error"] == "user_not_found"


@pytest.mark.parametrize("token", ["xoxb-wrong", None])
def test_a_wrong_or_missing_token_is_invalid_auth(slack: FakeSlack, token: str | None) -> None:
    client = WebClient(token=token, base_url=slack.base_url)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel=CHANNEL, text="hi")
    assert caught.value.response["error"] == "invalid_auth"
    assert slack.messages(CHANNEL) == []
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_unknown_methods_are_answered_and_recorded(slack: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        client.api_call("chat.postMassage", json={"channel": CHANNEL})
    assert caught.value.response["error"] == "unknown_method"
    assert [call.method for call in slack.calls] == ["chat.postMassage"]


def test_rate_limited_post_is_retried_once_by_the_client(
    slack: FakeSlack, client: WebClient
) -> None:
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    posted = client.chat_postMessage(channel=CHANNEL, text="eventually")
    assert posted["ok"] is True
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert [m["text"] for m in slack.messages(CHANNEL)] == ["eventually"]


def test_rate_limit_without_a_retry_handler_surfaces_429(
    slack: FakeSlack, client: WebClient
) -> None:
    slack.rate_limit("chat.postMessage", times=2, retry_after=7)
    for _ in range(2):
        with pytest.raises(SlackApiError) as caught:
            client.chat_postMessage(channel=CHANNEL, text="x")
        assert caught.value.response.status_code == 429
        assert caught.value.response.headers["Retry-After"] == "7"
        assert caught.value.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"] is True


def test_fail_raises_slack_api_error_with_the_code(slack: FakeSlack, client: WebClient) -> None:
    slack.fail("chat.postMessage", error="not_in_channel", times=1)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel=CHANNEL, text="x")
    assert caught.value.response["error"] == "not_in_channel"
    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"] is True


def test_wait_for_sees_calls_from_other_threads(slack: FakeSlack, client: WebClient) -> None:
    worker = threading.Thread(target=lambda: client.chat_postMessage(channel=CHANNEL, text="bg"))
    worker.start()
    (call,) = slack.wait_for("chat.postMessage", count=1, timeout=10)
    worker.join()
    assert call.args["text"] == "bg"
    with pytest.raises(AssertionError, match=r"reactions\.add"):
        slack.wait_for("reactions.add", timeout=0.05)


def test_reset_forgets_everything(slack: FakeSlack, client: WebClient) -> None:
    slack.fail("auth.test")
    client.chat_postMessage(channel=CHANNEL, text="x")
    slack.reset()
    assert slack.calls == []
    assert slack.messages(CHANNEL) == []
    assert client.auth_test()["ok"] is True


def test_signature_is_what_slack_sdk_verifies() -> None:
    body = b'{"type":"event_callback"}'
    headers = sign(body, "shh", timestamp=1_700_000_000)
    assert headers["X-Slack-Request-Timestamp"] == "1700000000"
    verifier = SignatureVerifier("shh", clock=_FixedClock(1_700_000_010))
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b" ", headers)
    assert SignatureVerifier("shh").is_valid_request(body, sign(body, "shh"))


def test_event_envelope_and_interactivity_form() -> None:
    event = {"type": "app_mention", "user": "U0ALICE0001", "text": "<@U0BOT000001> go",
             "ts": "1700000000.000100", "channel": CHANNEL, "event_ts": "1700000000.000100"}
    envelope = event_envelope(event, team_id="T1", api_app_id="A1", event_id="Ev1",
                              bot_user_id="U0BOT000001")
    assert envelope["type"] == "event_callback"
    assert envelope["event"] == event
    assert envelope["event_time"] == 1_700_000_000
    assert envelope["authorizations"][0]["user_id"] == "U0BOT000001"
    form = parse_qs(block_actions_form({"type": "block_actions", "actions": []}).decode())
    assert json.loads(form["payload"][0]) == {"type": "block_actions", "actions": []}


class _FixedClock(Clock):
    """slack_sdk's verifier asks a clock for now; this one never moves."""

    def __init__(self, now: int) -> None:
        self._now = now

    def now(self) -> float:
        return float(self._now)
