"""The composition root: builds each part once, on first use, from Settings.

Parts are lazy so that a command only touches what it needs: `chatops tasks list` opens the
database and nothing else; only running a task talks to Docker.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING

from chatops.app.queue import RQQueue, connect
from chatops.app.settings import Settings
from chatops.core.environment import Catalogue
from chatops.core.errors import SandboxUnavailable
from chatops.core.ports import Forge, Sandbox, SandboxEvents, SandboxJob, SandboxOutcome
from chatops.core.task import Task
from chatops.service import Services, TaskService
from chatops.store.engine import open_engine
from chatops.store.tasks import TaskStore

if TYPE_CHECKING:
    import docker
    from redis import Redis
    from sqlalchemy.engine import Engine

    from integrations.github import GitHubForge

log = logging.getLogger(__name__)


class LogNotifier:
    """The notifier for tasks from the CLI or API: their callers read the store themselves."""

    def task_changed(self, task: Task) -> None:
        log.info("task %s is %s: %s", task.id, task.state.value, task.reason)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        return open_engine(self.settings.database_url)

    @cached_property
    def store(self) -> TaskStore:
        return TaskStore(self.engine)

    @cached_property
    def catalogue(self) -> Catalogue:
        return self.settings.load_catalogue()

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
    def service(self) -> TaskService:
        from integrations.git.repository import GitRepository

        github = self.github
        return TaskService(Services(
            store=self.store,
            catalogue=self.catalogue,
            queue=RQQueue(self.redis),
            sandbox=self.sandbox,
            # Pushes to GitHub carry the forge's token per command; other remotes get nothing.
            repository=GitRepository(network_config=github.git_config if github else None),
            forges=self.forges,
            notifier=LogNotifier(),
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

        return DockerSandbox(self.runtime.docker).run(job, events)
