"""A loopback Linear GraphQL API for the real ``LinearClient`` (httpx).

A real ``ThreadingHTTPServer`` on 127.0.0.1 emulating ``https://api.linear.app/graphql``:

- ``POST /graphql`` with a JSON body ``{"query", "variables", "operationName"}``. The
  ``Authorization`` header is the API key as is, or ``Bearer <OAuth token>``; anything else
  is HTTP 400 with an ``AUTHENTICATION_ERROR`` (as Linear answers).
- Each document is parsed with graphql-core; a syntax error is ``GRAPHQL_PARSE_FAILED``. The
  operation's top-level fields are dispatched to resolvers below, and each answer is cut to the
  selection set (aliases and arguments such as ``first`` honoured), so answers have exactly the
  requested shape.
- Issues, comments, agent sessions and activities, attachments and workflow states live in
  memory. Creations honour a given ``id`` and refuse a second one with the same id (``Entity
  already exists``); an unknown id is ``Entity not found``; an attachment with an issue's
  existing url updates that attachment.
- ``rate_limit`` answers the next requests with HTTP 429 (``Retry-After``) or with a GraphQL
  ``RATELIMITED`` error (HTTP 400), as Linear does.

Every request is recorded as a ``Request``, whatever the answer.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from graphql.utilities import value_from_ast_untyped

API_KEY = "lin_api_fakekeyfortests0000000000000000000000"
OAUTH_TOKEN = "lin_oauth_fake_token_for_tests"
BOT_ID = "b0b0b0b0-0000-4000-8000-000000000b07"
# How often the serving loop looks for stop(), in seconds.
POLL_INTERVAL_S = 0.05
DEFAULT_STATES = ("Backlog", "Todo", "In Progress", "In Review", "Done")
ACTIVITY_TYPES = {"thought", "action", "elicitation", "response", "error", "prompt"}


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    query: str
    variables: dict[str, Any]
    operation: str | None
    fields: tuple[str, ...]  # the operation's top-level fields
    headers: dict[str, str]
    at: float


class Refusal(Exception):
    def __init__(self, message: str, code: str = "INVALID_INPUT") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Fault:
    how: str  # "http" or "graphql"
    retry_after: int
    remaining: int


@dataclass
class Workspace:
    """The state the resolvers read and write; tests seed it through FakeLinear's helpers."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeLinear:
    def __init__(self, *, bot_id: str = BOT_ID, bot_name: str = "chatops",
                 api_key: str = API_KEY, oauth_token: str = OAUTH_TOKEN) -> None:
        self.bot_id = bot_id
        self.api_key = api_key
        self.oauth_token = oauth_token
        self.data = Workspace()
        self.data.users[bot_id] = {"id": bot_id, "name": bot_name, "displayName": bot_name}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[Request] = []
        self._faults: deque[_Fault] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0
        self._resolvers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "viewer": lambda _args: self.data.users[self.bot_id],
            "issue": self._issue,
            "agentActivityCreate": self._activity_create,
            "commentCreate": self._comment_create,
            "commentUpdate": self._comment_update,
            "attachmentCreate": self._attachment_create,
            "issueUpdate": self._issue_update,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FakeLinear:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL_S,),
                                        name="fake-linear", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeLinear is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/graphql"

    # -- seeding -----------------------------------------------------------------------------

    def add_user(self, name: str, user_id: str | None = None) -> str:
        user_id = user_id or str(uuid.uuid4())
        with self._lock:
            self.data.users[user_id] = {"id": user_id, "name": name.title(), "displayName": name}
        return user_id

    def add_team(self, key: str, name: str = "", team_id: str | None = None,
                 states: tuple[str, ...] = DEFAULT_STATES) -> str:
        team_id = team_id or str(uuid.uuid4())
        with self._lock:
            self.data.teams[team_id] = {"id": team_id, "key": key, "name": name or key,
                                        "states": [{"id": str(uuid.uuid4()), "name": s}
                                                   for s in states]}
        return team_id

    def add_issue(self, team_id: str, title: str, description: str = "", *,
                  issue_id: str | None = None, creator: str | None = None,
                  labels: tuple[str, ...] = (), project: str | None = None,
                  parent: str | None = None, identifier: str | None = None) -> str:
        issue_id = issue_id or str(uuid.uuid4())
        with self._lock:
            team = self.data.teams[team_id]
            number = 1 + sum(1 for i in self.data.issues.values() if i["teamId"] == team_id)
            identifier = identifier or f"{team['key']}-{number}"
            self.data.issues[issue_id] = {
                "id": issue_id, "identifier": identifier, "number": number, "title": title,
                "description": description, "teamId": team_id, "creatorId": creator,
                "url": f"https://linear.app/acme/issue/{identifier}",
                "labels": [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "name": name}
                           for name in labels],
                "project": ({"id": str(uuid.uuid5(uuid.NAMESPACE_URL, project)),
                             "name": project} if project else None),
                "parentId": parent, "stateId": team["states"][0]["id"],
                "updatedAt": _now(),
            }
        return issue_id

    def add_comment(self, issue_id: str, body: str, user_id: str) -> dict[str, Any]:
        with self._lock:
            comment = {"id": str(uuid.uuid4()), "issueId": issue_id, "body": body,
                       "userId": user_id, "createdAt": self._stamp()}
            self.data.comments[comment["id"]] = comment
            return dict(comment)

    def add_session(self, issue_id: str, comment_id: str | None = None,
                    session_id: str | None = None, creator: str | None = None) -> str:
        session_id = session_id or str(uuid.uuid4())
        with self._lock:
            self.data.sessions[session_id] = {"id": session_id, "issueId": issue_id,
                                              "commentId": comment_id, "creatorId": creator}
        return session_id

    # -- reading what happened ---------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, field_name: str) -> list[Request]:
        return [r for r in self.requests if field_name in r.fields]

    def activities(self, session_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self.data.activities.values()
                    if a["agentSessionId"] == session_id]

    def comments(self, issue_id: str, by: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self.data.comments.values()
                    if c["issueId"] == issue_id and (by is None or c["userId"] == by)]

    def attachments(self, issue_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self.data.attachments.values() if a["issueId"] == issue_id]

    def state_of(self, issue_id: str) -> str:
        with self._lock:
            issue = self.data.issues[issue_id]
            states = self.data.teams[issue["teamId"]]["states"]
            return next(s["name"] for s in states if s["id"] == issue["stateId"])

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 30,
                   what: str = "") -> Any:
        """Block until ``predicate()`` is truthy (checked on each request); return it."""
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(f"timed out waiting for {what or predicate}; requests: "
                                     f"{[r.fields for r in self._requests]}")
            return predicate()

    # -- faults ------------------------------------------------------------------------------

    def rate_limit(self, times: int = 1, how: str = "http", retry_after: int = 0) -> None:
        """Refuse the next ``times`` requests: HTTP 429, or GraphQL ``RATELIMITED``."""
        with self._lock:
            self._faults.append(_Fault(how, retry_after, times))

    # -- answering ---------------------------------------------------------------------------

    def handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any],
                                                                     dict[str, str]]:
        try:
            envelope = json.loads(body)
            query = str(envelope["query"])
            variables = dict(envelope.get("variables") or {})
        except (ValueError, KeyError, TypeError):
            return 400, _errors("Body must be JSON with a query", "BAD_USER_INPUT"), {}
        try:
            operation = _operation(query)
        except GraphQLError as exc:
            return 400, _errors(exc.message, "GRAPHQL_PARSE_FAILED"), {}
        fields = tuple(s.name.value for s in operation.selection_set.selections
                       if isinstance(s, FieldNode))
        name = operation.name.value if operation.name else None
        with self._changed:
            self._requests.append(Request(query, variables, name, fields, headers, time.time()))
            self._changed.notify_all()
            auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
            if auth not in {self.api_key, f"Bearer {self.oauth_token}"}:
                return 400, _errors("Authentication required", "AUTHENTICATION_ERROR"), {}
            if self._faults:
                fault = self._faults[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.popleft()
                if fault.how == "http":
                    return 429, _errors("Too many requests", "RATELIMITED"), {
                        "Retry-After": str(fault.retry_after)}
                return 400, _errors("Rate limit exceeded", "RATELIMITED"), {}
            data: dict[str, Any] = {}
            try:
                for selection in operation.selection_set.selections:
                    assert isinstance(selection, FieldNode)
                    args = _arguments(selection, variables)
                    value = self._resolvers[selection.name.value](args)
                    key = selection.alias.value if selection.alias else selection.name.value
                    data[key] = _project(value, selection.selection_set, variables)
            except Refusal as exc:
                return 200, {"data": None, **_errors(str(exc), exc.code)}, {}
            except KeyError as exc:
                return 400, _errors(f"Cannot query field {exc}", "GRAPHQL_VALIDATION_FAILED"), {}
            return 200, {"data": data}, {}

    # -- resolvers ---------------------------------------------------------------------------

    def _issue(self, args: dict[str, Any]) -> dict[str, Any]:
        wanted = str(args["id"])
        issue = self.data.issues.get(wanted) or next(
            (i for i in self.data.issues.values() if i["identifier"] == wanted), None)
        if issue is None:
            raise Refusal("Entity not found: Issue", "INVALID_INPUT")
        return self._issue_view(issue)

    def _issue_view(self, issue: dict[str, Any]) -> dict[str, Any]:
        team = self.data.teams[issue["teamId"]]
        comments = sorted((c for c in self.data.comments.values()
                           if c["issueId"] == issue["id"]), key=lambda c: c["createdAt"])
        parent = self.data.issues.get(issue["parentId"] or "")
        return {
            **issue,
            "creator": self.data.users.get(issue["creatorId"] or ""),
            "team": {**team, "states": {"nodes": team["states"]}},
            "labels": {"nodes": issue["labels"]},
            "parent": self._issue_view(parent) if parent else None,
            "comments": _Connection([{**c, "user": self.data.users.get(c["userId"]),
                                      "botActor": None} for c in comments]),
        }

    def _activity_create(self, args: dict[str, Any]) -> dict[str, Any]:
        given = dict(args["input"])
        if given.get("agentSessionId") not in self.data.sessions:
            raise Refusal("Entity not found: AgentSession")
        content = given.get("content") or {}
        kind = content.get("type")
        if kind not in ACTIVITY_TYPES:
            raise Refusal(f"Invalid activity content type {kind!r}")
        needs = ("action", "parameter") if kind == "action" else ("body",)
        if any(not isinstance(content.get(k), str) for k in needs):
            raise Refusal(f"{kind} content needs {', '.join(needs)}")
        activity = self._create(self.data.activities, given, "AgentActivity")
        return {"success": True, "agentActivity": activity, "lastSyncId": 1}

    def _comment_create(self, args: dict[str, Any]) -> dict[str, Any]:
        given = dict(args["input"])
        if given.get("issueId") not in self.data.issues or not given.get("body"):
            raise Refusal("Entity not found: Issue" if given.get("body") else "body is empty")
        comment = self._create(self.data.comments, {**given, "userId": self.bot_id},
                               "Comment")
        return {"success": True, "comment": comment, "lastSyncId": 1}

    def _comment_update(self, args: dict[str, Any]) -> dict[str, Any]:
        comment = self.data.comments.get(str(args["id"]))
        if comment is None:
            raise Refusal("Entity not found: Comment")
        comment.update(dict(args["input"]), updatedAt=self._stamp())
        return {"success": True, "comment": comment, "lastSyncId": 1}

    def _attachment_create(self, args: dict[str, Any]) -> dict[str, Any]:
        given = dict(args["input"])
        if given.get("issueId") not in self.data.issues:
            raise Refusal("Entity not found: Issue")
        existing = next((a for a in self.data.attachments.values()
                         if a["issueId"] == given["issueId"] and a["url"] == given["url"]), None)
        if existing is not None:  # the url is the attachment's key: update in place
            existing.update(given)
            return {"success": True, "attachment": existing, "lastSyncId": 1}
        attachment = self._create(self.data.attachments, given, "Attachment")
        return {"success": True, "attachment": attachment, "lastSyncId": 1}

    def _issue_update(self, args: dict[str, Any]) -> dict[str, Any]:
        issue = self.data.issues.get(str(args["id"]))
        if issue is None:
            raise Refusal("Entity not found: Issue")
        issue.update({k: v for k, v in dict(args["input"]).items() if k == "stateId"},
                     updatedAt=_now())
        return {"success": True, "issue": self._issue_view(issue), "lastSyncId": 1}

    def _create(self, table: dict[str, dict[str, Any]], given: dict[str, Any],
                kind: str) -> dict[str, Any]:
        entity_id = str(given.get("id") or uuid.uuid4())
        if entity_id in table:
            raise Refusal(f"{kind} with this id already exists")
        table[entity_id] = {**given, "id": entity_id, "createdAt": self._stamp()}
        return table[entity_id]

    def _stamp(self) -> str:
        # Strictly increasing, so ordering by creation time is stable within a test.
        self._counter += 1
        return f"2026-01-01T00:00:{self._counter // 1000:02d}.{self._counter % 1000:03d}Z"


class _Connection(list[Any]):
    """A list that answers ``nodes`` honouring ``first`` (Linear's default page is 50)."""

    def page(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"nodes": list(self[: int(args.get("first") or 50)])}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _errors(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code,
                                                           "userPresentableMessage": message}}]}


