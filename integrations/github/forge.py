"""The Forge port on GitHub (github.com or Enterprise Server): pull requests and git credentials.

The forge does two jobs for a delivery. Before the push, ``git_config`` hands
``GitRepository`` the per-command git configuration that authenticates HTTPS fetches and
pushes to repositories on the configured host (the token travels in an ``extraHeader``,
through git's environment: never in a URL, a repository's config, or argv). After the push,
``open_pull_request`` opens the pull request, or finds the one already open for the branch,
so that a delivery run twice yields one pull request.
"""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from chatops.core.environment import Environment
from chatops.core.errors import ConfigError, ForgeError
from chatops.core.ports import PullRequestDraft
from chatops.core.task import PullRequest
from integrations.github.auth import AppCredentials, Credentials, TokenCredentials
from integrations.github.client import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_USER_AGENT,
    Clock,
    RestClient,
    Sleep,
    json_list,
    json_object,
)
from integrations.github.failures import error_for
from integrations.github.host import GitHubHost, RepositoryRef
from integrations.github.payloads import (
    parse_comment_url,
    parse_pull_request,
    to_create_pull_request,
)
from integrations.github.ratelimit import RetryPolicy
from integrations.github.settings import DEFAULT_API_URL, GitHubSettings

log = logging.getLogger(__name__)

# The user name GitHub documents for HTTPS git with an installation token; personal tokens
# accept any user name, so one form serves both.
GIT_USER = "x-access-token"


