"""The Slack Web API spec checker catches what it should, on hand-written and recorded calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient

from tests.conformance.slack_spec import SPEC_GAPS, SlackWebSpec
from tests.fakes import FakeSlack

pytestmark = pytest.mark.conformance

SPEC = Path("specs/slack/slack_web_openapi_v2_without_examples.json")


@pytest.fixture(scope="module")
def spec(shared_dir: Path) -> SlackWebSpec:
    path = shared_dir / SPEC
    if not path.is_file():
        reason = f"the Slack Web API spec {path} is missing from the shared folder"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason} (required in CI)", pytrace=False)
        pytest.skip(reason)
    return SlackWebSpec.load(path)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_post_message_with_channel_and_text_conforms(spec: SlackWebSpec) -> None:
    assert spec.check_call("chat.postMessage", {"channel": "C1", "text": "hi"}) == []


def test_update_without_ts_is_a_problem(spec: SlackWebSpec) -> None:
    problems = spec.check_call("chat.update", {"channel": "C1", "text": "edited"})
    assert len(problems) == 1
    assert "'ts'" in problems[0] and "missing" in problems[0]


def test_reaction_with_name_channel_and_timestamp_conforms(spec: SlackWebSpec) -> None:
    args = {"name": "eyes", "channel": "C1", "timestamp": "1700000000.000100"}
    assert spec.check_call("reactions.add", args) == []


def test_unknown_method_is_a_problem(spec: SlackWebSpec) -> None:
    problems = spec.check_call("chat.postMassage", {"channel": "C1", "text": "hi"})
    assert problems == ["chat.postMassage: unknown method (not in the spec)"]


def test_replies_page_request_conforms(spec: SlackWebSpec) -> None:
    args = {"channel": "C1", "ts": "1700000000.000100", "cursor": "bmV4dF90czox", "limit": 20}
    assert spec.check_call("conversations.replies", args) == []


def test_token_and_none_values_are_not_arguments(spec: SlackWebSpec) -> None:
    args = {"token": "xoxb-x", "channel": "C1", "text": "hi", "thread_ts": None}
    assert spec.check_call("chat.postMessage", args) == []


def test_unlisted_parameters_are_reported_unless_the_caller_allows_them(
    spec: SlackWebSpec,
) -> None:
    args = {"channel": "C1", "text": "hi", "metadata": {"event_type": "task", "event_payload": {}}}
    assert spec.check_call("chat.postMessage", args) == [
        "chat.postMessage: parameter 'metadata' is not in the spec"]
    allowed = SPEC_GAPS["chat.postMessage"]
    assert spec.check_call("chat.postMessage", args, allow_unlisted=allowed) == []


def test_obviously_wrong_scalar_types_are_problems(spec: SlackWebSpec) -> None:
    problems = spec.check_call("conversations.replies",
                               {"channel": "C1", "ts": "1700000000.000100", "limit": "twenty",
                                "inclusive": "maybe"})
    assert sorted(p.split("'")[1] for p in problems) == ["inclusive", "limit"]
    assert spec.check_call("chat.postMessage", {"channel": 42, "text": "hi"}) != []


def test_form_and_json_encodings_of_the_same_call_both_conform(spec: SlackWebSpec) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    as_json = {"channel": "C1", "text": "hi", "blocks": blocks, "unfurl_links": False}
    as_form = {"channel": "C1", "text": "hi", "blocks": '[{"type": "section"}]',
               "unfurl_links": "0"}
    assert spec.check_call("chat.postMessage", as_json) == []
    assert spec.check_call("chat.postMessage", as_form) == []


def test_calls_sent_by_the_real_web_client_conform(spec: SlackWebSpec, slack: FakeSlack) -> None:
    client = WebClient(token=slack.bot_token, base_url=slack.base_url)
    thread = slack.add_thread("C1", ["<@U0BOT000001> fix the flaky test", "+1"])
    client.auth_test()
    posted = client.chat_postMessage(channel="C1", thread_ts=thread, text="Working on it",
                                     blocks=[{"type": "section",
                                              "text": {"type": "mrkdwn", "text": "Working"}}])
    client.chat_update(channel="C1", ts=posted["ts"], text="Done")
    client.reactions_add(channel="C1", name="eyes", timestamp=thread)
    client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
    client.conversations_replies(channel="C1", ts=thread, limit=2)
    assert len(slack.calls) == 6
    for call in slack.calls:
        assert spec.check_call(call.method, call.args) == [], call
