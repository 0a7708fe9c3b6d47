"""The Docker implementation of the ``Sandbox`` port: setup, agent, collect; always cleaned up.

    setup    (``sandbox.provision``) from a setup cache entry when one matches the key and is
             younger than the TTL (``sandbox.cache``): the maintenance script, if any, runs
             on the current checkout. Otherwise a container from the environment's image, as
             root, with network: the checkout put in /workspace, the setup script run with
             the env vars and the secrets in that one exec's environment (never the
             container's config, its labels, a file or the image), /workspace handed to
             uid 1000, and the container committed, as a cache entry or the task's snapshot.
    agent    container from that image, as uid 1000, all capabilities dropped,
             no-new-privileges, memory (no swap), CPU and pid limits, no network unless the
             environment allows it (an allowlist puts it behind a filtering proxy, see
             ``sandbox.egress``), read-only root with tmpfs /tmp and $HOME. /workspace is a
             per-task volume filled from the image (plus the checkout, which cache entries do
             not hold); /chatops is a per-task volume with the instruction, context and prompt
             files and a writable out/ for the summary.
    collect  /workspace streamed back through the safe extractor into the host checkout
             (whose .git is never replaced), plus /chatops/out/summary.md.

Whatever happens, every container, volume, network and snapshot labelled with the task is
removed, and the task's hold on a cache entry is dropped (the entry stays for the next task).
Engine trouble surfaces as SandboxUnavailable or SandboxError, never as a docker exception.
"""

from __future__ import annotations

import logging
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
    TaskCancelled,
)
from chatops.core.network import BlockedRequest
from chatops.core.ports import Phase, SandboxEvents, SandboxJob, SandboxOutcome
from sandbox.archive import PackedCheckout, format_size, unpack_workspace
from sandbox.cache import DEFAULT_CAP_BYTES, SetupCache
from sandbox.egress import DEFAULT_OUTBOUND, Egress
from sandbox.engine import archive_stream, container_state, engine_error
from sandbox.images import AGENT_GID, AGENT_HOME, AGENT_UID
from sandbox.logstream import Redactor
from sandbox.naming import DEFAULT_INSTANCE, RunNames
from sandbox.provision import WORKSPACE, Provisioned, Provisioner
from sandbox.reaper import remove_task
from sandbox.taskfiles import (
    CHATOPS_DIR,
    SUMMARY_FILE,
    agent_environment,
    input_archive,
    read_summary,
)
from sandbox.watch import POLL_INTERVAL_S, Watcher

log = logging.getLogger(__name__)

# 512 MiB: size cap of the agent's /tmp and $HOME tmpfs each. Their pages count against the
# container's memory limit anyway; the cap keeps one runaway writer from taking all of it.
TMPFS_BYTES = 512 * 1024**2


