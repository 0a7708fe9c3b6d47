"""Linear's Agent API end to end: signed webhooks in, real worker and Docker, activities and
the pull request back on the fake Linear API through the real httpx client."""

from __future__ import annotations

import pytest

from chatops.core.lifecycle import TaskState
from tests.deployment import git
from tests.linear.payloads import comment_create, session_created, session_prompted
from tests.linear_rig import LINEAR_ENVIRONMENTS

pytestmark = pytest.mark.docker

FIX = "# fix the retry helper\nprintf 'def retry(op):\\n    return op()\\n' > retry.py"


def kinds(activities):
    return [a["content"]["type"] for a in activities]


def test_a_session_gets_a_thought_actions_and_the_pull_request(linear):
    fake = linear.fake
    issue = fake.add_issue(linear.team, "Flaky retry", "The retry helper retries forever.",
                           creator=linear.bob)
    fake.add_comment(issue, "it failed again on CI", linear.bob)
    session, payload = session_created(fake, issue, linear.alice, body=f"@chatops {FIX}")
    response = linear.deliver(payload)
    assert response.status_code == 200, response.text
    [task] = linear.tasks()  # committed before the acknowledgement
    assert task.request.origin.agent_session_id == session
    assert task.request.instruction.startswith("# fix the retry helper")
    assert task.request.requester == linear.alice
    # The thought comes from the web process, before any worker exists.
    fake.wait_until(lambda: kinds(fake.activities(session)) == ["thought"], what="a thought")
    assert task.id in fake.activities(session)[0]["content"]["body"]

    linear.deployment.start_worker()
    task = linear.ended(task.id)
    assert task.state is TaskState.SUCCEEDED, task.reason
    activities = fake.wait_until(lambda: (lambda a: a if len(a) == 5 else None)(
        fake.activities(session)), what="five activities")
    assert kinds(activities) == ["thought", "action", "action", "action", "response"]
    assert [a["content"]["action"] for a in activities[1:4]] == [
        "Setting up the environment", "Running the agent", "Opening the pull request"]
    assert task.pull_request.url in activities[-1]["content"]["body"]
    [attachment] = fake.attachments(issue)
    assert attachment["url"] == task.pull_request.url
    assert fake.comments(issue, by=fake.bot_id) == []  # sessions speak in activities only

    authors = [m.author for m in task.request.context]
    assert authors[0] == "Bob" and "Bob" in authors[1:]
    assert "The retry helper retries forever." in task.request.context[0].text
    assert task.request.origin.url.endswith(fake.data.issues[issue]["identifier"])
    assert task.request.origin.url in task.pull_request.body


def test_a_redelivered_session_event_makes_one_task_and_one_thought(linear):
    issue = linear.fake.add_issue(linear.team, "Touch a file")
    session, payload = session_created(linear.fake, issue, linear.alice, body="@chatops touch x")
    assert linear.deliver(payload).status_code == 200
    assert linear.deliver(payload).status_code == 200
    assert len(linear.tasks()) == 1
    linear.fake.wait_until(lambda: linear.fake.activities(session), what="the thought")
    linear.deployment.work()
    assert len([a for a in linear.fake.activities(session)
                if a["content"]["type"] == "thought"]) == 1


def test_a_mention_seen_as_comment_and_session_makes_one_task(linear):
    fake = linear.fake
    issue = fake.add_issue(linear.team, "Both doors")
    session, created = session_created(fake, issue, linear.alice, body="@chatops touch both")
    comment = comment_create(fake, issue, "@chatops touch both", linear.alice)
    comment["data"]["id"] = created["agentSession"]["comment"]["id"]  # the same comment
    assert linear.deliver(created).status_code == 200
    assert linear.deliver(comment).status_code == 200
    [task] = linear.tasks()
    assert task.request.origin.agent_session_id == session


