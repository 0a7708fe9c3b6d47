"""Turning Linear webhook payloads into what chatops should do. Pure functions over dicts.

    Issue update    the bot became the assignee or delegate, or the trigger label was added
    Comment create  a comment that mentions the bot (or answers its question with env:NAME)
    AgentSessionEvent created   a session opened for the bot (mention or delegation)
    AgentSessionEvent prompted  a message in the session: an answer, a follow-up, or "stop"

Each trigger is one TaskRequest-to-be with a dedupe key naming the event, not the delivery,
so a redelivery (or the same change seen twice) never makes a second task:

    linear:issue:<issue id>:<data.updatedAt>   assignment, delegation, label (one per change)
    linear:comment:<comment id>                a mention; also a session opened from a
                                               comment, since Linear may send both events
    linear:session:<session id>:created        a session opened without a comment
    linear:activity:<activity id>              a prompt in a session
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chatops.core.task import LinearIssue, TaskRequest

TRIGGERS = ("assign", "delegate", "label", "mention", "agent")

# `env:NAME` or `repo:NAME` picks the environment; `attempts:N` asks for several candidates.
_ENV_HINT = re.compile(r"(?<!\S)(?:env|repo):(?P<name>[A-Za-z0-9._-]+)(?!\S)")
_ATTEMPTS = re.compile(r"(?<!\S)attempts:(?P<n>\d+)(?!\S)")
_LEADING_MENTION = re.compile(r"^\s*(?:\[@[^\]]*\]\([^)]*\)|@\S+)\s*")


@dataclass(frozen=True)
class Bot:
    """Who the bot is and what wakes it, as the parser needs to know."""

    user_id: str = ""
    name: str = "chatops"
    triggers: frozenset[str] = frozenset(TRIGGERS)
    label: str = "codex-ready"


@dataclass(frozen=True)
class Trigger:
    """Something that asks for work (or answers a question about it)."""

    kind: str  # one of TRIGGERS, "prompt" (in a session) or "reply" (a comment answering)
    origin: LinearIssue
    requester: str
    instruction: str
    dedupe_key: str
    environment: str | None = None
    attempts: int = 1
    # The environment named by a message that says nothing else: maybe an answer.
    reply_env: str | None = None
    # The words of the message itself, for matching an answer to the choices.
    text: str = ""

    def request(self) -> TaskRequest:
        return TaskRequest(origin=self.origin, requester=self.requester,
                           instruction=self.instruction, environment=self.environment,
                           attempts=self.attempts, dedupe_key=self.dedupe_key)


@dataclass(frozen=True)
class Stop:
    """The stop signal in an agent session: cancel what runs for it."""

    session_id: str
    origin: LinearIssue
    activity_id: str


@dataclass(frozen=True)
class Ignored:
    reason: str


Event = Trigger | Stop | Ignored


class Malformed(ValueError):
    """A payload missing what its type needs (answered 400)."""


def parse_event(payload: dict[str, Any], bot: Bot) -> Event:
    kind, action = payload.get("type"), payload.get("action")
    if not isinstance(kind, str) or not isinstance(action, str):
        raise Malformed("the payload has no type or action")
    if kind == "Issue" and action in {"create", "update"}:
        return _issue(payload, bot, created=action == "create")
    if kind == "Comment" and action == "create":
        return _comment(payload, bot)
    if kind == "AgentSessionEvent" and action in {"created", "prompted"}:
        if "agent" not in bot.triggers:
            return Ignored("the agent trigger is off")
        return _session(payload, action)
    return Ignored(f"{kind} {action} is not something chatops acts on")


# -- Issue --------------------------------------------------------------------------------


def _issue(payload: dict[str, Any], bot: Bot, created: bool) -> Event:
    data = _dict(payload, "data")
    issue_id = _str(data, "id", "data")
    stamp = "created" if created else _str(data, "updatedAt", "data")
    actor = _id_of(payload.get("actor"))
    if bot.user_id and actor == bot.user_id:
        return Ignored("a change the bot made itself")
    before = _obj(payload, "updatedFrom")
    # Linear opens an agent session for every delegation to an app: with the agent trigger
    # on, that session is the request, and the Issue webhook would make it twice.
    watched = [("assign", "assigneeId")]
    if "agent" not in bot.triggers:
        watched.append(("delegate", "delegateId"))
    reasons = [why for why, field in watched
               if why in bot.triggers and bot.user_id and data.get(field) == bot.user_id
               and (created or (field in before and before[field] != bot.user_id))]
    if "label" in bot.triggers and _label_added(data, before, bot.label, created):
        reasons.append("label")
    if not reasons:
        return Ignored("an issue change that is not an assignment, delegation or the label")
    title = str(data.get("title") or "").strip()
    description = str(data.get("description") or "").strip()
    text, env, attempts = split_hints(f"{title}\n\n{description}".strip())
    if not text:
        raise Malformed("the issue has neither title nor description")
    return Trigger(kind=reasons[0], origin=_origin(data, payload.get("url")),
                   requester=actor or "linear", instruction=text,
                   dedupe_key=f"linear:issue:{issue_id}:{stamp}", environment=env,
                   attempts=attempts)


def _label_added(data: dict[str, Any], before: dict[str, Any], name: str, created: bool,
                 ) -> bool:
    if not name or (not created and not isinstance(before.get("labelIds"), list)):
        return False
    old = set() if created else {str(i) for i in before["labelIds"]}
    added = {str(i) for i in data.get("labelIds") or []} - old
    labels = [lab for lab in data.get("labels") or [] if isinstance(lab, dict)]
    return any(str(lab.get("id")) in added and str(lab.get("name", "")).lower() == name.lower()
               for lab in labels)


# -- Comment ------------------------------------------------------------------------------


def _comment(payload: dict[str, Any], bot: Bot) -> Event:
    data = _dict(payload, "data")
    comment_id = _str(data, "id", "data")
    body = data.get("body")
    if not isinstance(body, str):
        raise Malformed("data.body is missing")
    issue = _obj(data, "issue")
    issue_id = data.get("issueId") or issue.get("id")
    if not issue_id:
        return Ignored("a comment that is not on an issue")
    author = str(data.get("userId") or _id_of(data.get("user")) or "")
    if bot.user_id and author == bot.user_id:
        return Ignored("the bot's own comment")
    if data.get("botActor") or not author:
        return Ignored("a comment by an integration or bot")
    mentioned = mentions(body, bot)
    text, env, attempts = split_hints(strip_mentions(body, bot) if mentioned else body)
    if not mentioned and not (env and not text):
        return Ignored("a comment that does not mention the bot")
    if mentioned and "mention" not in bot.triggers:
        return Ignored("the mention trigger is off")
    origin = _origin({**issue, "id": issue_id}, None)
    return Trigger(kind="mention" if mentioned else "reply", origin=origin, requester=author,
                   instruction=text or str(issue.get("title") or "").strip(),
                   dedupe_key=f"linear:comment:{comment_id}", environment=env,
                   attempts=attempts, reply_env=env if not text else None, text=text)


def mentions(body: str, bot: Bot) -> bool:
    """Does ``body`` mention the bot: ``@name`` (or a link to it) or its user id?"""
    if bot.user_id and bot.user_id in body:
        return True
    return bool(bot.name) and re.search(_name_pattern(bot.name), body, re.IGNORECASE) is not None


def strip_mentions(body: str, bot: Bot) -> str:
    text = re.sub(rf"\[{_name_pattern(bot.name)}\]\([^)]*\)", "", body) if bot.name else body
    if bot.name:
        text = re.sub(_name_pattern(bot.name), "", text, flags=re.IGNORECASE)
    if bot.user_id:
        text = re.sub(rf"\[[^\]]*\]\([^)]*{re.escape(bot.user_id)}[^)]*\)", "", text)
        text = text.replace(bot.user_id, "")
    return text.strip()


def _name_pattern(name: str) -> str:
    return rf"(?<![\w@])@{re.escape(name)}(?![\w-])"


# -- Agent sessions -----------------------------------------------------------------------


def _session(payload: dict[str, Any], action: str) -> Event:
    session = _dict(payload, "agentSession")
    session_id = _str(session, "id", "agentSession")
    issue = _obj(session, "issue")
    issue_id = session.get("issueId") or issue.get("id")
    if not issue_id:
        return Ignored("an agent session that is not on an issue")
    app_user = str(payload.get("appUserId") or session.get("appUserId") or "")
    origin = _origin({**issue, "id": issue_id}, None, session_id)
    if action == "prompted":
        return _prompted(payload, session_id, origin, app_user)
    creator = str(session.get("creatorId") or _id_of(session.get("creator")) or "")
    if app_user and creator == app_user:
        return Ignored("a session the bot opened itself")
    comment = _obj(session, "comment")
    said = _LEADING_MENTION.sub("", str(comment.get("body") or ""), count=1).strip()
    title = str(issue.get("title") or "").strip()
    description = str(issue.get("description") or "").strip()
    fallback = f"{title}\n\n{description}".strip() or str(payload.get("promptContext") or "")
    text, env, attempts = split_hints(said or fallback)
    if not text:
        text = split_hints(fallback)[0]
    if not text:
        raise Malformed("the agent session has no comment, issue title or prompt context")
    source = _source_comment(session)
    key = f"linear:comment:{source}" if source else f"linear:session:{session_id}:created"
    return Trigger(kind="agent", origin=origin, requester=creator or "linear",
                   instruction=text, dedupe_key=key, environment=env, attempts=attempts,
                   text=said)


def _prompted(payload: dict[str, Any], session_id: str, origin: LinearIssue, app_user: str,
              ) -> Event:
    activity = _dict(payload, "agentActivity")
    activity_id = _str(activity, "id", "agentActivity")
    if activity.get("signal") == "stop":
        return Stop(session_id, origin, activity_id)
    author = str(activity.get("userId") or _id_of(activity.get("user")) or "")
    if app_user and author == app_user:
        return Ignored("the bot's own activity")
    content = _obj(activity, "content")
    body = content.get("body")
    if not isinstance(body, str):
        raise Malformed("agentActivity.content.body is missing")
    text, env, attempts = split_hints(body)
    return Trigger(kind="prompt", origin=origin, requester=author or "linear",
                   instruction=text, dedupe_key=f"linear:activity:{activity_id}",
                   environment=env, attempts=attempts, reply_env=env if not text else None,
                   text=text)


def _source_comment(session: dict[str, Any]) -> str:
    metadata = _obj(session, "sourceMetadata")
    inner = _obj(metadata, "agentSessionMetadata")
    comment = _obj(session, "comment")
    return str(session.get("sourceCommentId") or inner.get("sourceCommentId")
               or comment.get("id") or session.get("commentId") or "")


# -- shared -------------------------------------------------------------------------------


def split_hints(text: str) -> tuple[str, str | None, int]:
    """(text without hints, environment hint, attempts) from a message."""
    env = _ENV_HINT.search(text)
    attempts = _ATTEMPTS.search(text)
    # Only a hint and the blanks after it go: the rest (indentation, code) stays as written.
    cleaned = re.sub(rf"(?:{_ENV_HINT.pattern}|{_ATTEMPTS.pattern})[ \t]*", "", text).strip()
    count = min(max(int(attempts.group("n")), 1), 8) if attempts else 1
    return cleaned, env.group("name") if env else None, count


def _origin(issue: dict[str, Any], url: Any, session_id: str | None = None) -> LinearIssue:
    """The issue as an origin, with every name its team, project and labels go by."""
    team = _obj(issue, "team")
    project = _obj(issue, "project")
    labels = [lab for lab in issue.get("labels") or [] if isinstance(lab, dict)]
    identifier = str(issue.get("identifier") or "")
    if not identifier and team.get("key") and isinstance(issue.get("number"), int | float):
        identifier = f"{team['key']}-{int(issue['number'])}"
    return LinearIssue(
        issue_id=str(issue["id"]), identifier=identifier, agent_session_id=session_id,
        url=str(url or issue.get("url") or ""),
        teams=_names(team.get("key"), team.get("name"), team.get("id"), issue.get("teamId")),
        projects=_names(project.get("name"), project.get("id"), issue.get("projectId")),
        labels=_names(*(lab.get("name") for lab in labels), *(lab.get("id") for lab in labels)),
    )


def _names(*values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v) for v in values if v))


def _dict(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise Malformed(f"the payload has no {key} object")
    return value


def _obj(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _str(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{where}.{key} is missing")
    return value


def _id_of(value: Any) -> str:
    return str(value.get("id") or "") if isinstance(value, dict) else ""