def _operation(query: str) -> OperationDefinitionNode:
    document = parse(query)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        raise GraphQLError("send exactly one operation per request")
    return operations[0]


def _arguments(node: FieldNode, variables: dict[str, Any]) -> dict[str, Any]:
    return {arg.name.value: value_from_ast_untyped(arg.value, variables)
            for arg in node.arguments or ()}


def _project(value: Any, selection: SelectionSetNode | None, variables: dict[str, Any]) -> Any:
    """``value`` cut down to ``selection``: what a GraphQL server would answer."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [_project(v, selection, variables) for v in value]
    answer: dict[str, Any] = {}
    for node in selection.selections:
        if isinstance(node, InlineFragmentNode):
            answer.update(_project(value, node.selection_set, variables))
            continue
        assert isinstance(node, FieldNode)
        name = node.name.value
        key = node.alias.value if node.alias else name
        item = value.get(name)
        if isinstance(item, _Connection):
            item = item.page(_arguments(node, variables))
        answer[key] = _project(item, node.selection_set, variables)
    return answer


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeLinear/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the recorded requests are the log

    def do_POST(self) -> None:
        fake: FakeLinear = self.server.fake  # type: ignore[attr-defined]
        if self.path.split("?")[0] != "/graphql":
            self._send(404, {"errors": [{"message": "not found"}]}, {})
            return
        length = int(self.headers.get("Content-Length") or 0)
        self._send(*fake.handle(self.rfile.read(length), dict(self.headers.items())))

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
