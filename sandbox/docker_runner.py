"""The Docker implementation of the ``Sandbox`` port: setup, agent, collect; always cleaned up.

    setup    container from the environment's image, as root, with network. The checkout is
             put in /workspace and the setup script runs with the env vars and the secrets in
             that one exec's environment (never the container's config, its labels, a file or
             the image). Then /workspace is handed to uid 1000 and the container is committed
             to a per-task snapshot image.
    agent    container from the snapshot, as uid 1000, all capabilities dropped,
             no-new-privileges, memory (no swap), CPU and pid limits, no network unless the
             environment allows it, read-only root with tmpfs /tmp and $HOME. /workspace is a
             per-task volume filled from the snapshot; /chatops is a per-task volume with the
             instruction, context and prompt files and a writable out/ for the summary.
    collect  /workspace streamed back through the safe extractor into the host checkout
             (whose .git is never replaced), plus /chatops/out/summary.md.

Whatever happens, every container, volume and snapshot labelled with the task is removed.
Engine trouble surfaces as SandboxUnavailable or SandboxError, never as a docker exception.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container

from chatops.core.environment import Environment
from chatops.core.errors import (
    AgentFailed,
    AgentTimedOut,
    ChatopsError,
    ImageMissing,
    SetupFailed,
    TaskCancelled,
)
from chatops.core.ports import Phase, SandboxEvents, SandboxJob, SandboxOutcome
from sandbox.archive import format_size, pack_workspace, unpack_workspace
from sandbox.engine import (
    archive_stream,
    close_stream,
    container_state,
    engine_error,
    kill,
)
from sandbox.images import AGENT_GID, AGENT_HOME, AGENT_UID
from sandbox.logstream import LogPump, Redactor
from sandbox.naming import DEFAULT_INSTANCE, SNAPSHOT_REPOSITORY, RunNames
from sandbox.reaper import remove_task
from sandbox.taskfiles import (
    CHATOPS_DIR,
    SUMMARY_FILE,
    agent_environment,
    input_archive,
    read_summary,
)

log = logging.getLogger(__name__)

# 0.25 s: how often the cancel flag and the clock are checked while a container runs; a cancel
# is acted on within this, and polling the engine more often buys nothing.
POLL_INTERVAL_S = 0.25
# 5 s: how long to let a log stream deliver its last lines after the process ended.
LOG_DRAIN_S = 5.0
# 512 MiB: size cap of the agent's /tmp and $HOME tmpfs each. Their pages count against the
# container's memory limit anyway; the cap keeps one runaway writer from taking all of it.
TMPFS_BYTES = 512 * 1024**2

WORKSPACE = "/workspace"
# The setup container only has to stay up while scripts are exec'd into it.
_KEEP_ALIVE = ["sh", "-c", "exec sleep 2147483647"]


class DockerSandbox:
    """Runs a task's phases on a Docker engine (see the module docstring for the guarantees).

    ``instance`` labels everything this sandbox creates, so that ``sandbox.reaper.reap`` of
    one deployment leaves another one's containers alone.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        instance: str = DEFAULT_INSTANCE,
        poll_interval: float = POLL_INTERVAL_S,
        tmpfs_bytes: int = TMPFS_BYTES,
    ) -> None:
        self.client = client
        self.instance = instance
        self.poll_interval = poll_interval
        self.tmpfs_bytes = tmpfs_bytes

    def run(self, job: SandboxJob, events: SandboxEvents) -> SandboxOutcome:
        run = _Run(self, job, events, RunNames(job.task_id, self.instance))
        try:
            return run.execute()
        except ChatopsError:
            raise
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise engine_error(exc, run.redactor().redact_text) from exc
        finally:
            run.close()


