"""GitHub forge settings from a mapping of variables: pure, so the composition root decides.

``forge_settings_from(environ)`` reads the variables below and checks that they make sense
together; it never reads a file or the process environment itself (the private key's path is
kept as a path and read by ``GitHubForge.from_settings``).

    GITHUB_API_URL                 REST API root (default https://api.github.com; GitHub
                                   Enterprise Server: https://HOST/api/v3)
    GITHUB_TOKEN                   a personal access token (classic or fine-grained)
    GITHUB_APP_ID                  a GitHub App's id (or client id), with one of:
    GITHUB_APP_PRIVATE_KEY         the App's private key, PEM text
    GITHUB_APP_PRIVATE_KEY_PATH    a file holding it
    GITHUB_APP_INSTALLATION_ID     optional; otherwise looked up per repository
    GITHUB_WEB_URL                 optional; the host repositories are cloned from, when it
                                   is not the API's host (derived from GITHUB_API_URL)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chatops.core.errors import ConfigError

DEFAULT_API_URL = "https://api.github.com"

_APP_ID = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class GitHubSettings:
    """How to reach GitHub and as whom. Secrets are left out of ``repr``, hence out of logs."""

    api_url: str = DEFAULT_API_URL
    token: str = field(default="", repr=False)
    app_id: str = ""
    private_key: str = field(default="", repr=False)
    private_key_path: str = ""
    installation_id: int | None = None
    # Where repositories and pull requests live for people; derived from api_url when empty.
    web_url: str = ""

    @property
    def configured(self) -> bool:
        """True when there are credentials: a token, or an App id with its key."""
        return bool(self.token or self.app_id)

    @property
    def uses_app(self) -> bool:
        return bool(self.app_id)


def forge_settings_from(environ: Mapping[str, str]) -> GitHubSettings:
    """The GitHub settings ``environ`` holds; ConfigError names the variable that is wrong.

    Empty values count as unset. Nothing set at all is valid (``configured`` is then False):
    whether an environment may then use ``forge = "github"`` is the caller's decision.
    """

    def get(name: str) -> str:
        return environ.get(name, "").strip()

    api_url = _api_url(get("GITHUB_API_URL") or DEFAULT_API_URL)
    token, app_id = get("GITHUB_TOKEN"), get("GITHUB_APP_ID")
    key, key_path = _pem(environ.get("GITHUB_APP_PRIVATE_KEY", "")), get(
        "GITHUB_APP_PRIVATE_KEY_PATH"
    )
    installation = get("GITHUB_APP_INSTALLATION_ID")

    if token and app_id:
        raise ConfigError(
            "both GITHUB_TOKEN and GITHUB_APP_ID are set",
            "unset one of them: the forge acts either as a token's user or as a GitHub App",
        )
    if app_id and not _APP_ID.match(app_id):
        raise ConfigError("GITHUB_APP_ID is not an App id",
                          "copy the App ID (a number) from the App's settings page")
    if (key or key_path) and not app_id:
        raise ConfigError("a GitHub App private key is set but GITHUB_APP_ID is not",
                          "set GITHUB_APP_ID to the App's id")
    if app_id and not (key or key_path):
        raise ConfigError(
            "GITHUB_APP_ID is set without the App's private key",
            "set GITHUB_APP_PRIVATE_KEY (PEM text) or GITHUB_APP_PRIVATE_KEY_PATH (a file)",
        )
    if key and key_path:
        raise ConfigError("both GITHUB_APP_PRIVATE_KEY and GITHUB_APP_PRIVATE_KEY_PATH are set",
                          "keep one of them")
    if installation and not app_id:
        raise ConfigError("GITHUB_APP_INSTALLATION_ID is set but GITHUB_APP_ID is not",
                          "installations belong to a GitHub App: set GITHUB_APP_ID and its key")
    return GitHubSettings(
        api_url=api_url,
        token=token,
        app_id=app_id,
        private_key=key,
        private_key_path=key_path,
        installation_id=_installation_id(installation) if installation else None,
        web_url=get("GITHUB_WEB_URL"),
    )


def _api_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"https", "http"} or not parts.netloc or parts.query:
        raise ConfigError(
            f"GITHUB_API_URL {value!r} is not an http(s) URL",
            "use https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server",
        )
    return value.rstrip("/")


def _installation_id(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(
            f"GITHUB_APP_INSTALLATION_ID {value!r} is not a positive number",
            "copy the number at the end of the installation's settings URL, or unset it",
        )
    return int(value)


def _pem(value: str) -> str:
    text = value.strip()
    # .env files and container environments often carry the key on one line, with "\n"
    # written out; PEM needs the real line breaks back.
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    return text + "\n" if text else ""
