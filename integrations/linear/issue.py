"""The issue a request came from, read as the task's context (a ContextSource).

Read when the task starts, so it includes everything said until then: the issue itself,
its parent when it has one, and its comments with their authors' names (ours left out:
they are progress, not conversation).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from chatops.core.task import ContextMessage, LinearIssue, TaskRequest
from integrations.linear import documents
from integrations.linear.client import LinearClient
from integrations.linear.errors import LinearNotFound

# Comments read per issue: Linear's page maximum is 250; the oldest ones come first.
MAX_COMMENTS = 100
# Characters of context kept per comment; an agent gains nothing from a pasted log's tail.
MAX_COMMENT_CHARS = 8_000


class LinearIssueReader:
    def __init__(self, client: LinearClient, bot_user_id: Callable[[], str] = lambda: "",
                 max_comments: int = MAX_COMMENTS) -> None:
        self.client = client
        self.bot_user_id = bot_user_id
        self.max_comments = max_comments

    def read(self, request: TaskRequest) -> TaskRequest:
        origin = request.origin
        if not isinstance(origin, LinearIssue):
            return request
        answer = self.client.execute(documents.ISSUE_CONTEXT, {
            "id": origin.issue_id, "comments": self.max_comments})
        issue = answer.get("issue")
        if not isinstance(issue, dict):
            raise LinearNotFound(f"Linear issue {origin.identifier or origin.issue_id} "
                                 "could not be read")
        ours = self.bot_user_id()
        context = [_issue_message(issue)]
        parent = issue.get("parent")
        if isinstance(parent, dict):
            context.append(_issue_message(parent, "parent issue"))
        comments = [c for c in (issue.get("comments") or {}).get("nodes") or []
                    if isinstance(c, dict) and not (ours and _id(c.get("user")) == ours)]
        comments.sort(key=lambda c: str(c.get("createdAt") or ""))
        context.extend(_comment_message(c) for c in comments)
        return request.model_copy(update={
            "context": tuple(context),
            "origin": origin.model_copy(update={
                "url": str(issue.get("url") or origin.url),
                "identifier": str(issue.get("identifier") or origin.identifier)}),
        })


def _issue_message(issue: dict[str, Any], what: str = "") -> ContextMessage:
    heading = f"{issue.get('identifier') or ''} {issue.get('title') or ''}".strip()
    label = f"{what.capitalize()} {heading}" if what else heading
    text = f"{label}\n\n{issue.get('description') or ''}".strip()
    author = _name(issue.get("creator")) or what or "Linear"
    links = (str(issue["url"]),) if issue.get("url") else ()
    return ContextMessage(author=author, text=text, links=links)


def _comment_message(comment: dict[str, Any]) -> ContextMessage:
    author = _name(comment.get("user")) or _name(comment.get("botActor")) or "someone"
    text = str(comment.get("body") or "")
    if len(text) > MAX_COMMENT_CHARS:
        text = text[:MAX_COMMENT_CHARS] + "\n[… cut to fit]"
    return ContextMessage(author=author, text=text, at=_time(comment.get("createdAt")))


def _name(user: Any) -> str:
    if not isinstance(user, dict):
        return ""
    return str(user.get("name") or user.get("displayName") or "")


def _id(user: Any) -> str:
    return str(user.get("id") or "") if isinstance(user, dict) else ""


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
