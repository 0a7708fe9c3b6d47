"""A loopback GitHub REST API: the endpoints the forge uses, with GitHub's rules and refusals.

A real ``ThreadingHTTPServer`` on 127.0.0.1 that the forge reaches through its real httpx
client. It records every request (method, path, query, headers, JSON body), authenticates
like GitHub (App JWTs verified with the App's public key; personal and installation tokens,
the latter until they expire by the test's clock), keeps pull requests and comments, and
can be told to answer a request with anything (``script``) to play refusals and limits.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt

DOCS = "https://docs.github.com/rest"
# Seconds between the server loop's shutdown checks: short, so that teardown is quick.
POLL_S = 0.02


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Canned:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def validation_failed(message: str) -> Canned:
    """GitHub's 422 with one custom error, as it words "No commits between ..." and the like."""
    return Canned(422, {"message": "Validation Failed", "documentation_url": DOCS,
                        "errors": [{"resource": "PullRequest", "code": "custom",
                                    "message": message}]})


class FakeGitHub:
    """The server's state and configuration; ``url`` is the API root to give the forge."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        prefix: str = "/api/v3",
        web_url: str = "https://github.example",
        tokens: tuple[str, ...] = (),
        app_id: str = "",
        public_key: Any = None,
        installations: dict[str, int] | None = None,
        token_ttl_s: int = 3600,
    ) -> None:
        self.clock = clock
        self.prefix = prefix
        self.web_url = web_url
        self.app_id = app_id
        self.public_key = public_key
        self.installations = dict(installations or {})
        self.token_ttl_s = token_ttl_s
        # token -> expiry (epoch seconds) or None for a personal token.
        self.valid_tokens: dict[str, float | None] = dict.fromkeys(tokens)
        self.issued: list[str] = []
        self.jwt_claims: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.pulls: dict[str, list[dict[str, Any]]] = {}
        self.comments: list[dict[str, Any]] = []
        # Replace the default answers with recorded payloads (conformance tests).
        self.token_response: dict[str, Any] | None = None
        self.create_response: dict[str, Any] | None = None
        self._scripted: list[tuple[str, re.Pattern[str], Canned]] = []
        self._lock = threading.Lock()
        self._next_number = 1
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": POLL_S}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}"

    # -- what tests tell it and ask it ----------------------------------------------------

    def script(self, method: str, path: str, *answers: Canned) -> None:
        """Answer the next ``len(answers)`` requests matching ``method`` and ``path`` (regex,
        matched against the path after the API prefix) with ``answers``, in order."""
        with self._lock:
            for answer in answers:
                self._scripted.append((method, re.compile(path), answer))

    def seen(self, method: str, path: str) -> list[Recorded]:
        """Recorded requests whose path (after the prefix) fully matches the regex ``path``."""
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def open_pulls(self, repo: str) -> list[dict[str, Any]]:
        return [pr for pr in self.pulls.get(repo, []) if pr["state"] == "open"]

    # -- request handling -----------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) \
            -> Canned:
        parts = urlsplit(raw_path)
        if not parts.path.startswith(self.prefix + "/"):
            return _not_found()
        path = parts.path[len(self.prefix):]
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return Canned(400, {"message": "Problems parsing JSON", "documentation_url": DOCS})
        with self._lock:
            self.requests.append(Recorded(method, path, dict(parse_qsl(parts.query)), headers,
                                          data))
            for index, (verb, pattern, answer) in enumerate(self._scripted):
                if verb == method and pattern.fullmatch(path):
                    del self._scripted[index]
                    return answer
            return self._route(method, path, dict(parse_qsl(parts.query)), headers, data)

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               data: Any) -> Canned:
        credential = headers.get("authorization", "")
        if method == "POST" and (m := re.fullmatch(r"/app/installations/(\d+)/access_tokens",
                                                   path)):
            return self._app(credential) or self._access_token(int(m.group(1)))
        if method == "GET" and (m := re.fullmatch(r"/repos/([^/]+/[^/]+)/installation", path)):
            return self._app(credential) or self._installation(m.group(1))
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/(pulls|issues/(\d+)/comments)", path)
        if not m:
            return _not_found()
        refused = self._user(credential)
        if refused:
            return refused
        repo = m.group(1)
        if m.group(2) == "pulls" and method == "GET":
            return self._list_pulls(repo, query)
        if m.group(2) == "pulls" and method == "POST":
            return self._create_pull(repo, data)
        if m.group(3) and method == "POST":
            return self._comment(repo, int(m.group(3)), data)
        return _not_found()

    def _app(self, credential: str) -> Canned | None:
        """None when ``credential`` is a valid App JWT, else GitHub's 401."""
        scheme, _, token = credential.partition(" ")
        if scheme != "Bearer" or self.public_key is None:
            return _unauthorized("A JSON web token could not be decoded")
        # The signature by the library; the times against the test's clock, which the forge
        # shares, so that tests may move time.
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["RS256"], options={
                "verify_exp": False, "verify_iat": False, "require": ["iat", "exp", "iss"]})
        except jwt.PyJWTError as exc:
            return _unauthorized(f"A JSON web token could not be decoded ({exc})")
        self.jwt_claims.append(claims)
        now = self.clock()
        if str(claims["iss"]) != self.app_id:
            return _unauthorized("Integration not found")
        if claims["exp"] - claims["iat"] > 600:
            return _unauthorized("Expiration time' claim ('exp') is too far in the future")
        if claims["exp"] <= now or claims["iat"] > now + 60:
            return _unauthorized("'Issued at' or 'Expiration time' claim is out of range")
        return None

    def _user(self, credential: str) -> Canned | None:
        scheme, _, token = credential.partition(" ")
        if scheme != "Bearer" or token not in self.valid_tokens:
            return _unauthorized("Bad credentials")
        expires = self.valid_tokens[token]
        if expires is not None and expires <= self.clock():
            return _unauthorized("Bad credentials")
        return None

    def _installation(self, repo: str) -> Canned:
        if repo not in self.installations:
            return _not_found()
        return Canned(200, {"id": self.installations[repo], "app_id": self.app_id,
                            "account": {"login": repo.split("/")[0]},
                            "repository_selection": "selected"})

    def _access_token(self, installation_id: int) -> Canned:
        if installation_id not in self.installations.values():
            return _not_found()
        if self.token_response is not None:
            answer = self.token_response
            expires = datetime.fromisoformat(answer["expires_at"]).timestamp()
        else:
            expires = float(int(self.clock()) + self.token_ttl_s)
            answer = {
                "token": f"ghs_{secrets.token_hex(18)}",
                "expires_at": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": {"contents": "write", "pull_requests": "write"},
                "repository_selection": "selected",
            }
        self.issued.append(answer["token"])
        self.valid_tokens[answer["token"]] = expires
        return Canned(201, answer)

    def _list_pulls(self, repo: str, query: dict[str, str]) -> Canned:
        owner = repo.split("/")[0]
        found = [pr for pr in self.pulls.get(repo, [])
                 if query.get("state", "open") in {pr["state"], "all"}
                 and ("head" not in query or query["head"] == f"{owner}:{pr['head']['ref']}")]
        return Canned(200, found)

    def _create_pull(self, repo: str, data: Any) -> Canned:
        if not isinstance(data, dict) or not all(
            isinstance(data.get(key), str) and data[key] for key in ("title", "head", "base")
        ):
            return Canned(422, {"message": "Invalid request.", "documentation_url": DOCS})
        owner = repo.split("/")[0]
        for pr in self.open_pulls(repo):
            if pr["head"]["ref"] == data["head"]:
                return validation_failed(f"A pull request already exists for {owner}:"
                                         f"{data['head']}.")
        number = self._next_number
        self._next_number += 1
        pr = self.create_response or {
            "url": f"{self.url}/repos/{repo}/pulls/{number}",
            "id": 1000 + number,
            "node_id": f"PR_{number}",
            "html_url": f"{self.web_url}/{repo}/pull/{number}",
            "number": number,
            "state": "open",
            "title": data["title"],
            "body": data.get("body") or None,
            "draft": bool(data.get("draft", False)),
            "head": {"ref": data["head"], "label": f"{owner}:{data['head']}", "sha": "0" * 40},
            "base": {"ref": data["base"], "label": f"{owner}:{data['base']}", "sha": "1" * 40},
        }
        self.pulls.setdefault(repo, []).append(pr)
        return Canned(201, pr, {"location": pr["url"]})

    def _comment(self, repo: str, number: int, data: Any) -> Canned:
        if not any(pr["number"] == number for pr in self.pulls.get(repo, [])):
            return _not_found()
        if not isinstance(data, dict) or not isinstance(data.get("body"), str):
            return Canned(422, {"message": "Invalid request.", "documentation_url": DOCS})
        comment_id = 5000 + len(self.comments)
        comment = {"id": comment_id, "body": data["body"], "number": number,
                   "html_url": f"{self.web_url}/{repo}/pull/{number}#issuecomment-{comment_id}"}
        self.comments.append(comment)
        return Canned(201, comment)


def _not_found() -> Canned:
    return Canned(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})


def _unauthorized(message: str) -> Canned:
    return Canned(401, {"message": message, "documentation_url": DOCS, "status": "401"})


def _handler_for(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            answer = fake.handle(self.command, self.path, headers, body)
            payload = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test reads fake.requests; stderr noise helps no one

    return Handler
