"""Parsing webhook payloads (written here, in Linear's documented shapes) into triggers."""

from __future__ import annotations

import pytest

from integrations.linear.events import (
    Bot,
    Ignored,
    Malformed,
    Stop,
    Trigger,
    mentions,
    parse_event,
    split_hints,
    strip_mentions,
)

BOT = Bot(user_id="u-bot", name="chatops")
TEAM = {"id": "t-1", "key": "ENG", "name": "Engineering"}


def issue_update(data=None, updated_from=None, actor="u-alice", action="update"):
    base = {"id": "i-1", "identifier": "ENG-7", "title": "Fix retry", "description": "It loops.",
            "updatedAt": "2026-05-01T10:00:00.000Z", "teamId": "t-1", "team": TEAM,
            "labelIds": [], "labels": [], "assigneeId": None,
            "project": {"id": "p-1", "name": "Reliability"}, "projectId": "p-1"}
    payload = {"type": "Issue", "action": action, "data": {**base, **(data or {})},
               "updatedFrom": updated_from if updated_from is not None else {},
               "url": "https://linear.app/acme/issue/ENG-7", "webhookTimestamp": 1}
    if actor:
        payload["actor"] = {"id": actor, "type": "user"}
    return payload


def comment(body, user="u-alice", **data):
    return {"type": "Comment", "action": "create", "webhookTimestamp": 1, "data": {
        "id": "c-1", "body": body, "issueId": "i-1", "userId": user,
        "issue": {"id": "i-1", "identifier": "ENG-7", "title": "Fix retry", "team": TEAM},
        **data}}


def session(action="created", body="@chatops touch x", **extra):
    payload = {"type": "AgentSessionEvent", "action": action, "appUserId": "u-app",
               "webhookTimestamp": 1, "agentSession": {
                   "id": "s-1", "issueId": "i-1", "creatorId": "u-alice",
                   "issue": {"id": "i-1", "identifier": "ENG-7", "title": "Fix retry",
                             "description": "It loops.", "team": TEAM},
                   "comment": {"id": "c-9", "body": body} if body is not None else None},
               **extra}
    return payload


def test_an_assignment_to_the_bot_is_a_trigger_with_the_issue_as_instruction():
    event = parse_event(issue_update({"assigneeId": "u-bot"}, {"assigneeId": None}), BOT)
    assert isinstance(event, Trigger) and event.kind == "assign"
    assert event.instruction == "Fix retry\n\nIt loops."
    assert event.dedupe_key == "linear:issue:i-1:2026-05-01T10:00:00.000Z"
    assert event.requester == "u-alice"
    origin = event.origin
    assert origin.issue_id == "i-1" and origin.identifier == "ENG-7"
    assert origin.teams == ("ENG", "Engineering", "t-1")
    assert origin.projects == ("Reliability", "p-1")
    assert origin.url == "https://linear.app/acme/issue/ENG-7"


def test_a_delegation_and_a_creation_already_assigned_trigger():
    no_sessions = Bot(user_id="u-bot", triggers=frozenset({"assign", "delegate"}))
    delegated = parse_event(issue_update({"delegateId": "u-bot"}, {"delegateId": None}),
                            no_sessions)
    assert isinstance(delegated, Trigger) and delegated.kind == "delegate"
    # With agent sessions on, the session Linear opens for the delegation is the request.
    assert isinstance(parse_event(issue_update({"delegateId": "u-bot"}, {"delegateId": None}),
                                  BOT), Ignored)
    created = parse_event(issue_update({"assigneeId": "u-bot"}, action="create"), BOT)
    assert isinstance(created, Trigger) and created.dedupe_key == "linear:issue:i-1:created"


@pytest.mark.parametrize("data,before,why", [
    ({"assigneeId": "u-bot"}, {"title": "old"}, "not an assignment"),        # title change
    ({"assigneeId": "u-bob"}, {"assigneeId": None}, "someone else"),
    ({"assigneeId": "u-bot"}, {"assigneeId": "u-bot"}, "already ours"),
    ({"labelIds": ["l-1"], "labels": [{"id": "l-1", "name": "codex-ready"}]},
     {"labelIds": ["l-1"]}, "label was there before"),
])
def test_issue_changes_that_are_not_triggers_are_ignored(data, before, why):
    assert isinstance(parse_event(issue_update(data, before), BOT), Ignored), why


def test_adding_the_trigger_label_is_a_trigger_matched_by_name():
    event = parse_event(issue_update(
        {"labelIds": ["l-0", "l-1"], "labels": [{"id": "l-0", "name": "bug"},
                                                {"id": "l-1", "name": "Codex-Ready"}]},
        {"labelIds": ["l-0"]}), BOT)
    assert isinstance(event, Trigger) and event.kind == "label"
    assert event.origin.labels == ("bug", "Codex-Ready", "l-0", "l-1")


