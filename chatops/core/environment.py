"""Environments: where and how a task runs.

An environment names a repository and everything needed to work on it in a container: the
image, a setup script (the only phase that sees secrets, and it has network), a maintenance
script, plain env vars, the agent, the agent phase's network policy, resource limits and a
timeout. They are declared in a TOML file (see ``environments.example.toml``);
``parse_environments`` turns its text into a catalogue or raises ConfigError naming the field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from chatops.core.agents import PRESETS
from chatops.core.errors import AmbiguousEnvironment, ConfigError, UnknownEnvironment
from chatops.core.network import NetworkPolicy

# The sandbox image built offline by `chatops image build`.
DEFAULT_IMAGE = "chatops/sandbox:busybox"
# 30 minutes: long enough for a real agent run, short enough to free a worker from a stuck one.
DEFAULT_TIMEOUT_S = 30 * 60
# 15 minutes: dependency installs on a cold cache are the slow part of setup.
DEFAULT_SETUP_TIMEOUT_S = 15 * 60

_UNITS_S = {"": 1, "s": 1, "m": 60, "h": 3600}
_UNITS_B = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _quantity(value: Any, units: Mapping[str, int], what: str) -> Any:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]?)[bB]?\s*", value)
        if not match or match.group(2).lower() not in units:
            raise ValueError(f"invalid {what} {value!r}; use e.g. {', '.join(_examples(what))}")
        return int(float(match.group(1)) * units[match.group(2).lower()])
    return value


def _examples(what: str) -> list[str]:
    return ["90s", "10m", "1h"] if what == "duration" else ["512m", "2g"]


Seconds = Annotated[int, BeforeValidator(lambda v: _quantity(v, _UNITS_S, "duration")), Field(gt=0)]
Bytes = Annotated[int, BeforeValidator(lambda v: _quantity(v, _UNITS_B, "size")), Field(gt=0)]
# Seconds where 0 is a setting of its own ("off"), as for `cache_ttl`.
SecondsOrOff = Annotated[
    int, BeforeValidator(lambda v: _quantity(v, _UNITS_S, "duration")), Field(ge=0)
]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Resources(_Strict):
    cpus: float = Field(default=1.0, gt=0, le=64)
    memory: Bytes = 2 * 1024**3
    pids: int = Field(default=512, ge=16)
    # What the agent may leave in the checkout; the collected result is refused above it.
    workspace: Bytes = 1024**3


class SecretRef(_Strict):
    """A secret by name; its value comes from the worker's environment, never the file."""

    name: str
    from_env: str = ""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name", "from_env")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if value and not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid environment variable name")
        return value

    @property
    def source(self) -> str:
        return self.from_env or self.name


class AgentSpec(_Strict):
    """A preset by name, or a command; ``credentials`` are host variables the agent may see."""

    preset: str = ""
    command: str = ""
    credentials: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"preset": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_of(self) -> AgentSpec:
        if bool(self.preset) == bool(self.command):
            raise ValueError("give exactly one of `preset` (a name) or `command`")
        if self.preset and self.preset not in PRESETS:
            raise ValueError(
                f"unknown agent preset {self.preset!r}; presets: {', '.join(sorted(PRESETS))}"
            )
        return self

    @property
    def resolved_command(self) -> str:
        return self.command or PRESETS[self.preset].command

    @property
    def resolved_credentials(self) -> tuple[str, ...]:
        preset = PRESETS[self.preset].credentials if self.preset else ()
        return tuple(dict.fromkeys((*preset, *self.credentials)))


