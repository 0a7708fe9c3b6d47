"""A mention in a Slack thread, end to end: signed HTTP in, real worker and Docker, the fake
Slack Web API reached through the real slack_sdk client."""

from __future__ import annotations

import threading

import pytest

from chatops.core.lifecycle import TaskState
from tests.slack_rig import ALICE, BOB, CHANNEL

pytestmark = pytest.mark.docker

FIX = "# fix the retry helper\nprintf 'def retry(op):\\n    return op()\\n' > retry.py"


def ended(rig, task_id):
    task = rig.store.get(task_id)
    return task if task.state.terminal else None


def test_a_mention_gets_progress_and_the_pull_request_in_its_thread(slack):
    slack.deployment.start_worker()
    parent = slack.fake.add_thread(CHANNEL, [
        {"text": "the retry test is flaky again", "user": BOB},
        {"text": "see <https://ci.example.test/run/42|run 42>", "user": ALICE},
    ])
    response, _ = slack.mention(FIX, thread_ts=parent)
    assert response.status_code == 200
    [task] = slack.store.recent()  # committed before the acknowledgement
    assert task.request.origin.thread_ts == parent and task.request.requester == ALICE
    assert task.request.instruction.startswith("# fix the retry helper")
    assert "> retry.py" in task.request.instruction  # Slack's &gt; turned back into >

    task = slack.wait_until(lambda: ended(slack, task.id), what="the task to end")
    assert task.state is TaskState.SUCCEEDED, task.reason
    status = slack.status_message(parent)
    assert f"#{task.pull_request.number}" in status["text"]
    assert "Pull request" in status["text"]
    mention_message = slack.fake.message(CHANNEL, task.request.origin.message_ts)
    assert [r["name"] for r in mention_message.get("reactions", [])] == ["eyes"]
    updates = [c.args.get("text", "") for c in slack.fake.calls_to("chat.update")]
    assert any("Setting up" in text for text in updates)
    assert any("Agent running" in text for text in updates)
    assert len(slack.fake.calls_to("reactions.add")) == 1
    final = [m for m in slack.fake.messages(CHANNEL)
             if m.get("thread_ts") == parent and m.get("bot_id")][-1]
    assert final["text"].startswith(f"<@{ALICE}> pull request ready")

    context = task.request.context
    assert [m.author for m in context[:2]] == ["bob", "alice"]
    assert context[1].text == "see run 42 (https://ci.example.test/run/42)"
    assert "example.slack.test/archives" in task.request.origin.url
    assert task.request.origin.url in task.pull_request.body


def test_a_top_level_mention_starts_its_own_thread(slack):
    response, envelope = slack.mention("touch created-by-slack")
    assert response.status_code == 200
    [task] = slack.store.recent()
    assert task.request.origin.thread_ts == envelope["event"]["ts"]
    slack.deployment.work()
    assert slack.status_message(envelope["event"]["ts"])


def test_slack_retries_never_make_a_second_task(slack):
    first, envelope = slack.mention("touch once", event_id="EvRETRY0001")
    again = slack.signed(envelope, **{"X-Slack-Retry-Num": "1",
                                      "X-Slack-Retry-Reason": "http_timeout"})
    assert first.status_code == again.status_code == 200
    assert len(slack.store.recent()) == 1


def test_concurrent_redeliveries_make_one_task(slack):
    _, envelope = slack.mention("touch racing", event_id="EvRACE00001")
    results = []

    def deliver():
        results.append(slack.signed(envelope, **{"X-Slack-Retry-Num": "1"}).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) == {200}
    assert len(slack.store.recent()) == 1


def test_a_follow_up_continues_the_same_branch_and_pull_request(slack):
    slack.deployment.start_worker()
    parent = slack.fake.add_thread(CHANNEL, ["please add a changelog"])
    slack.mention("printf 'one\\n' > CHANGES", thread_ts=parent)
    [first] = slack.store.recent()
    first = slack.wait_until(lambda: ended(slack, first.id), what="the first task")
    assert first.state is TaskState.SUCCEEDED, first.reason

    slack.mention("printf 'two\\n' >> CHANGES", thread_ts=parent)
    second = next(t for t in slack.store.recent() if t.id != first.id)
    assert second.request.parent_task_id == first.id
    second = slack.wait_until(lambda: ended(slack, second.id), what="the follow-up")
    assert second.state is TaskState.SUCCEEDED, second.reason
    assert second.branch == first.branch
    assert second.pull_request.number == first.pull_request.number
    from tests.deployment import git

    assert git("show", f"{first.branch}:CHANGES", cwd=slack.deployment.repo) == "one\ntwo\n"
    from integrations.git.local_forge import LocalForge

    comments = LocalForge().comments(str(slack.deployment.repo), first.pull_request.number)
    assert len(comments) == 1 and "Follow-up" in comments[0]
    # The follow-up read the whole thread, the first request and our replies excluded.
    texts = [m.text for m in second.request.context]
    assert "please add a changelog" in texts[0]
    assert not any(m.author == "chatops" for m in second.request.context)
