"""Linear's own payloads through our webhook, and every GraphQL document we send checked
against Linear's published schema.

Payloads come from ../shared/fixtures/linear (recorded by others, read by path, posted as their
exact bytes); documents and their variables are validated with graphql-core against
../shared/specs/linear/schema.graphql — both the module constants and every request the fake
Linear API recorded during an end-to-end run.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLSchema, OperationDefinitionNode, build_schema, parse, validate
from graphql.execution.values import get_variable_values

from chatops.core.lifecycle import TaskState
from integrations.linear import documents
from tests.linear.payloads import sign
from tests.linear_rig import WEBHOOK_SECRET

pytestmark = pytest.mark.conformance

ONE_ENVIRONMENT = '[environments.ok]\nrepository = "{repo}"\nqueue = "{queue}"\n'


@cache
def _schema(path: Path) -> GraphQLSchema:
    return build_schema(path.read_text(encoding="utf-8"))


@pytest.fixture
def schema(shared_dir: Path) -> GraphQLSchema:
    return _schema(shared_dir / "specs" / "linear" / "schema.graphql")


def fixture_path(shared_dir: Path, name: str) -> Path:
    return shared_dir / "fixtures" / "linear" / name


def problems(schema: GraphQLSchema, query: str, variables: dict[str, Any]) -> list[str]:
    """What Linear's schema says is wrong with a document and its variables."""
    document = parse(query)
    found = [error.message for error in validate(schema, document)]
    if found:
        return found
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables)
    return [error.message for error in coerced] if isinstance(coerced, list) else []


@pytest.mark.parametrize("name", sorted(documents.ALL))
def test_every_document_validates_against_the_schema(schema, name):
    assert validate(schema, parse(documents.ALL[name])) == []


def test_the_checker_catches_wrong_fields_and_variables(schema):
    assert problems(schema, "query { viewer { nickname } }", {})
    assert problems(schema, documents.ISSUE_MOVE, {"id": "i", "stateId": 3})
    assert problems(schema, documents.AGENT_ACTIVITY_CREATE, {"input": {"content": {}}})
    assert problems(schema, documents.COMMENT_CREATE, {"input": {"body": "x", "issueID": "i"}})
    assert not problems(schema, documents.COMMENT_CREATE, {"input": {"body": "x",
                                                                     "issueId": "i"}})


def _post_fixture(linear, path: Path):
    """The recorded delivery's exact bytes, signed, at the time it was sent."""
    body = path.read_bytes()
    linear.clock.at = json.loads(body)["webhookTimestamp"] / 1000
    return linear.post(body, {"Content-Type": "application/json", **sign(body, WEBHOOK_SECRET)})


@pytest.mark.docker
def test_the_recorded_session_event_starts_a_task_and_every_call_conforms(
        linear, shared_dir, schema):
    path = fixture_path(shared_dir, "agent_session_event_created.json")
    recorded = json.loads(path.read_text())
    session, issue = recorded["agentSession"], recorded["agentSession"]["issue"]
    fake = linear.fake
    team = fake.add_team(issue["team"]["key"], issue["team"]["name"],
                         team_id=issue["team"]["id"])
    fake.add_issue(team, issue["title"], issue["description"], issue_id=issue["id"],
                   identifier=issue["identifier"])
    fake.add_session(issue["id"], session["commentId"], session_id=session["id"])
    linear.deployment.write_environments(replace=ONE_ENVIRONMENT)

    response = _post_fixture(linear, path)
    assert response.status_code == 200, response.text
    [task] = linear.tasks()
    assert task.request.instruction == "ping. no detailed response needed, maybe just a pong"
    assert task.request.requester == session["creatorId"]
    assert task.request.dedupe_key == f"linear:comment:{session['comment']['id']}"
    origin = task.request.origin
    assert (origin.issue_id, origin.identifier, origin.agent_session_id) == (
        issue["id"], "GENT-774", session["id"])
    assert origin.teams == ("GENT", issue["team"]["id"])
    assert origin.url == issue["url"]

    linear.deployment.work()  # "ping." is not a command: the task fails, and says so
    assert linear.store.get(task.id).state is TaskState.FAILED
    activities = fake.wait_until(
        lambda: (lambda a: a if a and a[-1]["content"]["type"] == "error" else None)(
            fake.activities(session["id"])), what="the error activity")
    assert activities[0]["content"]["type"] == "thought"
    assert {"issue", "agentActivityCreate"} <= {f for r in fake.requests for f in r.fields}
    assert_requests_conform(fake, schema)


@pytest.mark.docker
def test_every_request_of_an_issue_run_conforms(linear, schema):
    from tests.linear.payloads import comment_create, issue_update

    fake = linear.fake
    linear.deployment.environ.update(LINEAR_STARTED_STATE="In Progress",
                                     LINEAR_REVIEW_STATE="In Review")
    issue = fake.add_issue(linear.team, "touch conformed", creator=linear.bob)
    fake.add_comment(issue, "context", linear.bob)
    linear.deliver(issue_update(fake, issue, linear.alice, assigneeId=fake.bot_id))
    linear.deliver(comment_create(fake, issue, "@chatops env:nope x", linear.alice))
    linear.deployment.work()
    [task] = linear.tasks()
    assert linear.store.get(task.id).state is TaskState.SUCCEEDED
    fake.wait_until(lambda: fake.attachments(issue), what="the attachment")
    fields = {f for r in fake.requests for f in r.fields}
    assert {"issue", "commentCreate", "commentUpdate", "attachmentCreate",
            "issueUpdate"} <= fields
    assert_requests_conform(fake, schema)


def assert_requests_conform(fake, schema) -> None:
    assert fake.requests, "nothing was sent to check"
    found = {(r.operation, message) for r in fake.requests
             for message in problems(schema, r.query, r.variables)}
    assert not found, sorted(found)


@pytest.mark.docker
@pytest.mark.parametrize("name", ["comment_create_webhook.json",
                                  "issue_update_webhook_title_change.json"])
def test_recorded_comment_and_title_change_are_acknowledged_and_ignored(linear, shared_dir,
                                                                        name):
    response = _post_fixture(linear, fixture_path(shared_dir, name))
    assert response.status_code == 200, response.text
    assert "ignored" in response.json()
    assert linear.tasks() == []


@pytest.mark.docker
def test_a_recorded_delivery_replayed_now_is_refused(linear, shared_dir):
    body = fixture_path(shared_dir, "comment_create_webhook.json").read_bytes()
    response = linear.post(body, {"Content-Type": "application/json",
                                  **sign(body, WEBHOOK_SECRET)})
    assert response.status_code == 401
