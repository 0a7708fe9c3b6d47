"""GitHub's REST API over one httpx client: the headers it asks for, its limits, its errors.

``RestClient.call`` sends one request and answers with GitHub's response once it is
final: rate limits are waited out and server errors retried within a RetryPolicy, with a
sleep and a clock that tests replace. A status the caller did not expect ends in a
ForgeError (see ``failures``); credentials never reach a log line or a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from chatops.core.errors import ForgeError
from integrations.github.failures import AuthKind, error_for, github_message, redact
from integrations.github.ratelimit import RateLimit, RetryPolicy, rate_limit

log = logging.getLogger(__name__)

# Seconds per request (connect, read, write each): GitHub times out its own requests at 10 s,
# so this only bounds a network that has gone quiet.
DEFAULT_TIMEOUT_S = 30.0
# GitHub rejects requests without a User-Agent and asks for one that names the application.
DEFAULT_USER_AGENT = "chatops-github-forge"
API_VERSION = "2022-11-28"

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class RestClient:
    """A thin, retrying layer over ``httpx.Client`` for one GitHub API root.

    ``sleep`` and ``clock`` (epoch seconds) are injectable so that tests neither wait nor
    depend on the time; ``transport`` lets a caller route requests elsewhere.
    """

    def __init__(
        self,
        api_url: str,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self._http = httpx.Client(
            base_url=self.api_url,
            timeout=timeout,
            transport=transport,
            # GitHub redirects requests for renamed or transferred repositories and asks
            # clients to follow; httpx drops the Authorization header across origins.
            follow_redirects=True,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": user_agent,
            },
        )

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        credential: str,
        action: str,
        repo: object,
        auth: AuthKind,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """Send ``method path`` as ``Bearer credential``; the final response.

        A 2xx response, or one whose status is in ``accept``, is returned; any other
        status raises ForgeError described by ``action`` on ``repo``.
        """
        response = self._send(method, path, credential, json, params, action)
        if response.is_success or response.status_code in accept:
            return response
        raise error_for(response, action, repo, auth)

    def _send(
        self,
        method: str,
        path: str,
        credential: str,
        json: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        action: str,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {credential}"}
        limited = failed = 0
        waited = 0.0
        while True:
            try:
                response = self._http.request(method, path, headers=headers, json=json,
                                              params=params)
            except httpx.TransportError as exc:
                # Only a refused or timed-out connection is safe to retry for every method:
                # the request never reached GitHub.
                if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    pause = self._backoff(failed, waited)
                    if pause is not None:
                        failed, waited = failed + 1, waited + pause
                        self.sleep(pause)
                        continue
                raise ForgeError(
                    f"cannot reach GitHub at {self.api_url} to {action}: "
                    f"{type(exc).__name__}: {exc}",
                    "check the worker's network and GITHUB_API_URL",
                ) from None
            limit = rate_limit(response, self.clock(), limited)
            if limit is not None:
                if limited >= self.retry.max_retries or waited + limit.wait_s > \
                        self.retry.max_wait_s:
                    raise self._limited(response, limit, action)
                log.info("GitHub %s rate limit on %s %s; retrying in %.0f s", limit.kind,
                         method, path, limit.wait_s)
                limited, waited = limited + 1, waited + limit.wait_s
                self.sleep(limit.wait_s)
                continue
            if response.status_code >= 500:
                pause = self._backoff(failed, waited)
                if pause is not None:
                    log.info("GitHub answered %d to %s %s; retrying in %.0f s",
                             response.status_code, method, path, pause)
                    failed, waited = failed + 1, waited + pause
                    self.sleep(pause)
                    continue
            return response

    def _backoff(self, failed: int, waited: float) -> float | None:
        if failed >= self.retry.server_error_retries:
            return None
        pause = self.retry.server_error_backoff_s * 2**failed
        return pause if waited + pause <= self.retry.max_wait_s else None

    def _limited(self, response: httpx.Response, limit: RateLimit, action: str) -> ForgeError:
        until = datetime.fromtimestamp(self.clock() + limit.wait_s, UTC)
        said = redact(github_message(response), response.request)
        return ForgeError(
            f"GitHub's {limit.kind} rate limit stopped us from trying to {action}"
            f" ({response.status_code}: {said}); it lifts at about"
            f" {until:%Y-%m-%d %H:%M:%S} UTC",
            "retry the task after that time; a GitHub App installation has a higher limit"
            " than a personal token",
        )


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """``response``'s body as a JSON object, or a ForgeError naming ``what`` was expected."""
    data = _json(response, what)
    if not isinstance(data, dict):
        raise ForgeError(f"GitHub answered with {type(data).__name__} where {what} was expected",
                         "check GITHUB_API_URL: it must be the REST API root")
    return data


def json_list(response: httpx.Response, what: str) -> list[Any]:
    data = _json(response, what)
    if not isinstance(data, list):
        raise ForgeError(f"GitHub answered with {type(data).__name__} where {what} was expected",
                         "check GITHUB_API_URL: it must be the REST API root")
    return data


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ForgeError(
            f"GitHub's answer to {response.request.method} {response.request.url.path} is not"
            f" JSON ({response.status_code}, {response.headers.get('content-type', 'no type')});"
            f" {what} was expected",
            "check GITHUB_API_URL: it must be the REST API root (https://HOST/api/v3 for"
            " GitHub Enterprise Server)",
        ) from None
