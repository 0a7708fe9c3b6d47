"""Is this delivery from Linear, and fresh? Pure checks over the raw body.

Linear signs each delivery with ``Linear-Signature``: the hex HMAC-SHA256 of the raw body,
keyed with the webhook's signing secret. The body carries ``webhookTimestamp`` (epoch ms);
a delivery far from now is a replay and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "linear-signature"
# Milliseconds a delivery's webhookTimestamp may be from our clock, either way: Linear's
# guidance is a minute, enough for its queue and our clock's drift, short for a replay.
MAX_SKEW_MS = 60_000


class Unverified(ValueError):
    """The delivery is not provably Linear's, or not fresh (answered 401)."""


def signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """Raise Unverified unless ``Linear-Signature`` signs ``body`` with ``secret``."""
    given = next((value for name, value in headers.items()
                  if name.lower() == SIGNATURE_HEADER), "")
    if not secret:
        raise Unverified("no signing secret is configured")
    if not given:
        raise Unverified("the Linear-Signature header is missing")
    if not hmac.compare_digest(given.strip().lower().encode(), signature(body, secret).encode()):
        raise Unverified("the Linear-Signature does not match the body")


def check_fresh(payload: Mapping[str, Any], now_ms: float,
                max_skew_ms: int = MAX_SKEW_MS) -> None:
    """Raise Unverified for a ``webhookTimestamp`` more than ``max_skew_ms`` from now.

    Raises ValueError (a malformed payload) when the timestamp is missing or not a number.
    """
    stamp = payload.get("webhookTimestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        raise ValueError("the payload has no numeric webhookTimestamp")
    if abs(now_ms - float(stamp)) > max_skew_ms:
        raise Unverified(f"the webhookTimestamp is {abs(now_ms - stamp) / 1000:.0f} s from now")
