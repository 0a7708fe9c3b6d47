"""Assignment, delegation, the trigger label and comment mentions, end to end: one status
comment updated in place, the pull request attached, the issue moved through its states."""

from __future__ import annotations

import pytest

from chatops.core.lifecycle import TaskState
from tests.linear.payloads import comment_create, issue_update
from tests.linear_rig import LINEAR_ENVIRONMENTS

pytestmark = pytest.mark.docker

FIX = "printf 'def retry(op):\\n    return op()\\n' > retry.py"


@pytest.fixture
def linear_env():
    return {"LINEAR_STARTED_STATE": "In Progress", "LINEAR_REVIEW_STATE": "in review"}


def test_assigning_the_bot_gets_one_comment_the_link_and_state_moves(linear):
    fake = linear.fake
    linear.deployment.start_worker()
    issue = fake.add_issue(linear.team, "# Simplify retry", FIX, creator=linear.bob)
    payload = issue_update(fake, issue, linear.alice, assigneeId=fake.bot_id)
    assert linear.deliver(payload).status_code == 200
    assert linear.deliver(payload).status_code == 200  # redelivered
    [task] = linear.tasks()
    assert task.request.instruction == f"# Simplify retry\n\n{FIX}"
    assert task.request.requester == linear.alice
    assert task.request.dedupe_key == (
        f"linear:issue:{issue}:{payload['data']['updatedAt']}")
    assert "ENG" in task.request.origin.teams and linear.team in task.request.origin.teams

    task = linear.ended(task.id)
    assert task.state is TaskState.SUCCEEDED, task.reason
    fake.wait_until(lambda: fake.state_of(issue) == "In Review", what="the review state")
    [comment] = fake.comments(issue, by=fake.bot_id)  # one comment, edited in place
    assert comment["id"] == task.status_ref
    assert task.pull_request.url in comment["body"] and comment["body"].startswith("✅")
    assert len(fake.requests_for("commentCreate")) == 1
    assert len(fake.requests_for("commentUpdate")) == 4
    [attachment] = fake.attachments(issue)
    assert attachment["url"] == task.pull_request.url
    assert attachment["title"].startswith(f"Pull request #{task.pull_request.number}")
    moves = [r.variables["stateId"] for r in fake.requests_for("issueUpdate")]
    states = {s["id"]: s["name"] for s in fake.data.teams[linear.team]["states"]}
    assert [states[m] for m in moves] == ["In Progress", "In Review"]


def test_a_delegation_is_left_to_the_agent_session_linear_opens_for_it(linear):
    issue = linear.fake.add_issue(linear.team, "touch delegated")
    response = linear.deliver(issue_update(linear.fake, issue, linear.alice,
                                           delegateId=linear.fake.bot_id))
    assert "ignored" in response.json()
    assert linear.tasks() == []


def test_adding_the_trigger_label_starts_a_task_and_the_label_maps_the_environment(linear):
    linear.deployment.write_environments(LINEAR_ENVIRONMENTS)
    issue = linear.fake.add_issue(linear.team, "touch labelled", labels=("frontend",))
    linear.deliver(issue_update(linear.fake, issue, linear.alice,
                                labels=("frontend", "codex-ready")))
    [task] = linear.tasks()
    assert task.environment == "web"
    assert "mapped from the issue's label" in task.environment_reason
    # Adding another label later is not the trigger label being added again.
    linear.deliver(issue_update(linear.fake, issue, linear.alice,
                                labels=("frontend", "codex-ready", "bug")))
    assert len(linear.tasks()) == 1


def test_the_team_maps_the_environment(linear):
    linear.deployment.write_environments(LINEAR_ENVIRONMENTS)
    ops = linear.fake.add_team("OPS", "Operations")
    issue = linear.fake.add_issue(ops, "touch ops")
    linear.deliver(issue_update(linear.fake, issue, linear.alice, assigneeId=linear.fake.bot_id))
    [task] = linear.tasks()
    assert task.environment == "api" and "team" in task.environment_reason


