"""Who the forge is on GitHub: a token's user, or a GitHub App acting through an installation.

A GitHub App authenticates in two steps (GitHub's "Authenticating as a GitHub App"):

1. a JSON Web Token, RS256-signed with the App's private key, ``iss`` = the App's id, valid
   for at most ten minutes, authenticates as the App itself;
2. the App exchanges it for an installation access token
   (``POST /app/installations/{id}/access_tokens``), valid for an hour, which acts on the
   repositories of that installation. The installation of a repository is found with
   ``GET /repos/{owner}/{repo}/installation`` unless one was configured.

Installation tokens are cached per installation and replaced a few minutes before they
expire, under a lock: concurrent deliveries share one exchange instead of racing for several.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from chatops.core.errors import ConfigError, ForgeError
from integrations.github.client import RestClient, json_object
from integrations.github.failures import AuthKind
from integrations.github.host import RepositoryRef
from integrations.github.payloads import (
    InstallationToken,
    parse_installation_id,
    parse_installation_token,
)

log = logging.getLogger(__name__)

# Seconds an installation token is replaced before its expires_at: a push or an API call
# started just before expiry must not fail halfway, and GitHub's clock may run ahead of ours.
TOKEN_REFRESH_MARGIN_S = 5 * 60
# Seconds an App JWT is backdated: GitHub's recommendation against clock drift.
JWT_BACKDATE_S = 60
# Seconds an App JWT is valid after it is issued; GitHub refuses anything over ten minutes
# from iat, and the backdating counts.
JWT_LIFETIME_S = 10 * 60 - JWT_BACKDATE_S


class Credentials(Protocol):
    """The credential to use for a repository's API calls and git transport."""

    kind: AuthKind

    def token_for(self, repo: RepositoryRef) -> str: ...


class TokenCredentials:
    """A personal access token (classic or fine-grained): the same token for every repository."""

    kind: AuthKind = "token"

    def __init__(self, token: str) -> None:
        if not token.strip():
            raise ConfigError("the GitHub token is empty", "set GITHUB_TOKEN")
        self._token = token.strip()

    def token_for(self, repo: RepositoryRef) -> str:
        return self._token

    def __repr__(self) -> str:
        return "TokenCredentials(***)"


class AppCredentials:
    """A GitHub App: signs JWTs, finds installations, and caches installation tokens."""

    kind: AuthKind = "app"

    def __init__(
        self,
        client: RestClient,
        app_id: str,
        private_key: str,
        installation_id: int | None = None,
        *,
        refresh_margin_s: float = TOKEN_REFRESH_MARGIN_S,
    ) -> None:
        if not str(app_id).strip():
            raise ConfigError("the GitHub App id is empty", "set GITHUB_APP_ID")
        self.app_id = str(app_id).strip()
        self.installation_id = installation_id
        self.refresh_margin_s = refresh_margin_s
        self._client = client
        self._key = _private_key(private_key)
        self._lock = threading.Lock()
        self._tokens: dict[int, InstallationToken] = {}
        self._installations: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"AppCredentials(app_id={self.app_id!r})"

    def app_jwt(self) -> str:
        """A fresh JWT authenticating as the App: RS256, ``iss`` the App id, < 10 minutes."""
        now = int(self._client.clock())
        claims = {"iat": now - JWT_BACKDATE_S, "exp": now + JWT_LIFETIME_S, "iss": self.app_id}
        return jwt.encode(claims, self._key, algorithm="RS256")

    def token_for(self, repo: RepositoryRef) -> str:
        installation = self.installation_for(repo)
        try:
            return self.installation_token(installation).token
        except ForgeError:
            # The App may have been uninstalled and installed again under a new id.
            if self.installation_id is None:
                with self._lock:
                    self._installations.pop(repo.full_name.lower(), None)
            raise

    def installation_for(self, repo: RepositoryRef) -> int:
        """The configured installation, or the one installed on ``repo`` (looked up once)."""
        if self.installation_id is not None:
            return self.installation_id
        key = repo.full_name.lower()
        with self._lock:
            if key not in self._installations:
                self._installations[key] = self._lookup_installation(repo)
            return self._installations[key]

    def installation_token(self, installation_id: int) -> InstallationToken:
        """A token of ``installation_id`` valid for at least ``refresh_margin_s`` more."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is None or not self._fresh(cached):
                cached = self._exchange(installation_id)
                self._tokens[installation_id] = cached
            return cached

    def _fresh(self, token: InstallationToken) -> bool:
        return token.expires_at.timestamp() - self.refresh_margin_s > self._client.clock()

    def _lookup_installation(self, repo: RepositoryRef) -> int:
        response = self._client.call(
            "GET", f"{repo.api_path}/installation", credential=self.app_jwt(),
            action=f"find the GitHub App installation of {repo}", repo=repo, auth="app",
            accept=(404,),
        )
        if response.status_code == 404:
            raise ForgeError(
                f"the GitHub App {self.app_id} is not installed on {repo}"
                " (or the repository does not exist)",
                f"install the App on {repo} (or its organization), check the environment's"
                " `repository`, or set GITHUB_APP_INSTALLATION_ID",
            )
        return parse_installation_id(json_object(response, "an installation"))

    def _exchange(self, installation_id: int) -> InstallationToken:
        response = self._client.call(
            "POST", f"/app/installations/{installation_id}/access_tokens",
            credential=self.app_jwt(),
            action=f"issue a token for installation {installation_id} of App {self.app_id}",
            repo=f"installation {installation_id}", auth="app",
        )
        token = parse_installation_token(json_object(response, "an installation token"))
        if not self._fresh(token):
            # Only a clock far ahead of GitHub's gets here; the token still works for GitHub,
            # it will just be exchanged again on every call until the clock is right.
            log.warning("the installation token GitHub issued expires at %s, which is"
                        " (nearly) past by this host's clock: check its time (NTP)",
                        token.expires_at.astimezone(UTC).isoformat())
        return token


def _private_key(pem: str) -> RSAPrivateKey:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        # The library's text never quotes the key; the key itself must not reach a message.
        raise ConfigError(
            f"the GitHub App private key cannot be read: {type(exc).__name__}",
            "give the .pem file the App's settings page generated, unencrypted",
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError("the GitHub App private key is not an RSA key",
                          "give the .pem file the App's settings page generated")
    return key