class DockerSandbox:
    """Runs a task's phases on a Docker engine (see the module docstring for the guarantees).

    ``instance`` labels everything this sandbox creates, so that ``sandbox.reaper.reap`` of
    one deployment leaves another one's containers alone; setup cache entries are shared by
    the sandboxes of one instance. ``cache_cap_bytes`` caps the entries' layers (least
    recently used go first); 0 turns the setup cache off. ``clock`` (epoch seconds) dates
    and ages the entries. ``egress_network`` is where an allowlist's proxy reaches out from;
    ``egress_ca`` (PEM) are authorities it trusts for origins besides the system's.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        instance: str = DEFAULT_INSTANCE,
        poll_interval: float = POLL_INTERVAL_S,
        tmpfs_bytes: int = TMPFS_BYTES,
        cache_cap_bytes: int = DEFAULT_CAP_BYTES,
        clock: Callable[[], float] = time.time,
        egress_network: str = DEFAULT_OUTBOUND,
        egress_ca: bytes = b"",
    ) -> None:
        self.client = client
        self.egress_network = egress_network
        self.egress_ca = egress_ca
        self.instance = instance
        self.poll_interval = poll_interval
        self.tmpfs_bytes = tmpfs_bytes
        self.cache = (
            SetupCache(client, instance=instance, cap_bytes=cache_cap_bytes, clock=clock)
            if cache_cap_bytes > 0 else None
        )

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
        self.tmpfs_bytes = sandbox.tmpfs_bytes
        self.cache = sandbox.cache
        self.egress_network = sandbox.egress_network
        self.egress_ca = sandbox.egress_ca
        self.egress: Egress | None = None
        self.job = job
        self.env: Environment = job.environment
        self.events = events
        self.names = names
        # Masked in every log line and message, whichever phase: what setup saw could have
        # been left in a file the agent prints, and the agent's own keys are credentials too.
        self.hidden = (*job.secrets.values(), *job.agent_env.values())
        self.watcher = Watcher(events, self.redactor, job.task_id, sandbox.poll_interval)
        self.checkout = PackedCheckout(job.workspace)
        # Set once the engine answered; before that there is nothing to remove.
        self.engine_reached = False

    def redactor(self) -> Redactor:
        return Redactor(self.hidden)

    def execute(self) -> SandboxOutcome:
        self.events.phase(Phase.SETUP)
        image_id = self._check_image()
        self.engine_reached = True
        # Leftovers of an earlier attempt of this task would clash with its names.
        remove_task(self.client, self.names.task_id, instance=self.names.instance)
        limits = self._limits()
        # Made first: a labelled object lets the reaper find the task (and drop its hold on a
        # cache entry) if this worker is killed from here on.
        volumes = self._volumes()
        if self.env.network.mode == "allowlist":
            # Started now, in the background: squid comes up while the setup phase runs.
            self.egress = Egress(self.client, self.names, self.env.network,
                                 self.egress_network, self.egress_ca)
            self.egress.start()
        provisioner = Provisioner(self.client, self.job, self.events, self.names, self.watcher,
                                  self.checkout, self.cache, self.redactor)
        ready = provisioner.provision(image_id, limits, volumes["workspace"])
        self._checkpoint(Phase.AGENT)
        try:
            agent = self._agent(ready, limits, volumes)
        finally:
            # However the agent phase ended: a refused request often explains a failure.
            # Not at the price of that failure: trouble reporting them is only logged.
            if self.egress is not None:
                try:
                    self._report_refusals(self.egress.remaining_refusals)
                except Exception:
                    log.exception("could not report the refusals of %s", self.names.task_id)
        self._checkpoint(Phase.COLLECT)
        return self._collect(agent)

    def _checkpoint(self, phase: Phase) -> None:
        """Enter ``phase``, unless the task was cancelled while no container was watched."""
        if self.events.cancelled():
            raise TaskCancelled(f"the task was cancelled before the {phase.value} phase")
        self.events.phase(phase)

    # -- setup -----------------------------------------------------------------------------

    def _check_image(self) -> str:
        """The id of the environment's image now: what the setup runs on and the cache keys."""
        try:
            return str(self.client.images.get(self.env.image).id)
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
            self.events.log(Phase.SETUP, f"using {engine_cpus:g} CPUs, all the engine has\n")
            cpus = engine_cpus
        return {
            "mem_limit": resources.memory,
            "memswap_limit": resources.memory,  # equal to the memory limit: no swap
            "nano_cpus": int(cpus * 1e9),
            "pids_limit": resources.pids,
            "security_opt": ["no-new-privileges"],
        }

    # -- agent -----------------------------------------------------------------------------

    def _volumes(self) -> dict[str, str]:
        labels = self.names.labels("agent")
        return {
            purpose: str(self.client.volumes.create(self.names.volume(purpose), labels=labels).name)
            for purpose in ("workspace", "chatops")
        }

    def _agent(
        self, ready: Provisioned, limits: dict[str, Any], volumes: dict[str, str]
    ) -> Container:
        # exec: the engine mounts tmpfs noexec by default, which breaks build tools that run
        # what they compile in /tmp or install into $HOME.
        tmpfs_size = min(self.tmpfs_bytes, self.env.resources.memory)
        tmpfs_options = f"rw,exec,nosuid,nodev,size={tmpfs_size}"
        container = self.client.containers.create(
            ready.image,
            entrypoint=[],
            command=["sh", "-c", self.env.agent.resolved_command],
            name=self.names.container("agent"),
            labels=self.names.labels("agent"),
            user=f"{AGENT_UID}:{AGENT_GID}",
            working_dir=WORKSPACE,
            environment={**agent_environment(self.job), **self._proxy_env()},
            **self._network(),
            cap_drop=["ALL"],
            read_only=self.env.read_only,
            tmpfs={
                "/tmp": f"{tmpfs_options},mode=1777",
                AGENT_HOME: f"{tmpfs_options},uid={AGENT_UID},gid={AGENT_GID},mode=0700",
            },
            # A fresh named volume takes a copy of the image's /workspace when the container
            # is created; one the setup phase filled already is left as it is.
            volumes={
                volumes["workspace"]: {"bind": WORKSPACE, "mode": "rw"},
                volumes["chatops"]: {"bind": CHATOPS_DIR, "mode": "rw"},
            },
            **limits,
        )
        if ready.needs_checkout:
            container.put_archive(WORKSPACE, self.checkout.open())
        extra = self.egress.agent_files() if self.egress is not None else {}
        container.put_archive(CHATOPS_DIR, input_archive(self.job, extra))
        egress = self.egress
        if egress is not None:
            egress.follow(self.watcher.pump)
        container.start()
        pump = self.watcher.pump(container.logs(stream=True, follow=True), "agent")

        def finished() -> bool:
            return not container_state(self.api, container)["Running"]

        def refusals() -> None:
            if egress is not None:
                self._report_refusals(egress.new_refusals)

        if not self.watcher.watch(Phase.AGENT, pump, finished, self.env.timeout, container,
                                  on_tick=refusals):
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
                Phase.AGENT, f"a process was killed for going over the {memory} memory limit\n"
            )
        return container

    def _report_refusals(
        self, source: Callable[[int, Callable[[str], str]], list[BlockedRequest]]
    ) -> None:
        found = source(self.job.attempt, self.redactor().redact_text)
        if found:
            self.events.blocked(found)

    def _network(self) -> dict[str, Any]:
        if self.egress is not None:
            return self.egress.agent_options()
        return {"network_mode": "bridge" if self.env.network.mode == "on" else "none"}

    def _proxy_env(self) -> dict[str, str]:
        return self.egress.agent_env() if self.egress is not None else {}

    # -- collect ---------------------------------------------------------------------------

    def _collect(self, container: Container) -> SandboxOutcome:
        with archive_stream(self.api, str(container.id), WORKSPACE) as chunks:
            unpack_workspace(
                chunks,
                self.job.workspace,
                limit=self.env.resources.workspace,
                root=WORKSPACE.lstrip("/"),
                on_skip=lambda text: self.events.log(Phase.COLLECT, text + "\n"),
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

    def close(self) -> None:
        """Stop log readers and remove every object of the task, keeping an interrupt for last.

        Runs in ``finally``: an exception here must not hide the one that ended the run, and a
        second Ctrl-C should not leave containers running if the removal can still finish.
        """
        self.watcher.close()
        self.checkout.close()
        if not self.engine_reached:
            return
        interrupted: BaseException | None = None
        for _attempt in range(2):
            try:
                if self.egress is not None:
                    self.egress.settle()  # what it is still making must exist to be removed
                remove_task(self.client, self.names.task_id, instance=self.names.instance)
                break
            except (KeyboardInterrupt, SystemExit) as exc:
                interrupted = exc
            except Exception:
                log.exception("could not remove the sandbox of task %s", self.names.task_id)
                break
        if interrupted is not None:
            raise interrupted
