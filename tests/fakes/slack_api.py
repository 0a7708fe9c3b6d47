"""A loopback Slack Web API server for the real ``slack_sdk.WebClient`` (and Bolt).

A real ``ThreadingHTTPServer`` on 127.0.0.1 emulating the transport contract of
``https://slack.com/api/<method>``; what the methods do is ``slack_workspace.SlackWorkspace``.

- A request is ``POST`` (or ``GET``) to ``/api/<method>``. Arguments come in the query string,
  a form body (``application/x-www-form-urlencoded``) or a JSON body; WebClient sends JSON for
  some methods and forms for others. The token comes as ``Authorization: Bearer <token>``
  (or, in a form or query, as ``token=``); a missing or wrong one is ``invalid_auth``.
- Every answer is HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": code}``;
  only rate limiting differs: HTTP 429, ``Retry-After: <seconds>``, ``error: ratelimited``.
- An unknown method is ``unknown_method``.

Every request is recorded as a ``Call`` whatever the answer; ``rate_limit`` and ``fail`` queue
refusals for the next calls of a method, in the order they were queued.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.slack_workspace import Args, SlackError, SlackWorkspace

BOT_TOKEN = "xoxb-0000000000-0000000000000-fakebottokenfortests"
# How often the serving loop looks for stop(), in seconds: stop() waits up to this long.
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Call:
    """One request as the server saw it: ``args`` merges query string and body, as sent."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class _Fault:
    status: int
    error: str
    headers: dict[str, str]
    remaining: int


class FakeSlack(SlackWorkspace):
    """A ``SlackWorkspace`` served over loopback HTTP; ``base_url`` is what WebClient needs.

    Use it as a context manager (or ``start()`` / ``stop()``). ``reset()`` forgets the state,
    the recorded calls and the pending faults, so one server can serve many tests.
    """

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        bot_user_id: str = "U0BOT000001",
        bot_id: str = "B0BOT000001",
        bot_name: str = "chatops",
        team_id: str = "T0TEAM00001",
        team: str = "Chatops Test",
        app_id: str = "A0APP000001",
        url: str = "https://example.slack.test/",
    ) -> None:
        super().__init__(bot_user_id=bot_user_id, bot_id=bot_id, bot_name=bot_name,
                         team_id=team_id, team=team, app_id=app_id, url=url)
        self.bot_token = bot_token
        self._changed = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        if self._server is None:
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            server.fake = self  # type: ignore[attr-defined]
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever,
                                            args=(POLL_INTERVAL_S,), name="fake-slack",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # -- recorded calls ----------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self._calls if call.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10) -> list[Call]:
        """Block until ``count`` calls to ``method`` were recorded, and return them.

        Raises AssertionError, naming the calls seen so far, after ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.calls_to(method)) >= count, timeout):
                seen = [call.method for call in self._calls]
                raise AssertionError(f"expected {count} call(s) to {method} within {timeout} s;"
                                     f" calls so far: {seen}")
            return self.calls_to(method)

    def reset(self) -> None:
        """Forget calls, pending faults, messages, users and ephemeral messages."""
        with self._lock:
            super().reset()
            self._calls.clear()
            self._faults.clear()

    # -- fault injection ---------------------------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429 and ``Retry-After``."""
        self._queue(method, _Fault(429, "ratelimited", {"Retry-After": str(retry_after)}, times))

    def fail(self, method: str, error: str = "channel_not_found", times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``ok: false`` and ``error``."""
        self._queue(method, _Fault(200, error, {}, times))

    def _queue(self, method: str, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.setdefault(method, deque()).append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining == 0:
            queue.popleft()
        return fault

    # -- answering ---------------------------------------------------------------------------

    def handle(self, method: str, args: Args, headers: dict[str, str]
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Record the call and answer it: (HTTP status, JSON body, extra headers)."""
        with self._changed:
            self._calls.append(Call(method, args, headers, time.time()))
            self._changed.notify_all()
            if not self.knows(method) and not self._faults.get(method):
                return 200, {"ok": False, "error": "unknown_method", "req_method": method}, {}
            if _token(args, headers) != self.bot_token:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            fault = self._take_fault(method)
            if fault is not None:
                return fault.status, {"ok": False, "error": fault.error}, dict(fault.headers)
            try:
                return 200, {"ok": True, **self.call(method, args)}, {}
            except SlackError as exc:
                return 200, {"ok": False, "error": exc.code}, {}


def _token(args: Args, headers: dict[str, str]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "authorization" and value.startswith("Bearer "):
            return value.removeprefix("Bearer ").strip()
    token = args.get("token")
    return token if isinstance(token, str) else None


class _Handler(BaseHTTPRequestHandler):
    """Turns ``/api/<method>`` requests into args for ``FakeSlack.handle``."""

    server_version = "FakeSlack/1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the recorded calls are the log

    def _serve(self) -> None:
        fake: FakeSlack = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        method = parts.path.removeprefix("/api/")
        if not parts.path.startswith("/api/") or not method:
            self._send(404, {"ok": False, "error": "not_found"}, {})
            return
        args: Args = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        try:
            args.update(self._body_args(self.rfile.read(length) if length else b""))
        except ValueError as exc:
            self._send(200, {"ok": False, "error": str(exc)}, {})
            return
        self._send(*fake.handle(method, args, dict(self.headers.items())))

    def _body_args(self, body: bytes) -> Args:
        if not body:
            return {}
        if self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                parsed = json.loads(body)
            except ValueError:
                raise ValueError("invalid_json") from None
            if not isinstance(parsed, dict):
                raise ValueError("invalid_json")
            return parsed
        try:
            return dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise ValueError("invalid_form_data") from None

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
