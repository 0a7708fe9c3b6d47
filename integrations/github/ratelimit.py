"""How long GitHub asks us to wait before retrying a response, per its documented rules.

GitHub signals two kinds of limits, both as 403 or 429:

- primary: ``x-ratelimit-remaining: 0``; the quota comes back at ``x-ratelimit-reset``
  (epoch seconds);
- secondary (too many requests at once, too much content created too fast): a
  ``retry-after`` header in seconds, or no header at all and a message saying "secondary
  rate limit", in which case the docs ask for at least a minute, growing exponentially.

A 403 that is none of these is a permission problem, not something waiting fixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

# Retries of one request on rate limits: a burst of secondary limits clears within a few
# waits; past that, failing with the reset time beats holding a worker.
DEFAULT_MAX_RETRIES = 4
# Seconds a single request may spend sleeping on limits and server errors, in total. Two
# secondary-limit minutes; a primary limit resetting later fails at once with the time it
# resets, and the task can be retried then.
DEFAULT_MAX_WAIT_S = 120.0
# Retries of a 5xx: GitHub's 502/503 are usually gone on the next try; more only delays the
# error.
DEFAULT_SERVER_ERROR_RETRIES = 2
# Seconds before the first 5xx retry, doubled for each next one.
SERVER_ERROR_BACKOFF_S = 1.0
# Seconds GitHub's docs ask for after a secondary limit that names no time.
SECONDARY_LIMIT_WAIT_S = 60.0
# Seconds past x-ratelimit-reset: it is whole seconds, and our clock may run a little early.
RESET_SLACK_S = 1.0

_LIMITED = {403, 429}


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one request: counts, and the total time spent waiting (seconds)."""

    max_retries: int = DEFAULT_MAX_RETRIES
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    server_error_retries: int = DEFAULT_SERVER_ERROR_RETRIES
    server_error_backoff_s: float = SERVER_ERROR_BACKOFF_S


@dataclass(frozen=True)
class RateLimit:
    """A limit GitHub reported: seconds to wait, and which kind, for messages."""

    wait_s: float
    kind: str  # "primary" | "secondary"


def rate_limit(response: httpx.Response, now: float, attempt: int = 0) -> RateLimit | None:
    """The wait ``response`` asks for, or None when it is not a rate-limit response.

    ``now`` is the current time in epoch seconds; ``attempt`` counts earlier rate-limit
    retries of the same request (for the exponential wait when GitHub names no time).
    """
    if response.status_code not in _LIMITED:
        return None
    headers = response.headers
    retry_after = _seconds(headers.get("retry-after"))
    if retry_after is not None:
        return RateLimit(retry_after, "secondary")
    if headers.get("x-ratelimit-remaining") == "0":
        reset = _seconds(headers.get("x-ratelimit-reset"))
        if reset is not None:
            return RateLimit(max(0.0, reset - now) + RESET_SLACK_S, "primary")
    if response.status_code == 429 or "rate limit" in _message(response).lower():
        return RateLimit(SECONDARY_LIMIT_WAIT_S * 2**attempt, "secondary")
    return None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text
    return str(data.get("message", "")) if isinstance(data, dict) else ""
