"""The setup phase: from the environment's image, or from a setup cache entry.

    cold  A setup container from the image (by the id the cache key was made from), as root,
          with network. The checkout is put in and the setup script runs with the env vars
          and the secrets in that one exec's environment (never the container's config, its
          labels, a file or the image); /workspace is handed to uid 1000. With the cache on,
          the checkout's own paths are then taken out again and the container is committed
          as a cache entry; with it off (``cache_ttl = 0``, no setup script), it is committed
          as the task's snapshot with the checkout in it.
    warm  A cache hit: the setup script is skipped. Without a maintenance script the agent
          starts from the entry itself. With one, a container from the entry gets the task's
          workspace volume (which the engine fills from the entry's /workspace when the
          container is created) with the checkout put on top, runs the maintenance script
          under the setup script's rules (root, network, secrets only in that exec, output
          redacted) and hands /workspace to uid 1000. The volume carries /workspace on to the
          agent; only if the script changed something else the agent could see (`docker
          diff`) is the container committed as the task's snapshot, else the agent starts
          from the entry.

Why an entry holds no checkout: the agent must see the requested commit, and setup leaves
its outputs next to the tracked files (node_modules/, .venv/, a gitignored .deps/) as well as
elsewhere in the image. Taking out exactly the paths that were put in leaves only what setup
made; the requested checkout put on top of that is then the commit's tree plus the setup
outputs, with no stale file of an older commit left to find and delete (a file deleted since
would otherwise linger), and a hit without maintenance needs no container of its own. A
tracked file that setup rewrote is back at the commit's version: hit and miss agree.
"""

from __future__ import annotations

import io
import logging
import shlex
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from chatops.core.environment import Environment
from chatops.core.errors import SetupFailed
from chatops.core.ports import Phase, SandboxEvents, SandboxJob
from sandbox.archive import PackedCheckout, format_size
from sandbox.cache import DEFAULT_TTL_S, Entry, SetupCache, format_age
from sandbox.cachekey import CacheKey, cache_key
from sandbox.images import AGENT_GID, AGENT_HOME, AGENT_UID
from sandbox.logstream import Redactor
from sandbox.naming import SNAPSHOT_REPOSITORY, RunNames
from sandbox.watch import Watcher

log = logging.getLogger(__name__)

WORKSPACE = "/workspace"
# The setup container only has to stay up while scripts are exec'd into it.
_KEEP_ALIVE = ["sh", "-c", "exec sleep 2147483647"]
# Where the script that takes the checkout out is put; it removes itself before the commit.
_STRIP_SCRIPT = "/.chatops-strip"
# Changes under these need no snapshot: the agent gets tmpfs over /tmp and its home, and
# /root is closed to its uid. (/workspace is a volume: `docker diff` never lists it.)
_UNSEEN_BY_AGENT = ("/tmp", AGENT_HOME, "/root")
# Paths per `rm` line of that script: keeps each command far below the kernel's argv limits.
_PATHS_PER_LINE = 200


@dataclass(frozen=True)
class Provisioned:
    """What the agent phase starts from."""

    image: str
    # True when the image holds no checkout (a cache entry) and nothing put it in the
    # workspace volume yet: the agent phase puts it there before starting.
    needs_checkout: bool


