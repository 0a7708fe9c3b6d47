"""A small synchronous GraphQL client for Linear's API, on httpx.

Retries are bounded and safe: a rate limit (HTTP 429, or a GraphQL error with code
``RATELIMITED``) and a request that never reached Linear (connect failures) are always tried
again; a request that may have reached it (a read timeout, a dropped connection, a 5xx) only
when the caller says the operation is idempotent. Every mutation chatops sends is: creations
carry ids chosen from the task and state (a repeat fails with a conflict instead of posting
twice), updates set values, attachments are keyed by their url.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from integrations.linear.errors import (
    LinearAuthError,
    LinearConflict,
    LinearError,
    LinearNotFound,
    LinearRateLimited,
    LinearUnavailable,
)

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.linear.app/graphql"
# Seconds per HTTP request: Linear answers in well under one; 30 covers a slow network.
DEFAULT_TIMEOUT_S = 30.0
# Tries after the first, for rate limits and unreached requests; then the call fails.
MAX_RETRIES = 3
# Seconds before the first retry, doubled after each; capped so a worker never stalls long.
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0

_RATE_LIMITED = "RATELIMITED"
_AUTH_CODES = {"AUTHENTICATION_ERROR", "FORBIDDEN", "UNAUTHENTICATED"}
# Failures that prove the request never left: safe to send again whatever it does.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

Sleep = Callable[[float], None]


def authorization(api_key: str = "", oauth_token: str = "") -> str:
    """The Authorization header: a personal API key as is, an OAuth token as a Bearer."""
    if oauth_token:
        return f"Bearer {oauth_token}"
    if api_key:
        return api_key
    raise LinearAuthError("no Linear credentials", "set LINEAR_API_KEY or LINEAR_OAUTH_TOKEN")


class LinearClient:
    def __init__(self, authorization: str, url: str = DEFAULT_API_URL, *,
                 timeout: float = DEFAULT_TIMEOUT_S, max_retries: int = MAX_RETRIES,
                 sleep: Sleep = time.sleep, transport: httpx.BaseTransport | None = None,
                 ) -> None:
        self.url = url
        self.max_retries = max_retries
        self.sleep = sleep
        self._http = httpx.Client(timeout=timeout, transport=transport, headers={
            "Authorization": authorization, "Content-Type": "application/json",
            "User-Agent": "chatops-linear/1"})

    def close(self) -> None:
        self._http.close()

    def execute(self, document: str, variables: Mapping[str, Any] | None = None, *,
                idempotent: bool = True) -> dict[str, Any]:
        """Send one document; return its ``data``. Raises LinearError subclasses."""
        body = {"query": document, "variables": dict(variables or {})}
        attempt = 0
        while True:
            try:
                response = self._http.post(self.url, json=body)
            except _UNSENT as exc:
                problem: LinearError = LinearUnavailable(f"could not reach Linear: {exc}")
                wait = _backoff(attempt)
            except httpx.TransportError as exc:
                problem = LinearUnavailable(f"Linear did not answer: {exc}")
                if not idempotent:
                    raise problem from None  # it may have landed: sending again could repeat it
                wait = _backoff(attempt)
            else:
                outcome = _read(response, idempotent)
                if isinstance(outcome, dict):
                    return outcome
                problem, hinted = outcome
                wait = hinted if hinted is not None else _backoff(attempt)
            if attempt >= self.max_retries:
                raise problem
            attempt += 1
            log.info("Linear call failed (%s); try %d of %d in %.1f s", problem.message,
                     attempt, self.max_retries, wait)
            self.sleep(wait)


def _read(response: httpx.Response, idempotent: bool,
          ) -> dict[str, Any] | tuple[LinearError, float | None]:
    """The data of an answer, or (retryable problem, wait) — non-retryable ones raise."""
    if response.status_code == 429:
        return LinearRateLimited("Linear's rate limit was hit"), _retry_after(response)
    if response.status_code in (401, 403):
        raise LinearAuthError(f"Linear refused the credentials (HTTP {response.status_code})")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if errors:
        return _graphql_error(errors, response)
    if response.status_code >= 500:
        problem = LinearUnavailable(f"Linear answered HTTP {response.status_code}")
        if not idempotent:
            raise problem
        return problem, None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise LinearError(f"Linear answered HTTP {response.status_code} without data")
    data: dict[str, Any] = payload["data"]
    return data


def _graphql_error(errors: list[Any], response: httpx.Response,
                   ) -> tuple[LinearError, float | None]:
    first: dict[str, Any] = (errors[0] if isinstance(errors[0], dict)
                             else {"message": str(errors[0])})
    extensions = first.get("extensions")
    extensions = extensions if isinstance(extensions, dict) else {}
    code = str(extensions.get("code") or "").upper()
    message = str(extensions.get("userPresentableMessage") or first.get("message") or code)
    if code == _RATE_LIMITED:
        return LinearRateLimited(f"Linear's rate limit was hit: {message}"), \
            _retry_after(response)
    if code in _AUTH_CODES:
        raise LinearAuthError(f"Linear refused the request: {message}")
    lowered = message.lower()
    if code == "NOT_FOUND" or "not found" in lowered:
        raise LinearNotFound(f"Linear: {message}")
    if code == "CONFLICT" or "already exists" in lowered:
        raise LinearConflict(f"Linear: {message}")
    raise LinearError(f"Linear refused the request: {message}")


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from Retry-After, or Linear's reset time (epoch ms); capped."""
    header = response.headers.get("retry-after")
    try:
        if header is not None:
            return min(BACKOFF_CAP_S, max(0.0, float(header)))
        reset = response.headers.get("x-ratelimit-requests-reset")
        if reset is not None:
            return min(BACKOFF_CAP_S, max(0.0, float(reset) / 1000 - time.time()))
    except ValueError:
        pass
    return None


def _backoff(attempt: int) -> float:
    return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt))
