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
# Seconds without a heartbeat after which a running task's worker is taken for dead
# (heartbeats come every 5 s, so this is a dozen missed beats).
DEFAULT_STALE_AFTER_S = 60


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
    # Slack, with Bolt's variable names; the API URL moves for GovSlack and for tests.
    slack_bot_token: str = field(default="", repr=False)
    slack_signing_secret: str = field(default="", repr=False)
    slack_app_token: str = field(default="", repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
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
            slack_bot_token=env.get("SLACK_BOT_TOKEN", ""),
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET", ""),
            slack_app_token=env.get("SLACK_APP_TOKEN", ""),
            slack_api_url=env.get("SLACK_API_URL", DEFAULT_SLACK_API_URL),
            host_env=env,
        )

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


def _number(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {env[name]!r}") from None
