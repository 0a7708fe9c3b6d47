"""Buttons and other conversations with the bot: choosing, cancelling, retrying, rate limits."""

from __future__ import annotations

import pytest

from chatops.core.lifecycle import TaskState
from integrations.slack import blocks
from tests.deployment import kill_tree
from tests.slack_rig import ALICE, BOB, CHANNEL, SLACK_ENVIRONMENTS

pytestmark = pytest.mark.docker


def action_values(message, prefix):
    return [element["value"] for block in message.get("blocks", [])
            if block.get("type") == "actions" for element in block["elements"]
            if element["action_id"].startswith(prefix)]


def test_an_ambiguous_request_asks_with_buttons_and_starts_on_a_pick(slack):
    slack.deployment.write_environments(SLACK_ENVIRONMENTS)
    response, envelope = slack.mention("touch picked")
    assert response.status_code == 200
    assert slack.store.recent() == []  # held, not lost: it waits for the answer
    question = slack.fake.wait_for("chat.postMessage")[0]
    assert "Which environment should I use?" in question.args["text"]
    thread = envelope["event"]["ts"]
    [asked] = [m for m in slack.fake.messages(CHANNEL) if m.get("thread_ts") == thread
               and m.get("bot_id")]
    choices = action_values(asked, blocks.CHOOSE)
    assert [value.split()[1] for value in choices] == ["api", "ok", "restricted"]

    pick = next(value for value in choices if value.endswith(" ok"))
    assert slack.click(f"{blocks.CHOOSE}:ok", pick, asked["ts"], thread).status_code == 200
    assert slack.click(f"{blocks.CHOOSE}:ok", pick, asked["ts"], thread).status_code == 200
    [task] = slack.store.recent()  # a double click makes one task
    assert task.environment == "ok"
    slack.wait_until(lambda: "picked by" in (slack.fake.message(CHANNEL, asked["ts"]) or {})
                     .get("text", ""), timeout=10, what="the question to be answered")


def test_the_channel_default_and_an_explicit_repository_name_decide(slack):
    slack.deployment.write_environments(SLACK_ENVIRONMENTS.replace("C0OTHER0001", CHANNEL))
    slack.mention("touch by-channel")
    slack.mention("repo:project touch by-repo-name")
    by_channel, by_repo_name = sorted(slack.store.recent(), key=lambda t: t.created_at)
    assert by_channel.environment == "api"
    assert "default for this channel" in by_channel.environment_reason
    # "project" is every environment's repository here, so the channel still decides.
    assert by_repo_name.environment == "api"


def test_cancel_button_stops_the_task_and_says_so(slack):
    slack.deployment.start_worker()
    _response, envelope = slack.mention("sleep 300")
    [task] = slack.store.recent()
    slack.deployment.wait_for(task.id, {"running"})
    thread = envelope["event"]["ts"]
    status = slack.status_message(thread)
    assert action_values(status, blocks.CANCEL) == [task.id]

    slack.click(blocks.CANCEL, task.id, status["ts"], thread, user=BOB)  # not the requester
    slack.fake.wait_for("chat.postEphemeral")
    assert "Only <@" in slack.fake.calls_to("chat.postEphemeral")[0].args["text"]
    assert slack.store.get(task.id).state is TaskState.RUNNING

    slack.click(blocks.CANCEL, task.id, status["ts"], thread, user=ALICE)
    slack.deployment.wait_for(task.id, {"cancelled"}, timeout=30)
    slack.wait_until(lambda: "Cancelled" in slack.status_message(thread)["text"],
                     what="the status message to say cancelled")
    assert action_values(slack.status_message(thread), blocks.RETRY) == [task.id]


def test_retry_button_runs_a_failed_request_again(slack):
    _response, envelope = slack.mention("exit 3")
    slack.deployment.work()
    [failed] = slack.store.recent()
    assert failed.state is TaskState.FAILED
    thread = envelope["event"]["ts"]
    status = slack.status_message(thread)
    assert "Failed: the agent exited with status 3" in status["text"]
    assert f"chatops logs {failed.id}" in str(status["blocks"])

    slack.click(blocks.RETRY, failed.id, status["ts"], thread)
    retried = next(t for t in slack.store.recent() if t.id != failed.id)
    assert retried.request.instruction == failed.request.instruction
    assert retried.state is TaskState.QUEUED


def test_rate_limited_posts_are_retried_and_posted_once(slack):
    slack.fake.rate_limit("chat.postMessage", times=1, retry_after=1)
    response, envelope = slack.mention("touch x")
    assert response.status_code == 200
    slack.fake.wait_for("chat.postMessage", count=2)  # the 429, then the retry
    posted = [m for m in slack.fake.messages(CHANNEL)
              if m.get("thread_ts") == envelope["event"]["ts"] and m.get("bot_id")]
    assert len(posted) == 1


def test_a_crashed_worker_still_ends_the_thread_with_a_message(slack, docker_client):
    worker = slack.deployment.start_worker()
    _response, envelope = slack.mention("sleep 300")
    [task] = slack.store.recent()
    slack.deployment.wait_for(task.id, {"running"})
    kill_tree(worker)
    slack.deployment.environ["CHATOPS_STALE_AFTER"] = "0"
    slack.deployment.work()  # the next worker reconciles and tells the thread
    thread = envelope["event"]["ts"]
    slack.wait_until(lambda: "Failed: the worker running it stopped" in
                     slack.status_message(thread)["text"], what="the failure in the thread")


def test_best_of_n_from_a_message_with_a_button_per_attempt(slack):
    script = ('attempts:2 echo "candidate $CHATOPS_ATTEMPT" > answer.txt')
    _response, envelope = slack.mention(script)
    [task] = slack.store.recent()
    assert task.request.attempts == 2
    assert task.request.instruction == 'echo "candidate $CHATOPS_ATTEMPT" > answer.txt'
    slack.deployment.work()
    thread = envelope["event"]["ts"]
    slack.wait_until(lambda: action_values(slack.status_message(thread), blocks.PICK),
                     what="the pick buttons")
    status = slack.status_message(thread)
    assert action_values(status, blocks.PICK) == [f"{task.id} 1", f"{task.id} 2"]
    assert "attempt 2: 1 file changed, +1 -0" in str(status["blocks"])

    slack.click(f"{blocks.PICK}:2", f"{task.id} 2", status["ts"], thread)
    delivery = slack.wait_until(lambda: next((t for t in slack.store.recent()
                                              if t.id != task.id), None), what="the pick")
    assert delivery.request.from_attempt == 2
    slack.deployment.work()
    delivered = slack.store.get(delivery.id)
    assert delivered.state is TaskState.SUCCEEDED, delivered.reason
    from tests.deployment import git

    assert git("show", f"{delivered.branch}:answer.txt",
               cwd=slack.deployment.repo) == "candidate 2\n"
