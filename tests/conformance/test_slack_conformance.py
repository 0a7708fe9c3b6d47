"""Slack's own payloads through our app, and our Web API calls against Slack's contract.

Payloads come from ../shared/fixtures/slack (recorded or documented by others, read by path);
calls are checked with ../shared/specs/slack/slack_web_openapi_v2_without_examples.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slack_sdk import WebClient

from chatops.core.lifecycle import TaskState
from chatops.core.task import SlackThread, TaskRequest
from integrations.slack.mention import parse_mention, readable
from integrations.slack.thread import SlackThreadReader
from tests.conformance.slack_spec import SPEC_GAPS, SlackWebSpec
from tests.fakes import BOT_TOKEN

pytestmark = [pytest.mark.conformance, pytest.mark.docker]

# The ids in app_mention_event_callback_recorded.json, so the replay matches the workspace.
RECORDED = {"bot_user_id": "U00FAKEBOT02", "team_id": "T00FAKE00BB", "app_id": "A00FAKEAPP02"}


def fixture(shared_dir: Path, name: str) -> dict:
    return json.loads((shared_dir / "fixtures" / "slack" / name).read_text())


@pytest.fixture
def spec(shared_dir: Path) -> SlackWebSpec:
    return SlackWebSpec.load(shared_dir / "specs" / "slack" /
                             "slack_web_openapi_v2_without_examples.json")


@pytest.fixture
def slack_identity() -> dict[str, str]:
    return RECORDED


# Bolt's own authorization call sends team_id, which the 2021 spec does not list yet.
BOLT_GAPS = {"auth.test": frozenset({"team_id"})}


def assert_calls_conform(slack, spec: SlackWebSpec) -> None:
    assert slack.fake.calls, "the app made no Web API call to check"
    problems = {
        problem
        for call in slack.fake.calls
        for problem in spec.check_call(
            call.method, call.args,
            allow_unlisted=SPEC_GAPS.get(call.method, frozenset())
            | BOLT_GAPS.get(call.method, frozenset()))
    }
    assert not problems, sorted(problems)


def test_url_verification_fixture(slack, shared_dir):
    payload = fixture(shared_dir, "url_verification.json")
    response = slack.signed(payload)
    assert response.status_code == 200
    assert payload["challenge"] in response.text


def test_the_recorded_mention_becomes_a_task_that_reports_in_its_thread(slack, shared_dir, spec):
    envelope = fixture(shared_dir, "app_mention_event_callback_recorded.json")
    event = envelope["event"]
    slack.fake.add_message(event["channel"], event["text"], user=event["user"], ts=event["ts"])
    slack.deployment.write_environments(replace=(
        '[environments.ok]\nrepository = "{repo}"\nqueue = "{queue}"\n'))
    response = slack.signed(envelope)
    assert response.status_code == 200
    [task] = slack.store.recent()
    assert task.request.instruction == "Hello"
    assert task.request.origin == SlackThread(team_id="T00FAKE00BB", channel_id="C00FAKECHAN2",
                                              thread_ts=event["ts"], message_ts=event["ts"])
    assert task.request.dedupe_key == "slack:T00FAKE00BB:Ev0AATDEL38U"
    slack.deployment.work()  # "Hello" is not a command: the task fails, and says so
    assert slack.store.get(task.id).state is TaskState.FAILED
    slack.wait_until(lambda: len(slack.fake.calls_to("chat.update")) >= 2, what="updates")
    assert_calls_conform(slack, spec)


def test_the_documented_mention_parses_with_its_quirks(shared_dir):
    envelope = fixture(shared_dir, "app_mention_event_callback_docs_example.json")
    mention = parse_mention(envelope, bot_user_id="U0LAN0Z89")
    assert mention.instruction == "is it everything a river should be?"
    assert mention.thread_ts == "1515449522.000016"  # event_ts has no dot; ts is what counts
    assert mention.event_id == "Ev123ABC456"


@pytest.mark.parametrize("name", [
    "message_bot_thread_reply_event_callback.json",
    "message_thread_reply_event_callback.json",
    "message_with_user_mentions_event_callback.json",
])
def test_plain_and_bot_messages_are_acknowledged_without_a_task(slack, shared_dir, name):
    response = slack.signed(fixture(shared_dir, name))
    assert response.status_code == 200
    assert slack.store.recent() == []


def test_a_foreign_button_is_answered_without_a_crash(slack, shared_dir):
    from urllib.parse import urlencode

    from tests.fakes.slack_signing import sign
    from tests.slack_rig import SIGNING_SECRET

    body = urlencode({"payload": json.dumps(
        fixture(shared_dir, "block_actions_button_in_thread.json"))}).encode()
    response = slack.post(body, {"Content-Type": "application/x-www-form-urlencoded",
                                 **sign(body, SIGNING_SECRET)})
    assert response.status_code < 500
    assert slack.store.recent() == []


def test_user_mentions_become_names(shared_dir):
    text = fixture(shared_dir, "message_with_user_mentions_event_callback.json")["event"]["text"]
    assert readable(text, {"U074VRHQ11T": "ana"}).startswith("@ana @U074G5E1ANR")


def test_the_documented_replies_thread_is_read_and_trimmed(shared_dir, spec):
    """The messages of Slack's conversations.replies example, through our reader."""
    from tests.fakes import FakeSlack

    page = fixture(shared_dir, "conversations_replies_response.json")
    with FakeSlack() as fake:
        thread = page["messages"][0]["thread_ts"]
        for message in page["messages"]:
            fake.add_message("C1", message["text"], user=message["user"], ts=message["ts"],
                             thread_ts=None if message["ts"] == thread else thread)
        fake.add_user(page["messages"][0]["user"], "island-keeper")
        client = WebClient(token=BOT_TOKEN, base_url=fake.base_url)
        request = TaskRequest(origin=SlackThread(team_id="T", channel_id="C1", thread_ts=thread,
                                                 message_ts=thread),
                              requester="U1", instruction="x")
        read = SlackThreadReader(client, bot_user_id="UBOT", max_messages=3).read(request)
        assert [m.text for m in read.context] == [
            "island", "[2 message(s) from the middle of this thread were left out to fit; "
            "the first and the latest are kept]", "three for the land"]
        assert {m.author for m in read.context} == {"island-keeper", "chatops"}
        for call in fake.calls:
            assert spec.check_call(call.method, call.args) == [], call