def test_a_comment_mention_starts_a_task_with_its_words(linear):
    fake = linear.fake
    issue = fake.add_issue(linear.team, "Docs")
    payload = comment_create(fake, issue, "@chatops env:ok printf 'x\\n' > NOTES", linear.bob)
    assert linear.deliver(payload).status_code == 200
    [task] = linear.tasks()
    assert task.request.instruction == "printf 'x\\n' > NOTES"
    assert task.request.dedupe_key == f"linear:comment:{payload['data']['id']}"
    assert task.environment == "ok" and task.request.requester == linear.bob
    fake.wait_until(lambda: fake.comments(issue, by=fake.bot_id), what="the status comment")
    linear.deployment.work()
    task = linear.store.get(task.id)
    assert task.state is TaskState.SUCCEEDED, task.reason
    [status] = fake.wait_until(lambda: [c for c in fake.comments(issue, by=fake.bot_id)
                                        if c["body"].startswith("✅")], what="the final state")
    assert task.pull_request.url in status["body"]
    # The worker read the issue without our own status comment.
    assert [m.text for m in task.request.context[1:]] == [
        "@chatops env:ok printf 'x\\n' > NOTES"]


@pytest.mark.parametrize("change", ["title", "assign-someone-else", "already-assigned"])
def test_other_issue_changes_are_ignored(linear, change):
    issue = linear.fake.add_issue(linear.team, "Nothing for me")
    if change == "title":
        payload = issue_update(linear.fake, issue, linear.alice, title="Renamed")
    elif change == "assign-someone-else":
        payload = issue_update(linear.fake, issue, linear.alice, assigneeId=linear.bob)
    else:
        linear.fake.data.issues[issue]["assigneeId"] = linear.fake.bot_id
        payload = issue_update(linear.fake, issue, linear.alice, assigneeId=linear.fake.bot_id)
    response = linear.deliver(payload)
    assert response.status_code == 200 and "ignored" in response.json()
    assert linear.tasks() == []


def test_the_bot_never_triggers_itself(linear):
    fake = linear.fake
    issue = fake.add_issue(linear.team, "Loop")
    own = comment_create(fake, issue, "@chatops touch loop", fake.bot_id)
    assert linear.deliver(own).json()["ignored"] == "the bot's own comment"
    self_assigned = issue_update(fake, issue, fake.bot_id, assigneeId=fake.bot_id)
    assert linear.deliver(self_assigned).json()["ignored"] == "a change the bot made itself"
    integration = comment_create(fake, issue, "@chatops touch loop", linear.alice)
    integration["data"]["botActor"] = {"id": "github", "type": "integration"}
    assert "ignored" in linear.deliver(integration).json()
    assert linear.tasks() == []


def test_an_ambiguous_request_asks_in_a_comment_and_an_env_reply_starts_it(linear):
    fake = linear.fake
    linear.deployment.write_environments(LINEAR_ENVIRONMENTS)
    issue = fake.add_issue(linear.team, "Pick for me")
    linear.deliver(comment_create(fake, issue, "@chatops touch picked", linear.alice))
    assert linear.tasks() == []
    [question] = fake.wait_until(lambda: fake.comments(issue, by=fake.bot_id),
                                 what="the question")
    assert "Which environment should I use?" in question["body"]
    assert "`@chatops env:NAME`" in question["body"]
    reply = comment_create(fake, issue, "@chatops env:web", linear.alice)
    assert linear.deliver(reply).status_code == 200
    assert linear.deliver(reply).status_code == 200
    [task] = linear.tasks()
    assert task.environment == "web"
    assert task.request.instruction == "touch picked"


def test_a_refused_request_is_told_why(linear):
    fake = linear.fake
    issue = fake.add_issue(linear.team, "Nope")
    linear.deliver(comment_create(fake, issue, "@chatops env:nope touch x", linear.alice))
    [reply] = fake.wait_until(lambda: fake.comments(issue, by=fake.bot_id), what="a reply")
    assert reply["body"].startswith("Sorry, I can't take this one")
    assert "no environment named 'nope'" in reply["body"]
    assert linear.tasks() == []


def test_rate_limited_calls_are_retried_and_posted_once(linear):
    fake = linear.fake
    issue = fake.add_issue(linear.team, "touch limited")
    fake.rate_limit(times=1, how="http")
    fake.rate_limit(times=1, how="graphql")
    linear.deliver(issue_update(fake, issue, linear.alice, assigneeId=fake.bot_id))
    fake.wait_until(lambda: fake.comments(issue, by=fake.bot_id), what="the status comment")
    assert len(fake.requests_for("commentCreate")) == 3  # two refusals, then the post
    assert len(fake.comments(issue, by=fake.bot_id)) == 1