def test_switched_off_triggers_and_an_unknown_bot_id_do_not_fire():
    off = Bot(user_id="u-bot", triggers=frozenset({"mention"}))
    assert isinstance(parse_event(issue_update({"assigneeId": "u-bot"}, {"assigneeId": None}),
                                  off), Ignored)
    unknown = Bot(user_id="")
    assert isinstance(parse_event(issue_update({"assigneeId": "u-bot"}, {"assigneeId": None}),
                                  unknown), Ignored)


def test_the_bots_own_changes_and_comments_are_ignored():
    assert isinstance(parse_event(issue_update({"assigneeId": "u-bot"}, {"assigneeId": None},
                                               actor="u-bot"), BOT), Ignored)
    assert isinstance(parse_event(comment("@chatops go", user="u-bot"), BOT), Ignored)
    assert isinstance(parse_event(comment("@chatops go", botActor={"name": "GitHub"}), BOT),
                      Ignored)


def test_a_comment_mention_keeps_its_words_and_hints():
    event = parse_event(comment("@chatops env:api attempts:2 fix\n    the loop"), BOT)
    assert isinstance(event, Trigger) and event.kind == "mention"
    assert event.instruction == "fix\n    the loop"
    assert (event.environment, event.attempts) == ("api", 2)
    assert event.dedupe_key == "linear:comment:c-1"
    assert event.reply_env is None


def test_comments_that_do_not_mention_the_bot_are_ignored_unless_they_answer():
    assert isinstance(parse_event(comment("looks good to me"), BOT), Ignored)
    assert isinstance(parse_event(comment("email chatops@example.com"), BOT), Ignored)
    reply = parse_event(comment("env:web"), BOT)
    assert isinstance(reply, Trigger) and reply.kind == "reply" and reply.reply_env == "web"


def test_mentions_by_name_link_or_user_id():
    assert mentions("hey @ChatOps do it", BOT)
    assert mentions("[@chatops](https://linear.app/acme/profiles/chatops) do it", BOT)
    assert mentions("ping u-bot please", BOT)
    assert not mentions("@chatops-old do it", BOT)
    assert strip_mentions("[@chatops](https://linear.app/x) do it", BOT) == "do it"
    assert strip_mentions("@chatops do it", BOT) == "do it"


def test_a_mention_without_words_works_from_the_issue_title():
    event = parse_event(comment("@chatops"), BOT)
    assert isinstance(event, Trigger) and event.instruction == "Fix retry"


def test_a_session_from_a_comment_shares_the_comments_dedupe_key():
    event = parse_event(session(), BOT)
    assert isinstance(event, Trigger) and event.kind == "agent"
    assert event.instruction == "touch x"
    assert event.dedupe_key == "linear:comment:c-9"
    assert event.origin.agent_session_id == "s-1" and event.requester == "u-alice"


def test_a_session_without_a_comment_works_from_the_issue():
    event = parse_event(session(body=None), BOT)
    assert isinstance(event, Trigger)
    assert event.instruction == "Fix retry\n\nIt loops."
    assert event.dedupe_key == "linear:session:s-1:created"


def test_prompts_stops_and_our_own_activities():
    def prompted(**activity):
        return session("prompted", agentActivity={"id": "a-1", "userId": "u-alice",
                                                  "content": {"type": "prompt",
                                                              "body": "now the docs"},
                                                  **activity})

    follow = parse_event(prompted(), BOT)
    assert isinstance(follow, Trigger) and follow.kind == "prompt"
    assert follow.dedupe_key == "linear:activity:a-1" and follow.instruction == "now the docs"
    stop = parse_event(prompted(signal="stop"), BOT)
    assert isinstance(stop, Stop) and stop.session_id == "s-1"
    assert isinstance(parse_event(prompted(userId="u-app"), BOT), Ignored)
    answer = parse_event(prompted(content={"type": "prompt", "body": "env:ok"}), BOT)
    assert isinstance(answer, Trigger) and answer.reply_env == "ok"


def test_the_agent_trigger_switch():
    assert isinstance(parse_event(session(), Bot(triggers=frozenset({"assign"}))), Ignored)


@pytest.mark.parametrize("payload", [
    {"action": "update"},
    {"type": "Issue"},
    {"type": "Issue", "action": "update"},
    {"type": "Issue", "action": "update", "data": {"updatedAt": "x"}},
    {"type": "Comment", "action": "create", "data": {"id": "c", "issueId": "i"}},
    {"type": "AgentSessionEvent", "action": "created"},
    {"type": "AgentSessionEvent", "action": "prompted", "agentSession": {"id": "s",
                                                                       "issueId": "i"}},
])
def test_payloads_missing_what_they_need_are_malformed(payload):
    with pytest.raises(Malformed):
        parse_event(payload, BOT)


def test_unknown_types_are_ignored():
    assert isinstance(parse_event({"type": "Cycle", "action": "update"}, BOT), Ignored)


def test_split_hints_keeps_the_rest_as_written():
    assert split_hints("env:ok printf x\n    y  z attempts:2") == ("printf x\n    y  z", "ok", 2)
    assert split_hints("attempts:99 go") == ("go", None, 8)
