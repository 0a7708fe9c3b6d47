"""GitHub's refusals as ForgeErrors that keep GitHub's words and say what to change.

    401  the credentials are wrong                -> a new token, or the App's id and key
    403  the credentials may not do this          -> the permissions to grant
    404  no such repository, or not visible to us -> the repository name, App installation
    422  GitHub will not create it                -> depends on GitHub's message
    any  other status                             -> GitHub's message, as is

Every message names what we were doing and the repository. Credentials are removed from it
whatever GitHub echoed back.
"""

from __future__ import annotations

from typing import Literal

import httpx

from chatops.core.errors import ForgeError

AuthKind = Literal["token", "app"]

# What the forge needs on a repository, in the words of GitHub's permission settings.
PERMISSIONS = "`contents: write` and `pull_requests: write`"

_UNAUTHORIZED = {
    "token": "GITHUB_TOKEN is invalid, expired or revoked: create a new token and restart the"
             " worker with it",
    "app": "check GITHUB_APP_ID and that the private key is the App's current one; App tokens"
           " are signed with a time, so the worker's clock must be right too",
}
_FORBIDDEN = {
    "token": f"give the token {PERMISSIONS} on {{repo}} (fine-grained), or the `repo` scope"
             " (classic); if the organization uses SAML single sign-on, authorize the token"
             " for it",
    "app": f"grant the GitHub App {PERMISSIONS}, accept the new permissions on its"
           " installation, and make sure the installation includes {repo}",
}
_NOT_FOUND = {
    "token": "check the environment's `repository` ({repo}); a private repository looks"
             " missing to a token that cannot see it",
    "app": "check the environment's `repository` ({repo}) and that the GitHub App is"
           " installed on it",
}
_UNPROCESSABLE = (
    ("no commits between", "the branch has nothing the base lacks: check that it was pushed"
                           " and that the environment's `base_branch` is right"),
    ("draft pull requests are not supported", "set `draft = false` in the environment: this"
                                              " repository's plan has no draft pull requests"),
    ("field: head", "push the branch before opening its pull request"),
    ("field: base", "check the environment's `base_branch`: it must exist in the repository"),
)


def github_message(response: httpx.Response) -> str:
    """GitHub's explanation: ``message`` plus each entry of ``errors``, on one line."""
    try:
        data = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300] or response.reason_phrase
    if not isinstance(data, dict):
        return response.reason_phrase
    parts = [str(data.get("message") or response.reason_phrase)]
    for error in data.get("errors") or ():
        parts.append(_detail(error))
    return ": ".join(part for part in parts if part)


def error_for(
    response: httpx.Response, action: str, repo: object, auth: AuthKind
) -> ForgeError:
    """The ForgeError for a response GitHub refused while doing ``action`` on ``repo``."""
    status = response.status_code
    said = redact(github_message(response), response.request)
    message = f"GitHub refused to {action} ({status}: {said})"
    if status == 401:
        return ForgeError(message, _UNAUTHORIZED[auth])
    if status == 403:
        return ForgeError(message, _FORBIDDEN[auth].format(repo=repo))
    if status == 404:
        return ForgeError(message, _NOT_FOUND[auth].format(repo=repo))
    if status == 422:
        lowered = said.lower()
        for marker, hint in _UNPROCESSABLE:
            if marker in lowered:
                return ForgeError(message, hint)
        return ForgeError(message, "read GitHub's message: it names the field it refused")
    if status >= 500:
        return ForgeError(message, "GitHub is having trouble; retry the task later")
    return ForgeError(message)


def redact(text: str, request: httpx.Request | None) -> str:
    """``text`` without the credential ``request`` carried, should GitHub ever echo it."""
    if request is None:
        return text
    credential = request.headers.get("authorization", "").partition(" ")[2].strip()
    return text.replace(credential, "***") if credential else text


def _detail(error: object) -> str:
    if isinstance(error, dict):
        if error.get("message"):
            return str(error["message"])
        fields = [f"{key}: {error[key]}" for key in ("resource", "field", "code") if key in error]
        return ", ".join(fields)
    return str(error)