class Provisioner:
    """Runs one task's setup phase (see the module docstring)."""

    def __init__(
        self,
        client: docker.DockerClient,
        job: SandboxJob,
        events: SandboxEvents,
        names: RunNames,
        watcher: Watcher,
        checkout: PackedCheckout,
        cache: SetupCache | None,
        redactor: Callable[[], Redactor],
    ) -> None:
        self.client = client
        self.api = client.api
        self.job = job
        self.env: Environment = job.environment
        self.events = events
        self.names = names
        self.watcher = watcher
        self.checkout = checkout
        self.cache = cache
        self.redactor = redactor

    def _log(self, text: str) -> None:
        # A note of ours is a whole line among the script's streamed lines.
        self.events.log(Phase.SETUP, text if text.endswith("\n") else text + "\n")

    def provision(
        self, image_id: str, limits: dict[str, Any], workspace_volume: str
    ) -> Provisioned:
        if not self.env.setup.strip() or self.cache is None:
            return self._cold(image_id, limits, None)
        ttl = DEFAULT_TTL_S if self.env.cache_ttl is None else self.env.cache_ttl
        if ttl == 0:
            self._log("setup cache off for this environment (cache_ttl = 0)")
            return self._cold(image_id, limits, None)
        key = cache_key(image_id, self.env, self.job.secrets)
        found = self.cache.lookup(key, self.env.name, ttl)
        if found.entry is None:
            self._log(f"setup cache miss ({found.reason}): running the setup script")
        elif self.cache.touch(found.entry, self.names.cache_use):
            self._log(f"setup cache hit ({found.reason}): the setup script is skipped")
            return self._warm(found.entry, limits, workspace_volume)
        else:
            self._log(f"setup cache miss (entry {found.entry.short} was removed meanwhile): "
                      "running the setup script")
        return self._cold(image_id, limits, (key, ttl))

    # -- cold ------------------------------------------------------------------------------

    def _cold(
        self, image_id: str, limits: dict[str, Any], caching: tuple[CacheKey, int] | None
    ) -> Provisioned:
        container = self._container(image_id, limits)
        # /workspace may not exist in the image; the checkout tar is rooted at it.
        container.put_archive("/", _workspace_stub())
        container.put_archive(WORKSPACE, self.checkout.open())
        container.start()
        if self.env.setup.strip():
            self._script(container, "setup", self.env.setup)
        else:
            self._log("no setup script")
        self._chown(container)
        if caching is None:
            snapshot = self._commit_snapshot(container)
            container.remove(force=True, v=True)
            return Provisioned(snapshot, needs_checkout=False)
        key, ttl = caching
        assert self.cache is not None
        self._strip(container)
        entry = self.cache.insert(
            container, key, environment=self.env.name, ttl=ttl, hold=self.names.cache_use
        )
        container.remove(force=True, v=True)
        self._log(f"setup cached as entry {entry.short} ({format_size(entry.size)}); tasks "
                  f"in the next {format_age(ttl)} skip the setup script")
        self._evict(entry)
        return Provisioned(entry.image_id, needs_checkout=True)

    def _strip(self, container: Container) -> None:
        """Take the checkout's own paths out of /workspace, leaving what setup made."""
        files, dirs = self.checkout.paths()
        container.put_archive("/", _script_tar(_STRIP_SCRIPT, strip_script(files, dirs)))
        code, output = container.exec_run(["sh", _STRIP_SCRIPT], user="0:0")
        if code != 0:
            raise SetupFailed(
                "taking the checkout out of the setup snapshot failed: "
                + self._detail(output),
                hint="the image needs `sh`, `rm` and `rmdir`; set `cache_ttl = 0` on the "
                "environment to run without the setup cache",
            )

    def _evict(self, entry: Entry) -> None:
        assert self.cache is not None
        try:
            removal = self.cache.evict(keep={entry.image_id})
        except docker.errors.APIError as exc:
            # Housekeeping: the task's own setup is done and must not fail over it.
            log.warning("setup cache eviction failed: %s", exc)
            return
        if removal.removed:
            self._log(f"setup cache: removed {len(removal.removed)} older entries "
                      f"({format_size(removal.freed)})")

    # -- warm ------------------------------------------------------------------------------

    def _warm(self, entry: Entry, limits: dict[str, Any], workspace_volume: str) -> Provisioned:
        if not self.env.maintenance.strip():
            self._log("no maintenance script")
            return Provisioned(entry.image_id, needs_checkout=True)
        container = self._container(entry.image_id, limits, workspace_volume)
        container.put_archive(WORKSPACE, self.checkout.open())
        container.start()
        self._log("running the maintenance script")
        self._script(container, "maintenance", self.env.maintenance)
        self._chown(container)
        changed = _seen_by_agent(container.diff() or [])
        if changed:
            self._log(f"the maintenance script changed {changed[0]}"
                      + (f" and {len(changed) - 1} more" if len(changed) > 1 else "")
                      + f" outside {WORKSPACE}: keeping a snapshot for the agent")
            image = self._commit_snapshot(container)
        else:
            # The volume carries /workspace on; nothing else the agent could see changed.
            self._log(f"the maintenance script changed nothing outside {WORKSPACE}")
            image = entry.image_id
        container.remove(force=True, v=True)  # v: anonymous volumes only; the workspace stays
        return Provisioned(image, needs_checkout=False)

    # -- shared ----------------------------------------------------------------------------

    def _container(
        self, image: str, limits: dict[str, Any], workspace_volume: str | None = None
    ) -> Container:
        volumes = {workspace_volume: {"bind": WORKSPACE, "mode": "rw"}} if workspace_volume else {}
        return self.client.containers.create(
            image,
            entrypoint=[],
            command=_KEEP_ALIVE,
            name=self.names.container("setup"),
            labels=self.names.labels("setup"),
            user="0:0",
            working_dir=WORKSPACE,
            network_mode="bridge",
            volumes=volumes,
            **limits,
        )

    def _script(self, container: Container, what: str, script: str) -> None:
        # Secrets go into this exec's environment and nowhere else: the engine keeps an exec's
        # environment out of the container config, so neither the commit nor an inspect of
        # the container carries them.
        exec_id = self.api.exec_create(
            container.id,
            ["sh", "-c", script],
            environment={**self.env.env, **self.job.secrets},
            workdir=WORKSPACE,
            user="0:0",
        )["Id"]
        stream = self.api.exec_start(exec_id, stream=True)
        pump = self.watcher.pump(stream, what)

        def finished() -> bool:
            return not self.api.exec_inspect(exec_id)["Running"]

        task = self.job.task_id
        timeout = self.env.setup_timeout
        if not self.watcher.watch(Phase.SETUP, pump, finished, timeout, container):
            raise SetupFailed(
                f"the {what} script timed out: it ran past its {timeout} s limit and was "
                "stopped",
                hint="raise the environment's `setup_timeout` or speed up its script; "
                f"`chatops logs {task}` shows how far it got",
            )
        code = self.api.exec_inspect(exec_id)["ExitCode"]
        if code != 0:
            hint = f"read the setup log with `chatops logs {task}` and fix the environment's "
            if what == "maintenance":
                hint += ("maintenance script, or set up from scratch: "
                         f"`chatops envs cache --clear {self.env.name}`")
            else:
                hint += "script"
            raise SetupFailed(f"the {what} script exited with status {code}", hint=hint)

    def _chown(self, container: Container) -> None:
        code, output = container.exec_run(
            ["chown", "-R", f"{AGENT_UID}:{AGENT_GID}", WORKSPACE], user="0:0"
        )
        if code != 0:
            raise SetupFailed(
                f"handing {WORKSPACE} to the sandbox user failed: " + self._detail(output),
                hint="the image needs a working `chown`; see sandbox/Dockerfile",
            )

    def _commit_snapshot(self, container: Container) -> str:
        snapshot = container.commit(
            repository=SNAPSHOT_REPOSITORY,
            tag=self.names.snapshot_tag,
            conf={"Labels": self.names.labels("snapshot")},
        )
        return str(snapshot.id)

    def _detail(self, output: Any) -> str:
        detail = output.decode(errors="replace") if isinstance(output, bytes) else ""
        return self.redactor().redact_text(detail.strip())