class GitHubForge:
    """Forge port implementation for one GitHub host, as a token's user or as a GitHub App.

    Give either ``token``, or ``app_id`` and ``private_key`` (PEM) with an optional
    ``installation_id``. ``web_url`` is where repositories live for people (derived from
    ``api_url`` when empty). ``retry``, ``sleep`` and ``clock`` (epoch seconds) govern
    rate-limit and server-error retries and token expiry; ``transport`` routes the HTTP
    client elsewhere.
    """

    def __init__(
        self,
        *,
        api_url: str = DEFAULT_API_URL,
        token: str = "",
        app_id: str = "",
        private_key: str = "",
        installation_id: int | None = None,
        web_url: str = "",
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if bool(token) == bool(app_id):
            raise ConfigError("the GitHub forge needs a token, or a GitHub App id and key",
                              "set GITHUB_TOKEN, or GITHUB_APP_ID and its private key")
        self.host = GitHubHost(api_url, web_url)
        self._client = RestClient(self.host.api_url, user_agent=user_agent, timeout=timeout,
                                  retry=retry, sleep=sleep, clock=clock, transport=transport)
        self.credentials: Credentials
        try:
            if token:
                self.credentials = TokenCredentials(token)
            else:
                self.credentials = AppCredentials(self._client, app_id, private_key,
                                                  installation_id)
        except BaseException:
            self._client.close()
            raise

    @classmethod
    def from_settings(cls, settings: GitHubSettings, **options: Any) -> GitHubForge:
        """A forge for ``settings``; reads the App's key file if that is how it was given.

        ``options`` are passed on to the constructor (``retry``, ``sleep``, ...).
        """
        key = settings.private_key
        if settings.private_key_path:
            path = Path(settings.private_key_path).expanduser()
            try:
                key = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"cannot read GITHUB_APP_PRIVATE_KEY_PATH {str(path)!r}: "
                    f"{getattr(exc, 'strerror', None) or type(exc).__name__}",
                    "point it at the App's .pem file, readable by the worker's user",
                ) from None
        return cls(api_url=settings.api_url, token=settings.token, app_id=settings.app_id,
                   private_key=key, installation_id=settings.installation_id,
                   web_url=settings.web_url, **options)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # -- the Forge port ---------------------------------------------------------------------

    def open_pull_request(self, env: Environment, draft: PullRequestDraft) -> PullRequest:
        """Open a pull request for ``draft.branch``, or return the one already open for it.

        Looks first, then creates (as a draft if ``draft.draft`` or ``env.draft``); if GitHub
        answers that one already exists (a concurrent delivery won the race) it is looked up
        and returned.
        Raises ForgeError with GitHub's message and what to fix.
        """
        repo = self.host.repository(env.repository)
        existing = self._open_pull_request_for(repo, draft.branch)
        if existing is not None:
            log.info("pull request #%d is already open for %s in %s", existing.number,
                     draft.branch, repo)
            return existing
        response = self._call("POST", f"{repo.api_path}/pulls", repo,
                              action=f"open a pull request for branch {draft.branch!r} in {repo}",
                              json=to_create_pull_request(draft, draft.draft or env.draft),
                              accept=(422,))
        if response.status_code == 422:
            if "already exists" in response.text.lower():
                existing = self._open_pull_request_for(repo, draft.branch)
                if existing is not None:
                    return existing
            raise self._refused(response, f"open a pull request for branch {draft.branch!r}"
                                          f" in {repo}", repo)
        opened = parse_pull_request(json_object(response, "a pull request"))
        log.info("opened pull request #%d (%s) for %s", opened.number, opened.url, draft.branch)
        return opened

    def comment(self, env: Environment, number: int, body: str) -> None:
        """Post ``body`` on pull request ``number`` (a follow-up reports what it added).

        Pull requests take conversation comments through the issues API.
        """
        repo = self.host.repository(env.repository)
        response = self._call("POST", f"{repo.api_path}/issues/{int(number)}/comments", repo,
                              action=f"comment on pull request #{number} of {repo}",
                              json={"body": body})
        log.info("commented on pull request #%d: %s", number,
                 parse_comment_url(json_object(response, "a comment")))

    # -- beyond the port: credentials for git -----------------------------------------------

    def git_config(self, repository_url: str) -> dict[str, str]:
        """Git configuration that authenticates fetches and pushes of ``repository_url``.

        For an http(s) URL of a repository on the configured host: an ``extraHeader`` with
        HTTP Basic credentials (``x-access-token`` and the current token), scoped to that
        repository's URL so git sends it nowhere else. ``{}`` for any other URL. Meant as
        ``GitRepository(network_config=forge.git_config)``, which calls it per command, so a
        GitHub App's token is always a fresh one; the values are secrets.
        """
        url = self.host.https_url(repository_url)
        if url is None:
            return {}
        token = self.credentials.token_for(self.host.repository(repository_url))
        basic = base64.b64encode(f"{GIT_USER}:{token}".encode()).decode("ascii")
        return {f"http.{url}.extraHeader": f"Authorization: Basic {basic}"}

    # -- helpers ----------------------------------------------------------------------------

    def _open_pull_request_for(self, repo: RepositoryRef, branch: str) -> PullRequest | None:
        response = self._call(
            "GET", f"{repo.api_path}/pulls", repo,
            action=f"look up the pull requests of branch {branch!r} in {repo}",
            params={"head": f"{repo.owner}:{branch}", "state": "open"},
        )
        found = [parse_pull_request(item) for item in json_list(response, "a list of pulls")
                 if isinstance(item, dict)]
        # The head filter should leave one at most; the oldest is the one people know.
        matching = sorted((pr for pr in found if pr.branch == branch), key=lambda pr: pr.number)
        return matching[0] if matching else None

    def _call(self, method: str, path: str, repo: RepositoryRef, *, action: str,
              json: dict[str, object] | None = None, params: dict[str, str] | None = None,
              accept: tuple[int, ...] = ()) -> httpx.Response:
        return self._client.call(method, path, credential=self.credentials.token_for(repo),
                                 action=action, repo=repo, auth=self.credentials.kind,
                                 json=json, params=params, accept=accept)

    def _refused(self, response: httpx.Response, action: str, repo: RepositoryRef) -> ForgeError:
        return error_for(response, action, repo, self.credentials.kind)
