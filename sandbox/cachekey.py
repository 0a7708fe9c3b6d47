"""The setup cache key: everything a setup snapshot depends on, digested.

    repository   the environment's repository: a snapshot holds that project's setup outputs
    image        the image id, resolved when the task runs, so a rebuilt tag is a new key
    setup        the setup script
    maintenance  the maintenance script
    env          the plain env vars
    secrets      each secret's name and version (below)
    format       ``CACHE_FORMAT``, raised whenever the runner changes what an entry holds

Each part is digested on its own and kept with the entry, so a miss can tell which part
changed; the key is the digest of the parts.

A secret's version is ``sha256("chatops-secret-version", name, value)`` cut to 16 hex digits:
it changes whenever the value does, and is only ever an input to the ``secrets`` part's digest,
never stored by itself. It is a one-way digest without a salt: someone holding a label could
confirm a guessed weak secret. A per-install salt would have to live where every worker on
the engine can read it, which is on the engine, next to the labels; and reading labels
takes access to the engine, which is root on the worker's host, where the values are anyway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from chatops.core.environment import Environment

# Raise when an entry made by an older runner must not be reused (what it holds changed).
CACHE_FORMAT = "1"

# 16 hex digits (64 bits): a changed value is told apart from the old one all but surely.
_VERSION_DIGITS = 16

# What each part is called when a miss reports it.
PART_NAMES = {
    "repository": "repository",
    "image": "image",
    "setup": "setup script",
    "maintenance": "maintenance script",
    "env": "env vars",
    "secrets": "secrets",
    "format": "cache format",
}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode(errors="surrogateescape")).hexdigest()


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def secret_version(name: str, value: str) -> str:
    """A short one-way version of a secret's value (see the module docstring)."""
    return _digest(_canonical(["chatops-secret-version", name, value]))[:_VERSION_DIGITS]


@dataclass(frozen=True)
class CacheKey:
    """A key and the digests it was made from (``PART_NAMES`` order)."""

    digest: str
    parts: Mapping[str, str]

    @property
    def short(self) -> str:
        return self.digest[:12]

    def changed(self, other: Mapping[str, str]) -> list[str]:
        """The names of the parts that differ from ``other`` (an entry's parts)."""
        return [PART_NAMES[part] for part in PART_NAMES if other.get(part) != self.parts[part]]


def cache_key(image_id: str, env: Environment, secrets: Mapping[str, str]) -> CacheKey:
    """The key of ``env``'s setup on the image ``image_id`` with these secret values."""
    versions = {name: secret_version(name, value) for name, value in secrets.items()}
    parts = {
        "repository": _digest(env.repository),
        "image": image_id,
        "setup": _digest(env.setup),
        "maintenance": _digest(env.maintenance),
        "env": _digest(_canonical(env.env)),
        "secrets": _digest(_canonical(versions)),
        "format": CACHE_FORMAT,
    }
    return CacheKey(digest=_digest(_canonical(parts)), parts=parts)