def _seen_by_agent(changes: list[dict[str, Any]]) -> list[str]:
    """The paths of a container's changes (``docker diff``) the agent could see, in order."""
    return [change["Path"] for change in changes if not any(
        change["Path"] == root or change["Path"].startswith(root + "/")
        for root in _UNSEEN_BY_AGENT)]


def strip_script(files: list[str], dirs: list[str]) -> bytes:
    """A shell script removing the checkout's paths under /workspace, then itself.

    Whatever is at a tracked file's path goes (the next checkout owns that path); a tracked
    directory goes only once empty, so what setup made inside it stays.
    """
    lines = ["set -e", f"cd {WORKSPACE}", "rm -rf .git"]
    for chunk in _chunks(files):
        lines.append("rm -rf -- " + " ".join(shlex.quote(p) for p in chunk))
    deepest_first = sorted(dirs, key=lambda d: (-d.count("/"), d))
    for chunk in _chunks(deepest_first):
        lines.append("rmdir -- " + " ".join(shlex.quote(p) for p in chunk) + " 2>/dev/null || :")
    lines.append(f"rm -f {_STRIP_SCRIPT}")
    return ("\n".join(lines) + "\n").encode(errors="surrogateescape")


def _chunks(paths: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(paths), _PATHS_PER_LINE):
        yield paths[start:start + _PATHS_PER_LINE]


def _workspace_stub() -> bytes:
    return _tar(tarfile.TarInfo(WORKSPACE.lstrip("/")), None)


def _script_tar(path: str, script: bytes) -> bytes:
    return _tar(tarfile.TarInfo(path.lstrip("/")), script)


def _tar(member: tarfile.TarInfo, data: bytes | None) -> bytes:
    buffer = io.BytesIO()
    if data is None:
        member.type, member.mode = tarfile.DIRTYPE, 0o755
        member.uid, member.gid = AGENT_UID, AGENT_GID
    else:
        member.size, member.mode = len(data), 0o700
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()
