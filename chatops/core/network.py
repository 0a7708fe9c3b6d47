"""The agent phase's network policy, and what it blocked.

    off        no interface but loopback (the default)
    allowlist  only HTTP(S) through a filtering proxy, to the listed domains, with the listed
               methods; names are resolved by the proxy, never by the agent, so DNS cannot
               carry data out
    on         the engine's bridge network, unfiltered

In TOML the short form ``network = "off"`` or ``"on"`` still works; an allowlist is a table:

    [environments.web.network]
    mode = "allowlist"
    allow = ["pypi.org", "*.pythonhosted.org"]
    methods = ["GET", "HEAD"]      # the default

``*.example.com`` allows example.com and every name under it. Raw IP addresses cannot be
listed: a name is what the allowlist is about, and an address would bypass it.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

# The methods the allowlist lets through unless the environment lists its own: reading only.
DEFAULT_METHODS = ("GET", "HEAD")
KNOWN_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class NetworkPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["off", "allowlist", "on"] = "off"
    allow: tuple[str, ...] = ()
    methods: tuple[str, ...] = DEFAULT_METHODS

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @field_validator("allow", mode="before")
    @classmethod
    def _domains(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(_domain(item) for item in value)
        return value

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            return value
        methods = tuple(dict.fromkeys(str(item).upper() for item in value))
        unknown = sorted(set(methods) - KNOWN_METHODS)
        if unknown:
            raise ValueError(
                f"unknown HTTP method(s) {', '.join(unknown)}; "
                f"use some of {', '.join(sorted(KNOWN_METHODS))}"
            )
        if not methods:
            raise ValueError("list at least one method, e.g. [\"GET\", \"HEAD\"]")
        return methods

    @model_validator(mode="after")
    def _allowlist_needs_domains(self) -> NetworkPolicy:
        if self.mode == "allowlist" and not self.allow:
            raise ValueError('mode "allowlist" needs at least one domain in `allow`')
        if self.mode != "allowlist" and self.allow:
            raise ValueError(f'`allow` only applies to mode "allowlist", not {self.mode!r}')
        return self

    def allows_host(self, host: str) -> bool:
        """True when ``host`` is on the allowlist (exactly, or under a ``*.`` entry)."""
        host = host.lower().rstrip(".")
        for entry in self.allow:
            if entry.startswith("*."):
                base = entry[2:]
                if host == base or host.endswith("." + base):
                    return True
            elif host == entry:
                return True
        return False

    def describe(self) -> str:
        """One line for receipts: ``no network``, ``network on`` or the allowlist."""
        if self.mode == "off":
            return "no network"
        if self.mode == "on":
            return "network on"
        return f"network allowlist [{' '.join(self.allow)}] ({'/'.join(self.methods)})"


def _domain(value: Any) -> str:
    text = str(value).strip().lower().rstrip(".")
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValueError(f"{value!r} is an IP address; list domain names only")
    labels = name.split(".")
    # Top-level domains are never numeric: "127.1", "2130706433" or "0x7f.1" are addresses
    # in disguise, and the proxy would compare them as written, so they could never match.
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        raise ValueError(f"{value!r} is an IP address in another notation; list domain names")
    if "/" in name or ":" in name or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a domain name; write e.g. \"pypi.org\" or \"*.github.com\" "
            "(no scheme, port or path)"
        )
    if len(labels) < 2 and wildcard:
        raise ValueError(f"{value!r} is too broad; name a domain under the wildcard")
    return text


BlockReason = Literal["host", "method", "port", "scheme", "address"]
BLOCK_REASONS: dict[str, str] = {
    "host": "not on the allowlist",
    "method": "method not allowed",
    "port": "only ports 80 and 443, and 443 for tunnels",
    "scheme": "only http and https",
    "address": "the name resolves to a loopback, link-local or the sandbox's own address",
}


class BlockedRequest(BaseModel):
    """One request the egress proxy refused: when, what, and why."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    method: str
    host: str
    # The request target as the proxy logged it (host:port for a tunnel), redacted, cut short.
    url: str = ""
    # A key of BLOCK_REASONS: which rule refused it.
    reason: BlockReason = "host"
    # The best-of-N candidate that made it, 0 for a task with one.
    attempt: int = 0
