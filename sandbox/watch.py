"""Watching a process in a container: its redacted output, the cancel flag and the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from docker.models.containers import Container

from chatops.core.errors import TaskCancelled
from chatops.core.ports import Phase, SandboxEvents
from sandbox.engine import close_stream, kill
from sandbox.logstream import LogPump, Redactor

# 0.25 s: how often the cancel flag and the clock are checked while a container runs; a cancel
# is acted on within this, and polling the engine more often buys nothing.
POLL_INTERVAL_S = 0.25
# 5 s: how long to let a log stream deliver its last lines after the process ended.
LOG_DRAIN_S = 5.0


class Watcher:
    """Forwards a run's container output to its events; ``close`` releases every stream."""

    def __init__(
        self,
        events: SandboxEvents,
        redactor: Callable[[], Redactor],
        task_id: str,
        poll_interval: float = POLL_INTERVAL_S,
    ) -> None:
        self.events = events
        self.redactor = redactor
        self.task_id = task_id
        self.poll = poll_interval
        self.pumps: list[LogPump] = []

    def pump(self, stream: Any, name: str, redact: bool = True) -> LogPump:
        """Lines of ``stream`` read in the background, redacted unless the reader redacts
        what it keeps itself; released by ``close``."""
        pump = LogPump(
            stream,
            self.redactor() if redact else Redactor(()),
            name=f"chatops-{self.task_id}-{name}-log",
            on_close=lambda: close_stream(stream),
        )
        self.pumps.append(pump)
        return pump

    def watch(
        self,
        phase: Phase,
        pump: LogPump,
        finished: Callable[[], bool],
        timeout_s: int,
        container: Container,
        on_tick: Callable[[], None] | None = None,
    ) -> bool:
        """Forward ``pump``'s lines until ``finished()``; False if ``timeout_s`` ran out first.
        ``on_tick`` is called at every poll, for other news of the run.

        On a timeout or a cancel the container is killed before returning or raising.
        """
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                for line in pump.take(timeout=self.poll):
                    self.events.log(phase, line + "\n")
                if on_tick is not None:
                    on_tick()
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
            self.events.log(phase, line + "\n")

    def close(self) -> None:
        for pump in self.pumps:
            pump.close()
