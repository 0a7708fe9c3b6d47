"""A git smart-HTTP server on loopback: ``git http-backend`` (CGI) behind a Python server.

It serves the bare repositories under ``root`` (``/OWNER/REPO.git``) the way GitHub serves
them over HTTPS: every request must carry ``Authorization: Basic`` with the user
``x-access-token`` and a token that ``accepts`` approves, or it gets a 401. It records the
``Authorization`` header of each request, so tests can tell which token reached the server.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.integrations.github.fake_github import POLL_S
from tests.integrations.gitutil import git


def make_served_repository(root: Path, full_name: str, seed: Path) -> Path:
    """A bare clone of ``seed`` at ``root/OWNER/REPO.git``, with pushes over HTTP enabled."""
    bare = root / f"{full_name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    git(root, "clone", "-q", "--bare", str(seed), str(bare))
    git(bare, "config", "http.receivepack", "true")
    return bare


class GitHttpServer:
    def __init__(self, root: Path, accepts: Callable[[str], bool]) -> None:
        self.root = root
        self.accepts = accepts
        self.authorizations: list[str] = []
        self.refused = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": POLL_S}, daemon=True)

    def start(self) -> GitHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme != "Basic":
            return False
        try:
            user, _, token = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return False
        return user == "x-access-token" and self.accepts(token)

    def cgi_environment(self, handler: BaseHTTPRequestHandler, length: int) -> dict[str, str]:
        path, _, query = handler.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": handler.command,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
        }
        if handler.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = handler.headers["Content-Encoding"]
        if handler.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = handler.headers["Git-Protocol"]
        return env


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        # git sends bodies larger than http.postBuffer in chunks.
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _handler_for(server: GitHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            authorization = self.headers.get("Authorization", "")
            server.authorizations.append(authorization)
            body = _read_body(self)
            if not server.authorized(authorization):
                server.refused += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="GitHub"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            result = subprocess.run(["git", "http-backend"], input=body,
                                    env=server.cgi_environment(self, len(body)),
                                    capture_output=True, check=False)
            head, separator, payload = result.stdout.partition(b"\r\n\r\n")
            if not separator:
                head, _, payload = result.stdout.partition(b"\n\n")
            status, headers = 200, []
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.split()[0])
                elif key:
                    headers.append((key, value.strip()))
            if result.returncode != 0 and not head:
                status, payload = 500, result.stderr
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