def test_a_prompt_in_the_session_follows_up_on_the_same_pull_request(linear):
    fake = linear.fake
    linear.deployment.start_worker()
    issue = fake.add_issue(linear.team, "Changelog")
    session, payload = session_created(fake, issue, linear.alice,
                                       body="@chatops printf 'one\\n' > CHANGES")
    linear.deliver(payload)
    [first] = linear.tasks()
    first = linear.ended(first.id)
    assert first.state is TaskState.SUCCEEDED, first.reason

    prompt = session_prompted(fake, session, linear.alice, "printf 'two\\n' >> CHANGES")
    assert linear.deliver(prompt).status_code == 200
    assert linear.deliver(prompt).status_code == 200  # redelivered: still one follow-up
    second = next(t for t in linear.tasks() if t.id != first.id)
    assert len(linear.tasks()) == 2
    assert second.request.parent_task_id == first.id
    second = linear.ended(second.id)
    assert second.state is TaskState.SUCCEEDED, second.reason
    assert second.branch == first.branch
    assert second.pull_request.number == first.pull_request.number
    assert git("show", f"{first.branch}:CHANGES", cwd=linear.deployment.repo) == "one\ntwo\n"
    assert len(fake.attachments(issue)) == 1  # the same link, updated


def test_stop_cancels_the_running_task_and_says_so(linear):
    fake = linear.fake
    linear.deployment.start_worker()
    issue = fake.add_issue(linear.team, "Slow one")
    session, payload = session_created(fake, issue, linear.alice, body="@chatops sleep 300")
    linear.deliver(payload)
    [task] = linear.tasks()
    linear.deployment.wait_for(task.id, {"running"})
    stop = session_prompted(fake, session, linear.alice, "Stop", signal="stop")
    assert linear.deliver(stop).status_code == 200
    linear.deployment.wait_for(task.id, {"cancelled"}, timeout=30)
    final = fake.wait_until(lambda: [a for a in fake.activities(session)
                                     if a["content"]["type"] == "response"], what="a response")
    assert final[0]["content"]["body"].startswith("Stopped")


def test_stop_with_nothing_running_still_answers(linear):
    issue = linear.fake.add_issue(linear.team, "Idle")
    session = linear.fake.add_session(issue, creator=linear.alice)
    linear.deliver(session_prompted(linear.fake, session, linear.alice, "Stop", signal="stop"))
    linear.fake.wait_until(lambda: linear.fake.activities(session), what="a response")
    [reply] = linear.fake.activities(session)
    assert reply["content"]["type"] == "response" and "nothing to stop" in \
        reply["content"]["body"]


def test_an_ambiguous_session_asks_with_an_elicitation_and_starts_on_the_answer(linear):
    fake = linear.fake
    linear.deployment.write_environments(LINEAR_ENVIRONMENTS)
    issue = fake.add_issue(linear.team, "Which one")
    session, payload = session_created(fake, issue, linear.alice, body="@chatops touch picked")
    assert linear.deliver(payload).status_code == 200
    assert linear.tasks() == []  # held, not lost
    [question] = fake.wait_until(lambda: fake.activities(session), what="the question")
    assert question["content"]["type"] == "elicitation"
    assert question["signal"] == "select"
    assert [o["value"] for o in question["signalMetadata"]["options"]] == ["api", "ok", "web"]

    answer = session_prompted(fake, session, linear.alice, "ok")
    assert linear.deliver(answer).status_code == 200
    assert linear.deliver(answer).status_code == 200  # a redelivered answer changes nothing
    [task] = linear.tasks()
    assert task.environment == "ok"
    assert task.request.instruction == "touch picked"
    assert task.request.origin.agent_session_id == session
    fake.wait_until(lambda: "thought" in kinds(fake.activities(session)), what="the thought")


def test_an_answer_that_is_not_a_choice_asks_again(linear):
    fake = linear.fake
    linear.deployment.write_environments(LINEAR_ENVIRONMENTS)
    issue = fake.add_issue(linear.team, "Which one")
    session, payload = session_created(fake, issue, linear.alice, body="@chatops touch x")
    linear.deliver(payload)
    fake.wait_until(lambda: fake.activities(session), what="the question")
    linear.deliver(session_prompted(fake, session, linear.alice, "the big one"))
    asked = fake.wait_until(lambda: (lambda a: a if len(a) == 2 else None)(
        fake.activities(session)), what="a second question")
    assert kinds(asked) == ["elicitation", "elicitation"]
    assert "not one of the environments" in asked[1]["content"]["body"]
    linear.deliver(session_prompted(fake, session, linear.alice, "let's use web please"))
    [task] = linear.tasks()
    assert task.environment == "web"
