"""The composition root: builds each part once, on first use, from Settings.

Parts are lazy so that a command only touches what it needs: `chatops tasks list` opens the
database and nothing else; only running a task talks to Docker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from chatops.app.queue import RQQueue, connect
from chatops.app.settings import Settings
from chatops.core.environment import Catalogue
from chatops.core.errors import SandboxUnavailable
from chatops.core.ports import (
    ContextSource,
    Forge,
    Notifier,
    Sandbox,
    SandboxEvents,
    SandboxJob,
    SandboxOutcome,
)
from chatops.core.task import LinearIssue, Task
from chatops.service import Services, TaskService
from chatops.store.engine import open_engine
from chatops.store.tasks import TaskStore

if TYPE_CHECKING:
    import docker
    from redis import Redis
    from slack_bolt import App
    from slack_sdk import WebClient
    from sqlalchemy.engine import Engine

    from integrations.github import GitHubForge
    from integrations.linear.client import LinearClient
    from integrations.linear.identity import BotIdentity
    from integrations.linear.intake import LinearIntake, Waiting

log = logging.getLogger(__name__)


class LogNotifier:
    """The notifier for tasks from the CLI or API: their callers read the store themselves."""

    def task_changed(self, task: Task) -> str | None:
        log.info("task %s is %s: %s", task.id, task.state.value, task.reason)
        return None


class OriginNotifier:
    """Routes each task's news to the notifier of the door it came in by."""

    def __init__(self, by_kind: dict[str, Notifier], fallback: Notifier) -> None:
        self.by_kind = by_kind
        self.fallback = fallback

    def task_changed(self, task: Task) -> str | None:
        return self.by_kind.get(task.request.origin.kind, self.fallback).task_changed(task)