class _Run:
    """One task's run; holds what ``close`` must release."""

    def __init__(
        self,
        sandbox: DockerSandbox,
        job: SandboxJob,
        events: SandboxEvents,
        names: RunNames,
    ) -> None:
        self.client = sandbox.client
        self.api = sandbox.client.api
        self.poll = sandbox.poll_interval
        self.tmpfs_bytes = sandbox.tmpfs_bytes
        self.job = job
        self.env: Environment = job.environment
        self.events = events
        self.names = names
        # Masked in every log line and message, whichever phase: what setup saw could have
        # been left in a file the agent prints, and the agent's own keys are credentials too.
        self.hidden = (*job.secrets.values(), *job.agent_env.values())
        self.pumps: list[LogPump] = []
        # Set once the engine answered; before that there is nothing to remove.
        self.engine_reached = False

    def redactor(self) -> Redactor:
        return Redactor(self.hidden)

    def execute(self) -> SandboxOutcome:
        self.events.phase(Phase.SETUP)
        self._check_image()
        self.engine_reached = True
        # Leftovers of an earlier attempt of this task would clash with its names.
        remove_task(self.client, self.names.task_id, instance=self.names.instance)
        limits = self._limits()
        snapshot = self._setup(limits)
        self._checkpoint(Phase.AGENT)
        agent = self._agent(snapshot, limits)
        self._checkpoint(Phase.COLLECT)
        return self._collect(agent)

    def _checkpoint(self, phase: Phase) -> None:
        """Enter ``phase``, unless the task was cancelled while no container was watched."""
        if self.events.cancelled():
            raise TaskCancelled(f"the task was cancelled before the {phase.value} phase")
        self.events.phase(phase)

    # -- setup -----------------------------------------------------------------------------

    def _check_image(self) -> None:
        try:
            self.client.images.get(self.env.image)
        except docker.errors.ImageNotFound:
            raise ImageMissing(
                f"the image {self.env.image!r} is not on the Docker engine"
            ) from None

    def _limits(self) -> dict[str, Any]:
        resources = self.env.resources
        cpus = resources.cpus
        engine_cpus = float(self.client.info().get("NCPU") or cpus)
        if cpus > engine_cpus:
            # The engine refuses a CPU quota above its core count; use all of them instead.
            self.events.log(Phase.SETUP, f"using {engine_cpus:g} CPUs, all the engine has")
            cpus = engine_cpus
        return {
            "mem_limit": resources.memory,
            "memswap_limit": resources.memory,  # equal to the memory limit: no swap
            "nano_cpus": int(cpus * 1e9),
            "pids_limit": resources.pids,
            "security_opt": ["no-new-privileges"],
        }

    def _setup(self, limits: dict[str, Any]) -> str:
        container = self.client.containers.create(
            self.env.image,
            entrypoint=[],
            command=_KEEP_ALIVE,
            name=self.names.container("setup"),
            labels=self.names.labels("setup"),
            user="0:0",
            working_dir=WORKSPACE,
            network_mode="bridge",
            **limits,
        )
        with tempfile.TemporaryFile() as packed:
            pack_workspace(self.job.workspace, packed)
            packed.seek(0)
            container.put_archive("/", packed)
        container.start()
        if self.env.setup.strip():
            self._run_setup_script(container)
        else:
            self.events.log(Phase.SETUP, "no setup script")
        code, output = container.exec_run(
            ["chown", "-R", f"{AGENT_UID}:{AGENT_GID}", WORKSPACE], user="0:0"
        )
        if code != 0:
            detail = output.decode(errors="replace") if isinstance(output, bytes) else ""
            raise SetupFailed(
                f"handing {WORKSPACE} to the sandbox user failed: "
                + self.redactor().redact_text(detail.strip()),
                hint="the image needs a working `chown`; see sandbox/Dockerfile",
            )
        snapshot = container.commit(
            repository=SNAPSHOT_REPOSITORY,
            tag=self.names.snapshot_tag,
            conf={"Labels": self.names.labels("snapshot")},
        )
        container.remove(force=True, v=True)
        return str(snapshot.id)

    def _run_setup_script(self, container: Container) -> None:
        # Secrets go into this exec's environment and nowhere else: the engine keeps an exec's
        # environment out of the container config, so neither the commit nor an inspect of
        # the container carries them.
        exec_id = self.api.exec_create(
            container.id,
            ["sh", "-c", self.env.setup],
            environment={**self.env.env, **self.job.secrets},
            workdir=WORKSPACE,
            user="0:0",
        )["Id"]
        stream = self.api.exec_start(exec_id, stream=True)
        pump = self._pump(stream, "setup")

        def finished() -> bool:
            return not self.api.exec_inspect(exec_id)["Running"]

        if not self._watch(Phase.SETUP, pump, finished, self.env.setup_timeout, container):
            raise SetupFailed(
                f"the setup script timed out: it ran past its {self.env.setup_timeout} s limit "
                "and was stopped",
                hint="raise the environment's `setup_timeout` or speed up its script; "
                f"`chatops logs {self.job.task_id}` shows how far it got",
            )
        code = self.api.exec_inspect(exec_id)["ExitCode"]
        if code != 0:
            raise SetupFailed(
                f"the setup script exited with status {code}",
                hint=f"read the setup log with `chatops logs {self.job.task_id}` and fix the "
                "environment's script",
            )

    # -- agent -----------------------------------------------------------------------------

    def _agent(self, snapshot: str, limits: dict[str, Any]) -> Container:
        labels = self.names.labels("agent")
        workspace = self.client.volumes.create(self.names.volume("workspace"), labels=labels)
        inputs = self.client.volumes.create(self.names.volume("chatops"), labels=labels)
        # exec: the engine mounts tmpfs noexec by default, which breaks build tools that run
        # what they compile in /tmp or install into $HOME.
        tmpfs_size = min(self.tmpfs_bytes, self.env.resources.memory)
        tmpfs_options = f"rw,exec,nosuid,nodev,size={tmpfs_size}"
        container = self.client.containers.create(
            snapshot,
            entrypoint=[],
            command=["sh", "-c", self.env.agent.resolved_command],
            name=self.names.container("agent"),
            labels=labels,
            user=f"{AGENT_UID}:{AGENT_GID}",
            working_dir=WORKSPACE,
            environment=agent_environment(self.job),
            network_mode="bridge" if self.env.network == "on" else "none",
            cap_drop=["ALL"],
            read_only=self.env.read_only,
            tmpfs={
                "/tmp": f"{tmpfs_options},mode=1777",
                AGENT_HOME: f"{tmpfs_options},uid={AGENT_UID},gid={AGENT_GID},mode=0700",
            },
            # A fresh named volume takes a copy of the snapshot's /workspace when mounted.
            volumes={
                str(workspace.name): {"bind": WORKSPACE, "mode": "rw"},
                str(inputs.name): {"bind": CHATOPS_DIR, "mode": "rw"},
            },
            **limits,
        )
        container.put_archive(CHATOPS_DIR, input_archive(self.job))
        container.start()
        pump = self._pump(container.logs(stream=True, follow=True), "agent")

        def finished() -> bool:
            return not container_state(self.api, container)["Running"]

        if not self._watch(Phase.AGENT, pump, finished, self.env.timeout, container):
            raise AgentTimedOut(
                f"the agent ran past its {self.env.timeout} s timeout and was stopped"
            )
        state = container_state(self.api, container)
        memory = format_size(self.env.resources.memory)
        if state["ExitCode"] != 0:
            if state.get("OOMKilled"):
                raise AgentFailed(
                    f"the agent was killed for going over its {memory} memory limit "
                    f"(exit status {state['ExitCode']})",
                    hint="raise the environment's `resources.memory` or narrow the instruction",
                )
            raise AgentFailed(
                f"the agent exited with status {state['ExitCode']}",
                hint=f"read the agent log with `chatops logs {self.job.task_id}`",
            )
        if state.get("OOMKilled"):
            self.events.log(
                Phase.AGENT, f"a process was killed for going over the {memory} memory limit"
            )
        return container

    # -- collect ---------------------------------------------------------------------------

    def _collect(self, container: Container) -> SandboxOutcome:
        with archive_stream(self.api, str(container.id), WORKSPACE) as chunks:
            unpack_workspace(
                chunks,
                self.job.workspace,
                limit=self.env.resources.workspace,
                root=WORKSPACE.lstrip("/"),
                on_skip=lambda text: self.events.log(Phase.COLLECT, text),
            )
        return SandboxOutcome(summary=self._summary(container))

    def _summary(self, container: Container) -> str:
        path = f"{CHATOPS_DIR}/{SUMMARY_FILE}"
        try:
            with archive_stream(self.api, str(container.id), path) as chunks:
                summary = read_summary(chunks)
        except docker.errors.NotFound:
            return ""
        return self.redactor().redact_text(summary)

    # -- watching --------------------------------------------------------------------------

    def _pump(self, stream: Any, phase: str) -> LogPump:
        pump = LogPump(
            stream,
            self.redactor(),
            name=f"chatops-{self.names.task_id}-{phase}-log",
            on_close=lambda: close_stream(stream),
        )
        self.pumps.append(pump)
        return pump

    def _watch(
        self,
        phase: Phase,
        pump: LogPump,
        finished: Callable[[], bool],
        timeout_s: int,
        container: Container,
    ) -> bool:
        """Forward ``pump``'s lines until ``finished()``; False if ``timeout_s`` ran out first.

        On a timeout or a cancel the container is killed before returning or raising.
        """
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                for line in pump.take(timeout=self.poll):
                    self.events.log(phase, line)
                if finished():
                    self._drain(phase, pump)
                    return True
                if self.events.cancelled():
                    kill(container)
                    raise TaskCancelled(f"the task was cancelled during the {phase.value} phase")
                if time.monotonic() > deadline:
                    kill(container)
                    self._drain(phase, pump)
                    return False
        finally:
            pump.close()  # releases the stream's socket, which the engine does not close

    def _drain(self, phase: Phase, pump: LogPump) -> None:
        """Forward the last lines of a stream whose process has ended."""
        pump.wait(LOG_DRAIN_S)
        for line in pump.take(timeout=0):
            self.events.log(phase, line)

    def close(self) -> None:
        """Stop log readers and remove every object of the task, keeping an interrupt for last.

        Runs in ``finally``: an exception here must not hide the one that ended the run, and a
        second Ctrl-C should not leave containers running if the removal can still finish.
        """
        for pump in self.pumps:
            pump.close()
        if not self.engine_reached:
            return
        interrupted: BaseException | None = None
        for _attempt in range(2):
            try:
                remove_task(self.client, self.names.task_id, instance=self.names.instance)
                break
            except (KeyboardInterrupt, SystemExit) as exc:
                interrupted = exc
            except Exception:
                log.exception("could not remove the sandbox of task %s", self.names.task_id)
                break
        if interrupted is not None:
            raise interrupted
