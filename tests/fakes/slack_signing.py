"""What Slack sends to our endpoints: signed requests, Events API envelopes, interactivity forms.

Signing follows Slack's v0 scheme: ``X-Slack-Signature`` is ``v0=`` followed by the hex
HMAC-SHA256, keyed with the app's signing secret, of ``v0:<timestamp>:<raw body>``;
``X-Slack-Request-Timestamp`` is that timestamp in epoch seconds (receivers reject stale ones).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

# The legacy verification token Slack still puts in every payload; receivers ignore it.
VERIFICATION_TOKEN = "fake-verification-token"


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack adds to a request carrying ``body``; ``timestamp`` defaults to now."""
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    base = b"v0:" + str(stamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": f"v0={digest}"}


def event_envelope(
    event: dict[str, Any],
    *,
    team_id: str,
    api_app_id: str,
    event_id: str,
    bot_user_id: str,
    event_time: int | None = None,
) -> dict[str, Any]:
    """An ``event_callback`` as the Events API delivers it to an app installed as a bot.

    ``event_time`` defaults to the event's ``event_ts`` (or ``ts``) in whole seconds, else now.
    """
    if event_time is None:
        stamp = event.get("event_ts") or event.get("ts")
        event_time = int(float(stamp)) if stamp else int(time.time())
    context = {"et": event.get("type", ""), "tid": team_id, "aid": api_app_id,
               "cid": event.get("channel", "")}
    encoded = base64.urlsafe_b64encode(json.dumps(context, separators=(",", ":")).encode())
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": event_time,
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-" + encoded.decode().rstrip("="),
    }


def block_actions_form(payload: dict[str, Any]) -> bytes:
    """An interactivity request body: ``payload=<JSON>``, form-encoded, as Slack posts it."""
    return urlencode({"payload": json.dumps(payload)}).encode()
