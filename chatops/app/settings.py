"""Settings: the one place that reads the process environment.

Everything else receives a Settings (or the values it holds) as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chatops.core.environment import Catalogue, parse_environments
from chatops.core.errors import ConfigError

# Where chatops keeps its database and scratch checkouts unless CHATOPS_HOME says otherwise.
DEFAULT_HOME = "~/.local/share/chatops"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_ENVIRONMENTS = "environments.toml"
DEFAULT_AUTHOR = "chatops <chatops@localhost>"
DEFAULT_BRANCH_PREFIX = "chatops/"
# The web app binds to loopback unless told otherwise: the task API shows logs and diffs.
DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_INSTANCE = "default"
# 10 GiB: room for a few dozen environments' dependencies without filling a typical disk.
DEFAULT_CACHE_CAP_BYTES = 10 * 1024**3
# The engine's default bridge: the proxy of a network allowlist reaches out through it.
DEFAULT_EGRESS_NETWORK = "bridge"
DEFAULT_LINEAR_API_URL = "https://api.linear.app/graphql"
# How the bot is mentioned in Linear comments (`@chatops`) when no user id says so.
DEFAULT_LINEAR_BOT_NAME = "chatops"
# The label that hands an issue to the bot when added.
DEFAULT_LINEAR_TRIGGER_LABEL = "codex-ready"
# What may start work from Linear; LINEAR_TRIGGERS takes a comma list of these.
LINEAR_TRIGGERS = ("assign", "delegate", "label", "mention", "agent")
# Seconds without a heartbeat after which a running task's worker is taken for dead
# (heartbeats come every 5 s, so this is a dozen missed beats).
DEFAULT_STALE_AFTER_S = 60
# Half the stale limit: a dead worker's task is reported within about 1.5 times that limit.
DEFAULT_SWEEP_S = 30


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    redis_url: str
    environments_file: Path
    author: str = DEFAULT_AUTHOR
    branch_prefix: str = DEFAULT_BRANCH_PREFIX
    api_token: str = ""
    bind: str = DEFAULT_BIND
    port: int = DEFAULT_PORT
    stale_after_s: int = DEFAULT_STALE_AFTER_S
    # Seconds between a running worker's sweeps for tasks whose worker died.
    sweep_s: int = DEFAULT_SWEEP_S
    # Labels this deployment's containers and cache entries, so that deployments (or test
    # runs) sharing one Docker engine never reap or reuse each other's.
    instance: str = DEFAULT_INSTANCE
    # Bytes the setup cache may keep on the engine before evicting the least recently used.
    cache_cap_bytes: int = DEFAULT_CACHE_CAP_BYTES
    # The Docker network an allowlist's proxy reaches out through (the agent never joins it).
    egress_network: str = DEFAULT_EGRESS_NETWORK
    # PEM authorities that proxy trusts for origins besides the system's (a corporate CA).
    egress_ca_file: Path | None = None
    # Slack, with Bolt's variable names; the API URL moves for GovSlack and for tests.
    slack_bot_token: str = field(default="", repr=False)
    slack_signing_secret: str = field(default="", repr=False)
    slack_app_token: str = field(default="", repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    # Linear: the webhook's signing secret, and a personal API key or an OAuth app token.
    linear_webhook_secret: str = field(default="", repr=False)
    linear_api_key: str = field(default="", repr=False)
    linear_oauth_token: str = field(default="", repr=False)
    linear_api_url: str = DEFAULT_LINEAR_API_URL
    # The bot's Linear user id; learned from `viewer` when empty.
    linear_bot_user_id: str = ""
    linear_bot_name: str = DEFAULT_LINEAR_BOT_NAME
    linear_triggers: frozenset[str] = frozenset(LINEAR_TRIGGERS)
    linear_trigger_label: str = DEFAULT_LINEAR_TRIGGER_LABEL
    # Workflow state names to move issues to (per team, looked up by name); empty: no move.
    linear_started_state: str = ""
    linear_review_state: str = ""
    # The whole process environment: secrets and agent credentials are looked up in it by name.
    host_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("CHATOPS_HOME", DEFAULT_HOME)).expanduser()
        return cls(
            home=home,
            database_url=env.get("CHATOPS_DATABASE_URL", f"sqlite:///{home / 'chatops.db'}"),
            redis_url=env.get("CHATOPS_REDIS_URL", DEFAULT_REDIS_URL),
            environments_file=Path(env.get("CHATOPS_ENVIRONMENTS", DEFAULT_ENVIRONMENTS)),
            author=env.get("CHATOPS_COMMIT_AUTHOR", DEFAULT_AUTHOR),
            branch_prefix=env.get("CHATOPS_BRANCH_PREFIX", DEFAULT_BRANCH_PREFIX),
            api_token=env.get("CHATOPS_API_TOKEN", ""),
            bind=env.get("CHATOPS_BIND", DEFAULT_BIND),
            port=_number(env, "PORT", DEFAULT_PORT),
            stale_after_s=_number(env, "CHATOPS_STALE_AFTER", DEFAULT_STALE_AFTER_S),
            sweep_s=_number(env, "CHATOPS_SWEEP_S", DEFAULT_SWEEP_S),
            instance=env.get("CHATOPS_INSTANCE", DEFAULT_INSTANCE),
            cache_cap_bytes=_number(env, "CHATOPS_CACHE_CAP_BYTES", DEFAULT_CACHE_CAP_BYTES),
            egress_network=env.get("CHATOPS_EGRESS_NETWORK", DEFAULT_EGRESS_NETWORK),
            egress_ca_file=Path(env["CHATOPS_EGRESS_CA_FILE"])
            if env.get("CHATOPS_EGRESS_CA_FILE") else None,
            slack_bot_token=env.get("SLACK_BOT_TOKEN", ""),
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
            slack_app_token=env.get("SLACK_APP_TOKEN", ""),
            slack_api_url=env.get("SLACK_API_URL", DEFAULT_SLACK_API_URL),
            linear_webhook_secret=env.get("LINEAR_WEBHOOK_SECRET", ""),
            linear_api_key=env.get("LINEAR_API_KEY", ""),
            linear_oauth_token=env.get("LINEAR_OAUTH_TOKEN", ""),
            linear_api_url=env.get("LINEAR_API_URL", DEFAULT_LINEAR_API_URL),
            linear_bot_user_id=env.get("LINEAR_BOT_USER_ID", ""),
            linear_bot_name=env.get("LINEAR_BOT_NAME", DEFAULT_LINEAR_BOT_NAME).lstrip("@"),
            linear_triggers=_triggers(env.get("LINEAR_TRIGGERS")),
            linear_trigger_label=env.get("LINEAR_TRIGGER_LABEL", DEFAULT_LINEAR_TRIGGER_LABEL),
            linear_started_state=env.get("LINEAR_STARTED_STATE", ""),
            linear_review_state=env.get("LINEAR_REVIEW_STATE", ""),
            host_env=env,
        )

    @property
    def linear_configured(self) -> bool:
        """Linear can be talked to (the webhook additionally needs its secret)."""
        return bool(self.linear_api_key or self.linear_oauth_token)

    @property
    def workdir(self) -> Path:
        return self.home / "work"

    def load_catalogue(self) -> Catalogue:
        path = self.environments_file
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"no environments file at {path}",
                "create one from environments.example.toml or set CHATOPS_ENVIRONMENTS",
            ) from None
        return parse_environments(text, source=str(path), base_dir=str(path.parent.resolve()))

    def egress_ca(self) -> bytes:
        """The PEM of CHATOPS_EGRESS_CA_FILE, empty when unset."""
        if self.egress_ca_file is None:
            return b""
        try:
            data = self.egress_ca_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"CHATOPS_EGRESS_CA_FILE cannot be read: {exc}") from None
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise ConfigError(f"CHATOPS_EGRESS_CA_FILE ({self.egress_ca_file}) holds no "
                              "PEM certificate", "point it at a PEM bundle of CA certificates")
        return data


def _number(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {env[name]!r}") from None


def _triggers(value: str | None) -> frozenset[str]:
    if value is None or not value.strip():
        return frozenset(LINEAR_TRIGGERS)
    chosen = {part.strip().lower() for part in value.split(",") if part.strip()}
    unknown = chosen - set(LINEAR_TRIGGERS)
    if unknown:
        raise ConfigError(f"LINEAR_TRIGGERS has unknown trigger(s): {', '.join(sorted(unknown))}",
                          f"use a comma list of: {', '.join(LINEAR_TRIGGERS)}")
    return frozenset(chosen)