class Environment(_Strict):
    name: str
    repository: str
    base_branch: str = "main"
    image: str = DEFAULT_IMAGE
    setup: str = ""
    maintenance: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    secrets: tuple[SecretRef, ...] = ()
    # The agent phase's network: off, an allowlist through a filtering proxy, or on.
    network: NetworkPolicy = NetworkPolicy()
    resources: Resources = Resources()
    timeout: Seconds = DEFAULT_TIMEOUT_S
    setup_timeout: Seconds = DEFAULT_SETUP_TIMEOUT_S
    # How long a setup snapshot is reused before setup runs again; unset: the sandbox's
    # default (12 h), 0: never cached.
    cache_ttl: SecondsOrOff | None = None
    agent: AgentSpec = AgentSpec(preset="script")
    queue: str = "default"
    # "local": a bare repository on disk; "github": github.com or GitHub Enterprise Server.
    forge: Literal["local", "github"] = "local"
    # Open pull requests as drafts (forges that support it).
    draft: bool = False
    # A read-only root filesystem for the agent; /workspace, /tmp and $HOME stay writable.
    read_only: bool = True
    description: str = ""
    # Chat channels (Slack channel ids) whose requests use this environment by default.
    channels: tuple[str, ...] = ()
    # Linear issues of these teams (keys like "ENG" or ids), projects (names or ids) or with
    # these labels use this environment by default.
    linear_teams: tuple[str, ...] = ()
    linear_projects: tuple[str, ...] = ()
    linear_labels: tuple[str, ...] = ()
    # Who may use it: requester ids (Slack user ids, Linear user ids, CLI user names) and
    # channels. Empty means no restriction.
    allowed_users: tuple[str, ...] = ()
    allowed_channels: tuple[str, ...] = ()

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> Environment:
        clash = {s.name for s in self.secrets} & set(self.env)
        if clash:
            raise ValueError(f"{', '.join(sorted(clash))} is both a secret and a plain env var")
        return self

    @property
    def repository_name(self) -> str:
        """The repository's last path part without ``.git``: ``acme/webapp.git`` -> webapp."""
        tail = self.repository.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        return tail.removesuffix(".git")

    def refusal(self, requester: str, channel: str | None = None) -> str | None:
        """Why ``requester`` (in ``channel``) may not use this environment, or None."""
        if self.allowed_users and requester not in self.allowed_users:
            return f"you are not on the allowed users of environment {self.name}"
        if self.allowed_channels and channel is not None and channel not in self.allowed_channels:
            return f"environment {self.name} is not enabled in this channel"
        return None

    @property
    def job_timeout(self) -> int:
        """RQ's limit: every phase plus room for cloning, snapshotting and delivery."""
        return self.setup_timeout + self.timeout + 300


@dataclass(frozen=True)
class LinearPlace:
    """Where a Linear issue sits, each as every name it is known by (key, id, name)."""

    teams: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


class Catalogue:
    """The environments of one file, by name."""

    def __init__(self, environments: Mapping[str, Environment], source: str = "") -> None:
        self._by_name = dict(environments)
        self.source = source

    def __iter__(self) -> Iterator[Environment]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Environment:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self.names()) or "none are defined"
            raise UnknownEnvironment(
                f"there is no environment named {name!r} (known: {known})"
            ) from None

    def choose(self, requested: str | None, channel: str | None = None,
               linear: LinearPlace | None = None) -> tuple[Environment, str]:
        """The environment to use and why, in order: the one named (by environment or
        repository name), the channel's default (or the Linear team, project or label
        mapping), the only one there is.

        Raises UnknownEnvironment for a name that fits nothing, AmbiguousEnvironment (with the
        candidates) when nothing decides.
        """
        if requested:
            if requested in self._by_name:
                return self._by_name[requested], f"named in the request ({requested})"
            by_repo = [e for e in self if e.repository_name == requested]
            if len(by_repo) == 1:
                return by_repo[0], f"its repository was named in the request ({requested})"
            if not by_repo:
                return self.get(requested), ""  # raises, listing the known names
            candidates = by_repo
        else:
            candidates = list(self)
        if channel:
            defaults = [e for e in candidates if channel in e.channels]
            if len(defaults) == 1:
                return defaults[0], f"the default for this channel ({defaults[0].name})"
        if linear is not None:
            for what, field, values in (
                ("label", "linear_labels", linear.labels),
                ("project", "linear_projects", linear.projects),
                ("team", "linear_teams", linear.teams),
            ):
                mapped = [e for e in candidates if set(getattr(e, field)) & set(values)]
                if len(mapped) == 1:
                    return mapped[0], f"mapped from the issue's {what} ({mapped[0].name})"
        if len(candidates) == 1:
            return candidates[0], f"the only environment ({candidates[0].name})"
        names = sorted(e.name for e in candidates)
        what = f"several environments use repository {requested}" if requested else (
            "the request names no environment and there are several")
        raise AmbiguousEnvironment(f"{what}: {', '.join(names)}", names)


def parse_environments(
    text: str, source: str = "environments.toml", base_dir: str = ""
) -> Catalogue:
    """Parse an environments file. Relative repository paths are taken from ``base_dir``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"environments"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    tables = data.get("environments")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{source}: declare at least one [environments.NAME] table")
    found: dict[str, Environment] = {}
    for name, table in tables.items():
        if not _ENV_KEY.match(name):
            raise ConfigError(
                f"{source}: environment name {name!r} must be lowercase letters, digits, . _ -"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: environments.{name} must be a table")
        try:
            env = Environment.model_validate({**table, "name": name})
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_describe(name, exc)}") from None
        found[name] = env.model_copy(update={"repository": _resolve(env.repository, base_dir)})
    return Catalogue(found, source)


def _describe(name: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if part != "function-after")
        field = f"environments.{name}.{where}" if where else f"environments.{name}"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        problems.append(f"{field}: {message}")
    return "; ".join(problems)


def _resolve(repository: str, base_dir: str) -> str:
    if "://" in repository or repository.startswith(("git@", "/")) or not base_dir:
        return repository
    return str(PurePosixPath(base_dir) / repository)
