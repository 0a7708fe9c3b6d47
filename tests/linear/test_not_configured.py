"""Without Linear's settings the webhook route says what to set, and nothing else changes."""

from __future__ import annotations

import httpx

from chatops.app.settings import Settings
from chatops.app.wiring import Runtime
from tests.serving import serving


def test_the_webhook_answers_404_with_the_fix_when_linear_is_not_configured(tmp_path):
    runtime = Runtime(Settings.from_env({"CHATOPS_HOME": str(tmp_path),
                                         "LINEAR_API_KEY": "lin_api_only_a_key"}))
    assert runtime.linear_intake is None  # credentials alone: no signing secret
    assert "linear" in runtime.notifiers and "linear" in runtime.context_sources
    with serving(runtime) as url:
        response = httpx.post(f"{url}/linear/webhook", content=b"{}")
    assert response.status_code == 404
    assert "LINEAR_WEBHOOK_SECRET" in response.json()["fix"]
