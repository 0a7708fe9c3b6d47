"""Which GitHub the forge talks to, and which repository a URL names on it.

One host is configured per forge: github.com (API ``https://api.github.com``) or a GitHub
Enterprise Server (API ``https://HOST/api/v3``, repositories at ``https://HOST/OWNER/REPO``).
A repository URL counts as "on the host" when its scheme and host (and port) are the web
host's, or for ssh the host name alone; anything else is a ForgeError that names both, so a
typo in an environment's ``repository`` is caught before any credential is used for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from chatops.core.errors import ConfigError, ForgeError

# GitHub logins are letters, digits and hyphens; Enterprise Server adds "_" and "." for
# names synced from LDAP or SAML. Repository names add "." and "_".
_OWNER = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_NAME = r"[A-Za-z0-9_.-]+"
_PATH = re.compile(rf"^/?(?P<owner>{_OWNER})/(?P<name>{_NAME}?)(?:\.git)?/?$")
_SCP_LIKE = re.compile(rf"^[^@/:]+@(?P<host>[^:/]+):(?P<path>{_OWNER}/{_NAME})$")
_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22}


@dataclass(frozen=True)
class RepositoryRef:
    """``owner/name`` of a repository on the configured host."""

    owner: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def api_path(self) -> str:
        return f"/repos/{self.owner}/{self.name}"

    def __str__(self) -> str:
        return self.full_name


def web_url_for(api_url: str) -> str:
    """The web root matching a REST API root.

    ``https://api.github.com`` -> ``https://github.com`` (likewise ``api.SUB.ghe.com``);
    ``https://HOST/api/v3`` -> ``https://HOST`` (GitHub Enterprise Server).
    """
    parts = urlsplit(api_url.rstrip("/"))
    path = parts.path
    if path.endswith("/api/v3"):
        return f"{parts.scheme}://{parts.netloc}{path.removesuffix('/api/v3')}"
    netloc = parts.netloc
    if not path and netloc.lower().startswith("api."):
        netloc = netloc[len("api."):]
    return f"{parts.scheme}://{netloc}{path}"


class GitHubHost:
    """The configured GitHub: its API root, its web root, and URL parsing against them."""

    def __init__(self, api_url: str, web_url: str = "") -> None:
        self.api_url = api_url.rstrip("/")
        self.web_url = (web_url or web_url_for(self.api_url)).rstrip("/")
        web = urlsplit(self.web_url)
        if web.scheme not in {"http", "https"} or not web.hostname:
            raise ConfigError(f"GitHub web URL {self.web_url!r} is not an http(s) URL",
                              "set the GitHub API URL (and web URL) to http(s) URLs")
        self._web = web
        self._prefix = web.path.rstrip("/")

    @property
    def name(self) -> str:
        """The web host as people write it, for messages."""
        return self._web.netloc

    def repository(self, url: str) -> RepositoryRef:
        """``owner/name`` of ``url``: https (with or without ``.git``) or ssh, on this host.

        Raises ForgeError naming the expected host for a URL elsewhere, and the expected
        shape for a URL here that does not name a repository.
        """
        found = self._parse(url)
        if found is None:
            raise ForgeError(
                f"repository {_shown(url)!r} is not on the configured GitHub ({self.name})",
                f"give the environment's `repository` as {self.web_url}/OWNER/REPO.git, or point"
                " GITHUB_API_URL at the GitHub that hosts it",
            )
        return found[0]

    def https_url(self, url: str) -> str | None:
        """``url`` without userinfo when it is an http(s) URL of a repository on this host.

        None for anything else (ssh, another host, a path on disk): such URLs get no
        credentials from this forge.
        """
        found = self._parse(url)
        return found[1] if found else None

    def _parse(self, url: str) -> tuple[RepositoryRef, str | None] | None:
        scp = _SCP_LIKE.match(url.strip())
        if scp:
            if scp.group("host").lower() != (self._web.hostname or "").lower():
                return None
            return _ref(url, scp.group("path")), None
        try:
            parts = urlsplit(url.strip())
            same = _same_host(parts, self._web)
        except ValueError:  # a malformed port or IPv6 literal
            return None
        if not same:
            return None
        path = parts.path
        if self._prefix:
            if not path.startswith(self._prefix + "/"):
                return None
            path = path[len(self._prefix):]
        ref = _ref(url, path)
        if parts.scheme == "ssh" or parts.query or parts.fragment:
            return ref, None
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return ref, f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def _same_host(parts: SplitResult, web: SplitResult) -> bool:
    if not parts.hostname or parts.hostname.lower() != (web.hostname or "").lower():
        return False
    if parts.scheme == "ssh":
        return True
    if parts.scheme != web.scheme:
        return False
    return (parts.port or _DEFAULT_PORTS[parts.scheme]) == (web.port or _DEFAULT_PORTS[web.scheme])


def _ref(url: str, path: str) -> RepositoryRef:
    match = _PATH.match(path)
    if not match or not match.group("name"):
        raise ForgeError(f"repository URL {_shown(url)!r} does not name a repository",
                         "give it as https://HOST/OWNER/REPO(.git), without a sub-path")
    return RepositoryRef(match.group("owner"), match.group("name"))


def _shown(url: str) -> str:
    """``url`` without userinfo: a token pasted into a URL must not reach a message."""
    return re.sub(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@", r"\g<scheme>", url)
