"""Translations between GitHub's REST payloads and chatops values: pure functions over dicts.

Field names follow GitHub's REST reference ("Create a pull request", "Create an installation
access token for an app", "Get a repository installation for the authenticated app").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chatops.core.errors import ForgeError
from chatops.core.ports import PullRequestDraft
from chatops.core.task import PullRequest

FORGE_NAME = "github"


@dataclass(frozen=True)
class InstallationToken:
    """A GitHub App installation access token and when GitHub stops accepting it."""

    token: str = field(repr=False)
    expires_at: datetime


def to_create_pull_request(draft: PullRequestDraft, as_draft: bool) -> dict[str, Any]:
    """The body of ``POST /repos/{owner}/{repo}/pulls`` for a branch of the same repository.

    ``head`` is the bare branch name, GitHub's form for a same-repository pull request.
    ``maintainer_can_modify`` is left out: it only means something for a branch in a fork,
    and GitHub refuses it (422 "fork collab") where it cannot apply.
    """
    return {
        "title": draft.title,
        "head": draft.branch,
        "base": draft.base,
        "body": draft.body,
        "draft": as_draft,
    }


def parse_pull_request(data: dict[str, Any]) -> PullRequest:
    """A pull request resource (or a list entry of one) as a PullRequest."""
    try:
        return PullRequest(
            forge=FORGE_NAME,
            number=_int(data["number"]),
            url=str(data["html_url"]),
            branch=str(data["head"]["ref"]),
            base=str(data["base"]["ref"]),
            title=str(data.get("title") or ""),
            # GitHub sends null for an empty body.
            body=str(data.get("body") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ForgeError(f"GitHub's pull request object lacks {_what(exc)}",
                         "check GITHUB_API_URL: it must be the REST API root") from None


def parse_installation_token(data: dict[str, Any]) -> InstallationToken:
    """The answer to ``POST /app/installations/{id}/access_tokens``."""
    try:
        token = data["token"]
        expires_at = datetime.fromisoformat(str(data["expires_at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ForgeError(f"GitHub's installation token answer lacks {_what(exc)}",
                         "check GITHUB_API_URL: it must be the REST API root") from None
    if not isinstance(token, str) or not token:
        raise ForgeError("GitHub's installation token answer has an empty token",
                         "check GITHUB_API_URL: it must be the REST API root")
    if expires_at.tzinfo is None:
        raise ForgeError("GitHub's installation token expiry has no time zone",
                         "check GITHUB_API_URL: it must be the REST API root")
    return InstallationToken(token=token, expires_at=expires_at)


def parse_installation_id(data: dict[str, Any]) -> int:
    """The ``id`` of an installation resource."""
    try:
        return _int(data["id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ForgeError(f"GitHub's installation object lacks {_what(exc)}",
                         "check GITHUB_API_URL: it must be the REST API root") from None


def parse_comment_url(data: dict[str, Any]) -> str:
    """The web address of an issue comment resource."""
    url = data.get("html_url")
    if not isinstance(url, str) or not url:
        raise ForgeError("GitHub's comment object lacks an `html_url`",
                         "check GITHUB_API_URL: it must be the REST API root")
    return url


def _int(value: Any) -> int:
    # bool is an int to Python, never a number to GitHub.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a number")
    return value


def _what(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"the field {exc.args[0]!r}"
    return f"a valid value ({exc})"
