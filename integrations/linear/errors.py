"""What talking to Linear can fail with: one branch of the ChatopsError tree.

    ChatopsError
    └── LinearError             Linear answered with an error we do not handle
        ├── LinearUnavailable   Linear could not be reached (after the retries)
        ├── LinearRateLimited   still rate limited after the bounded backoff
        ├── LinearAuthError     the key or token was refused, or lacks a scope
        ├── LinearNotFound      the issue, comment or session is not visible to us
        └── LinearConflict      an entity with the id we chose exists already
"""

from __future__ import annotations

from chatops.core.errors import ChatopsError


class LinearError(ChatopsError):
    default_hint = "check the chatops logs for the GraphQL error Linear returned"


class LinearUnavailable(LinearError):
    default_hint = "check that the server can reach Linear (LINEAR_API_URL)"


class LinearRateLimited(LinearError):
    default_hint = "Linear's rate limit was hit; the next update will try again"


class LinearAuthError(LinearError):
    default_hint = ("check LINEAR_API_KEY or LINEAR_OAUTH_TOKEN and that the app has the "
                    "read, write and app:assignable / app:mentionable scopes")


class LinearNotFound(LinearError):
    default_hint = "make sure the key's user or the app can see the issue's team"


class LinearConflict(LinearError):
    """Raised for creations with a client-chosen id whose first attempt already landed."""