class LinearLedger:
    """What the Linear intake reads about earlier work, over the store."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store

    def live(self, session_id: str) -> list[Task]:
        return [t for t in self.store.active()
                if isinstance(t.request.origin, LinearIssue)
                and t.request.origin.agent_session_id == session_id]

    def waiting(self, issue_id: str, session_id: str | None) -> list[Waiting]:
        from integrations.linear.intake import Waiting

        return [Waiting(held.id, held.choices, held.task_id is not None)
                for held in self.store.held()
                if isinstance(held.request.origin, LinearIssue)
                and held.request.origin.issue_id == issue_id
                and held.request.origin.agent_session_id == session_id]


class Runtime:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        # Wall-clock seconds; the Linear webhook checks delivery times against it.
        self.clock = clock
        self._catalogue: tuple[int | None, Catalogue] | None = None

    @cached_property
    def engine(self) -> Engine:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        return open_engine(self.settings.database_url)

    @cached_property
    def store(self) -> TaskStore:
        return TaskStore(self.engine)

    @property
    def catalogue(self) -> Catalogue:
        """The environments file, read again whenever it changed on disk."""
        path = self.settings.environments_file
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = None
        if self._catalogue is None or stamp != self._catalogue[0]:
            self._catalogue = (stamp, self.settings.load_catalogue())
        return self._catalogue[1]

    @cached_property
    def redis(self) -> Redis:
        return connect(self.settings.redis_url)

    @cached_property
    def docker(self) -> docker.DockerClient:
        import docker

        try:
            return docker.from_env()
        except docker.errors.DockerException as exc:
            raise SandboxUnavailable(f"cannot reach the Docker engine: {exc}") from None

    @cached_property
    def sandbox(self) -> Sandbox:
        return _DockerWhenRun(self)

    @cached_property
    def github(self) -> GitHubForge | None:
        from integrations.github import GitHubForge, forge_settings_from

        settings = forge_settings_from(self.settings.host_env)
        return GitHubForge.from_settings(settings) if settings.configured else None

    @cached_property
    def forges(self) -> dict[str, Forge]:
        from integrations.git.local_forge import LocalForge

        forges: dict[str, Forge] = {"local": LocalForge()}
        if self.github is not None:
            forges["github"] = self.github
        return forges

    @cached_property
    def slack_client(self) -> WebClient | None:
        if not self.settings.slack_bot_token:
            return None
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

        # Only 429s are retried: Slack did not act on them, so a retry never posts twice.
        return WebClient(token=self.settings.slack_bot_token,
                         base_url=self.settings.slack_api_url,
                         retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)])

    @cached_property
    def notifiers(self) -> dict[str, Notifier]:
        notifiers: dict[str, Notifier] = {}
        if self.slack_client is not None:
            from integrations.slack.notifier import SlackNotifier

            notifiers["slack"] = SlackNotifier(self.slack_client)
        if self.linear_client is not None:
            from integrations.linear.notifier import LinearNotifier
            from integrations.linear.outbox import LinearOutbox

            notifiers["linear"] = LinearNotifier(LinearOutbox(self.linear_client),
                                                 self.settings.linear_started_state,
                                                 self.settings.linear_review_state)
        return notifiers

    @cached_property
    def context_sources(self) -> dict[str, ContextSource]:
        sources: dict[str, ContextSource] = {}
        if self.slack_client is not None:
            from integrations.slack.thread import SlackThreadReader

            sources["slack"] = SlackThreadReader(self.slack_client)
        if self.linear_client is not None:
            from integrations.linear.identity import BotIdentity
            from integrations.linear.issue import LinearIssueReader

            sources["linear"] = LinearIssueReader(self.linear_client, BotIdentity(
                self.linear_client, self.settings.linear_bot_user_id))
        return sources

    @cached_property
    def linear_client(self) -> LinearClient | None:
        if not self.settings.linear_configured:
            return None
        from integrations.linear.client import LinearClient, authorization

        return LinearClient(authorization(self.settings.linear_api_key,
                                          self.settings.linear_oauth_token),
                            self.settings.linear_api_url)

    @cached_property
    def linear_intake(self) -> LinearIntake | None:
        """The webhook handler, when Linear is configured (credentials and signing secret)."""
        if self.linear_client is None or not self.settings.linear_webhook_secret:
            return None
        from concurrent.futures import ThreadPoolExecutor

        from integrations.linear.identity import BotIdentity
        from integrations.linear.intake import IntakeConfig, LinearIntake
        from integrations.linear.outbox import LinearOutbox

        executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="linear")
        settings = self.settings
        identity: BotIdentity = BotIdentity(self.linear_client, settings.linear_bot_user_id,
                                            executor)
        return LinearIntake(
            desk=self.service, outbox=LinearOutbox(self.linear_client),
            ledger=LinearLedger(self.store),
            config=IntakeConfig(secret=settings.linear_webhook_secret,
                                bot_name=settings.linear_bot_name,
                                triggers=settings.linear_triggers,
                                label=settings.linear_trigger_label),
            identity=identity, executor=executor, clock=self.clock)

    @cached_property
    def slack_app(self) -> App | None:
        """The Bolt app, when Slack is configured (bot token and signing secret)."""
        if self.slack_client is None or not self.settings.slack_signing_secret:
            return None
        from concurrent.futures import ThreadPoolExecutor

        from integrations.slack.bolt_app import create_bolt_app

        return create_bolt_app(self.service, self.slack_client,
                               self.settings.slack_signing_secret,
                               ThreadPoolExecutor(max_workers=8, thread_name_prefix="slack"))

    @cached_property
    def service(self) -> TaskService:
        from integrations.git.repository import GitRepository

        github = self.github
        return TaskService(Services(
            store=self.store,
            catalogue=lambda: self.catalogue,
            queue=RQQueue(self.redis),
            sandbox=self.sandbox,
            # Pushes to GitHub carry the forge's token per command; other remotes get nothing.
            repository=GitRepository(network_config=github.git_config if github else None),
            forges=self.forges,
            notifier=OriginNotifier(self.notifiers, LogNotifier()),
            context_sources=self.context_sources,
            host_env=self.settings.host_env,
            workdir=self.settings.workdir,
            author=self.settings.author,
            branch_prefix=self.settings.branch_prefix,
        ))


class _DockerWhenRun:
    """Connects to Docker on the first run, so submitting never needs the engine."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def run(self, job: SandboxJob, events: SandboxEvents) -> SandboxOutcome:
        from sandbox.docker_runner import DockerSandbox

        settings = self.runtime.settings
        return DockerSandbox(self.runtime.docker, instance=settings.instance,
                             cache_cap_bytes=settings.cache_cap_bytes,
                             egress_network=settings.egress_network,
                             egress_ca=settings.egress_ca()).run(job, events)
