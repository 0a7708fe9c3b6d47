"""Triggers are switched by LINEAR_TRIGGERS; the bot's id is learned from `viewer` when unset."""

from __future__ import annotations

import pytest

from tests.linear.payloads import comment_create, issue_update, session_created

pytestmark = pytest.mark.docker


@pytest.fixture
def linear_env():
    return {"LINEAR_TRIGGERS": "assign,delegate,mention", "LINEAR_BOT_USER_ID": "<unset>"}


def test_only_the_switched_on_triggers_start_work(linear):
    fake = linear.fake
    issue = fake.add_issue(linear.team, "touch switched")
    assert "ignored" in linear.deliver(issue_update(fake, issue, linear.alice,
                                                    labels=("codex-ready",))).json()
    _, created = session_created(fake, issue, linear.alice, body="@chatops touch s")
    assert linear.deliver(created).json() == {"ignored": "the agent trigger is off"}
    assert linear.tasks() == []
    # The bot's id was learned from `viewer`: assignment to it still triggers.
    assert "task" in linear.deliver(issue_update(fake, issue, linear.alice,
                                                 assigneeId=fake.bot_id)).json()
    assert fake.requests_for("viewer")
    assert "task" in linear.deliver(comment_create(fake, issue, "@ChatOps touch m",
                                                   linear.alice)).json()
    # Without agent sessions, a delegation arrives only as an issue change.
    other = fake.add_issue(linear.team, "touch delegated")
    assert "task" in linear.deliver(issue_update(fake, other, linear.alice,
                                                 delegateId=fake.bot_id)).json()
    assert len(linear.tasks()) == 3
