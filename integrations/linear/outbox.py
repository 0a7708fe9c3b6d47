"""What chatops writes to Linear: activities, comments, attachments, state moves.

Every creation carries an id derived from what it is for (a task and a state, a question),
so a repeat — a retried request, two processes reporting the same state — is refused by
Linear as a conflict instead of posting twice; the conflict is taken as "already posted".
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from integrations.linear import documents
from integrations.linear.client import LinearClient
from integrations.linear.errors import LinearConflict, LinearNotFound

log = logging.getLogger(__name__)


def stable_id(seed: str) -> str:
    """A UUID in version-4 format (what Linear's inputs accept) derived from ``seed``."""
    return str(uuid.UUID(bytes=hashlib.sha256(seed.encode()).digest()[:16], version=4))


class LinearOutbox:
    def __init__(self, client: LinearClient) -> None:
        self.client = client

    def activity(self, session_id: str, content: dict[str, Any], seed: str,
                 signal: str | None = None, signal_metadata: dict[str, Any] | None = None,
                 ) -> str:
        """Post an agent activity once per ``seed``; returns its id."""
        activity_id = stable_id(f"activity:{seed}")
        payload: dict[str, Any] = {"id": activity_id, "agentSessionId": session_id,
                                   "content": content}
        if signal:
            payload["signal"] = signal
        if signal_metadata:
            payload["signalMetadata"] = signal_metadata
        try:
            self.client.execute(documents.AGENT_ACTIVITY_CREATE, {"input": payload})
        except LinearConflict:
            log.info("activity %s was posted already", activity_id)
        return activity_id

    def comment(self, issue_id: str, body: str, seed: str) -> str:
        """Post a comment once per ``seed``; returns its id."""
        comment_id = stable_id(f"comment:{seed}")
        try:
            self.client.execute(documents.COMMENT_CREATE, {"input": {
                "id": comment_id, "issueId": issue_id, "body": body}})
        except LinearConflict:
            log.info("comment %s was posted already", comment_id)
        return comment_id

    def edit_comment(self, comment_id: str, body: str) -> bool:
        """Replace a comment's body; False if the comment is gone."""
        try:
            self.client.execute(documents.COMMENT_UPDATE, {"id": comment_id,
                                                           "input": {"body": body}})
        except LinearNotFound:
            return False
        return True

    def attach(self, issue_id: str, url: str, title: str, subtitle: str) -> None:
        self.client.execute(documents.ATTACHMENT_CREATE, {"input": {
            "issueId": issue_id, "url": url, "title": title, "subtitle": subtitle}})

    def move(self, issue_id: str, state_name: str) -> bool:
        """Move the issue to its team's workflow state called ``state_name``, if it has one."""
        answer = self.client.execute(documents.TEAM_STATES, {"id": issue_id})
        issue = answer.get("issue") or {}
        states = ((issue.get("team") or {}).get("states") or {}).get("nodes") or []
        wanted = state_name.strip().lower()
        state = next((s for s in states if str(s.get("name", "")).lower() == wanted), None)
        if state is None:
            log.info("issue %s: its team has no workflow state named %r", issue_id, state_name)
            return False
        self.client.execute(documents.ISSUE_MOVE, {"id": issue_id, "stateId": state["id"]})
        return True
