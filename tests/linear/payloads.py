"""What Linear sends to our webhook: signed deliveries built from the fake's state.

The shapes follow Linear's webhook payload types (``EntityWebhookPayload`` with ``data``,
``updatedFrom`` and ``actor``; ``AgentSessionEventWebhookPayload``), as described in its schema.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

from tests.fakes.linear_api import FakeLinear

ORGANIZATION = "0f0f0f0f-0000-4000-8000-00000000000f"


def sign(body: bytes, secret: str) -> dict[str, str]:
    """The header Linear adds: the hex HMAC-SHA256 of the raw body."""
    return {"Linear-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "Linear-Delivery": str(uuid.uuid4())}


def now_ms() -> int:
    return int(time.time() * 1000)


def _envelope(kind: str, action: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "action": action, "createdAt": _iso(), "organizationId": ORGANIZATION,
            "webhookId": "5e5e5e5e-0000-4000-8000-000000000001",
            "webhookTimestamp": now_ms(), **fields}


def _iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def issue_data(fake: FakeLinear, issue_id: str) -> dict[str, Any]:
    """An issue as webhooks carry it (``IssueWebhookPayload``), from the fake's state."""
    issue = fake.data.issues[issue_id]
    team = fake.data.teams[issue["teamId"]]
    state = next(s for s in team["states"] if s["id"] == issue["stateId"])
    return {
        "id": issue["id"], "identifier": issue["identifier"], "number": issue["number"],
        "title": issue["title"], "description": issue["description"],
        "createdAt": issue["updatedAt"], "updatedAt": issue["updatedAt"],
        "teamId": team["id"], "team": {"id": team["id"], "key": team["key"],
                                       "name": team["name"]},
        "stateId": state["id"], "state": {**state, "type": "unstarted", "color": "#bbb"},
        "labelIds": [lab["id"] for lab in issue["labels"]],
        "labels": [{**lab, "color": "#4EA7FC"} for lab in issue["labels"]],
        "projectId": issue["project"]["id"] if issue["project"] else None,
        "project": issue["project"], "url": issue["url"],
        "assigneeId": issue.get("assigneeId"), "delegateId": issue.get("delegateId"),
        "creatorId": issue["creatorId"], "priority": 0, "priorityLabel": "No priority",
        "subscriberIds": [], "previousIdentifiers": [], "sortOrder": 1.0,
        "prioritySortOrder": 0.0, "reactionData": {},
    }


def issue_update(fake: FakeLinear, issue_id: str, actor: str, **changes: Any,
                 ) -> dict[str, Any]:
    """Apply ``changes`` (assigneeId, delegateId, labels=(names)) and describe them."""
    issue = fake.data.issues[issue_id]
    before: dict[str, Any] = {"updatedAt": issue["updatedAt"]}
    issue["updatedAt"] = f"{_iso()[:-5]}{uuid.uuid4().int % 1000:03d}Z"
    for field in ("assigneeId", "delegateId"):
        if field in changes:
            before[field] = issue.get(field)
            issue[field] = changes[field]
    if "labels" in changes:
        before["labelIds"] = [lab["id"] for lab in issue["labels"]]
        issue["labels"] = [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "name": name}
                           for name in changes["labels"]]
    if "title" in changes:
        before["title"] = issue["title"]
        issue["title"] = changes["title"]
    return _envelope("Issue", "update", data=issue_data(fake, issue_id), updatedFrom=before,
                     actor={"id": actor, "name": fake.data.users[actor]["name"],
                            "type": "user"},
                     url=issue["url"])


def comment_create(fake: FakeLinear, issue_id: str, body: str, user: str,
                   ) -> dict[str, Any]:
    """Seed a comment in the fake and describe its creation (``CommentWebhookPayload``)."""
    comment = fake.add_comment(issue_id, body, user)
    issue = issue_data(fake, issue_id)
    return _envelope("Comment", "create", data={
        "id": comment["id"], "body": body, "issueId": issue_id, "userId": user,
        "createdAt": comment["createdAt"], "updatedAt": comment["createdAt"],
        "reactionData": {},
        "issue": {key: issue[key] for key in ("id", "identifier", "title", "teamId", "team",
                                              "url")},
        "user": {"id": user, "name": fake.data.users[user]["name"]},
    }, actor={"id": user, "type": "user"}, url=f"{issue['url']}#comment-{comment['id'][:8]}")


def session_created(fake: FakeLinear, issue_id: str, user: str, body: str | None = None,
                    ) -> tuple[str, dict[str, Any]]:
    """Open an agent session (from a mention comment when ``body`` is given, else a
    delegation) and describe it as Linear's ``created`` event."""
    comment = fake.add_comment(issue_id, body, user) if body is not None else None
    session_id = fake.add_session(issue_id, comment["id"] if comment else None, creator=user)
    issue = issue_data(fake, issue_id)
    session: dict[str, Any] = {
        "id": session_id, "createdAt": _iso(), "updatedAt": _iso(), "archivedAt": None,
        "creatorId": user, "appUserId": fake.bot_id, "issueId": issue_id,
        "commentId": comment["id"] if comment else None, "sourceCommentId": None,
        "status": "pending", "type": "commentThread" if comment else "issue",
        "organizationId": ORGANIZATION,
        "creator": {"id": user, "name": fake.data.users[user]["name"]},
        "issue": {key: issue[key] for key in ("id", "identifier", "title", "description",
                                              "teamId", "team", "url")},
    }
    if comment:
        session["comment"] = {"id": comment["id"], "body": body, "userId": user,
                              "issueId": issue_id}
        session["sourceMetadata"] = {"type": "comment", "agentSessionMetadata": {
            "sourceCommentId": comment["id"]}}
    return session_id, _envelope(
        "AgentSessionEvent", "created", appUserId=fake.bot_id,
        oauthClientId="oauth-client-1", agentSession=session, guidance=None,
        previousComments=[], promptContext=f'<issue identifier="{issue["identifier"]}">'
                                           f"<title>{issue['title']}</title></issue>")


def session_prompted(fake: FakeLinear, session_id: str, user: str, body: str,
                     signal: str | None = None) -> dict[str, Any]:
    session = fake.data.sessions[session_id]
    issue = issue_data(fake, session["issueId"])
    activity = {"id": str(uuid.uuid4()), "agentSessionId": session_id, "createdAt": _iso(),
                "updatedAt": _iso(), "content": {"type": "prompt", "body": body},
                "signal": signal, "userId": user,
                "user": {"id": user, "name": fake.data.users[user]["name"]}}
    return _envelope("AgentSessionEvent", "prompted", appUserId=fake.bot_id,
                     oauthClientId="oauth-client-1", agentActivity=activity,
                     agentSession={"id": session_id, "issueId": session["issueId"],
                                   "appUserId": fake.bot_id, "status": "active",
                                   "createdAt": _iso(), "updatedAt": _iso(),
                                   "organizationId": ORGANIZATION, "type": "commentThread",
                                   "issue": {k: issue[k] for k in ("id", "identifier",
                                                                    "title", "teamId",
                                                                    "team", "url")}})
