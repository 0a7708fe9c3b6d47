"""The pure parts of the Slack adapter: mentions, hints, readable text, trimming, blocks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatops.core.lifecycle import TaskState
from chatops.core.task import ContextMessage, PullRequest, SlackThread, Task, TaskRequest
from integrations.slack import blocks
from integrations.slack.mention import NotAMention, parse_mention, readable, split_hints
from integrations.slack.thread import trim

BOT = "U0BOT"


def envelope(**event):
    base = {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "10.1",
            "text": f"<@{BOT}> fix it"}
    return {"team_id": "T1", "event_id": "Ev1", "event": base | event}


def test_a_top_level_mention_answers_in_its_own_thread():
    mention = parse_mention(envelope(), BOT)
    assert (mention.instruction, mention.thread_ts, mention.ts) == ("fix it", "10.1", "10.1")


def test_a_mention_in_a_thread_answers_in_that_thread():
    assert parse_mention(envelope(thread_ts="9.0"), BOT).thread_ts == "9.0"


@pytest.mark.parametrize("event", [
    {"bot_id": "B1"}, {"subtype": "message_changed"}, {"user": BOT}, {"type": "message"},
    {"channel": None},
])
def test_what_is_not_a_mention_we_act_on(event):
    with pytest.raises(NotAMention):
        parse_mention(envelope(**event), BOT)


def test_hints_are_taken_out_of_the_instruction():
    assert split_hints("env:api fix the  flaky test attempts:3") == ("fix the flaky test", "api", 3)
    assert split_hints("repo:webapp bump deps") == ("bump deps", "webapp", 1)
    assert split_hints("mail me at a:b") == ("mail me at a:b", None, 1)


def test_slack_markup_becomes_readable():
    text = "ask <@U2> about <https://x.test/a|the doc> in <#C9|dev> &amp; <https://y.test>"
    assert readable(text, {"U2": "bob"}) == "ask @bob about the doc (https://x.test/a) in #dev & https://y.test"


def test_a_long_thread_keeps_its_start_and_its_end():
    messages = [ContextMessage(author="a", text=f"m{i}") for i in range(10)]
    kept = trim(messages, max_messages=5, max_chars=10_000)
    assert [m.text for m in kept][:1] == ["m0"]
    assert [m.text for m in kept][-3:] == ["m7", "m8", "m9"]
    assert "6 message(s) from the middle" in kept[1].text
    assert trim(messages[:3], 5, 10_000) == tuple(messages[:3])


def test_a_thread_over_the_character_budget_is_trimmed_too():
    messages = [ContextMessage(author="a", text="x" * 100) for _ in range(6)]
    kept = trim(messages, max_messages=50, max_chars=350)
    assert sum(len(m.text) for m in kept if m.author == "a") <= 350
    assert any("left out" in m.text for m in kept)


def task(state, **fields):
    now = datetime.now(UTC)
    request = TaskRequest(origin=SlackThread(team_id="T", channel_id="C", thread_ts="1",
                                             message_ts="1"), requester="U1", instruction="x")
    return Task(id="t1", state=state, request=request, environment="web", queue="q",
                created_at=now, updated_at=now, environment_reason="the only environment",
                **fields)


def buttons(message_blocks):
    return [e["action_id"] for b in message_blocks if b["type"] == "actions" for e in b["elements"]]


def test_status_blocks_offer_the_right_button_for_each_state():
    _, running = blocks.status_message(task(TaskState.RUNNING, reason="script agent"))
    assert buttons(running) == [blocks.CANCEL]
    text, failed = blocks.status_message(task(TaskState.FAILED, reason="exit <3>"))
    assert buttons(failed) == [blocks.RETRY] and "exit &lt;3&gt;" in text
    pr = PullRequest(forge="local", number=4, url="https://forge.test/4", branch="b", base="main",
                     title="Fix")
    text, done = blocks.status_message(task(TaskState.SUCCEEDED, pull_request=pr,
                                            diffstat="1 file changed, +1 -0"))
    assert "<https://forge.test/4|#4 Fix>" in text and buttons(done) == [blocks.OPEN_PR]
    assert "the only environment" in str(done)
