"""Without Linear's settings the webhook route says what to set, and nothing else changes."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from chatops.app.settings import Settings
from chatops.app.web import create_app
from chatops.app.wiring import Runtime


def test_the_webhook_answers_404_with_the_fix_when_linear_is_not_configured(tmp_path):
    runtime = Runtime(Settings.from_env({"CHATOPS_HOME": str(tmp_path),
                                         "LINEAR_API_KEY": "lin_api_only_a_key"}))
    assert runtime.linear_intake is None  # credentials alone: no signing secret
    assert "linear" in runtime.notifiers and "linear" in runtime.context_sources
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/linear/webhook", content=b"{}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert response.status_code == 404
    assert "LINEAR_WEBHOOK_SECRET" in response.json()["fix"]
