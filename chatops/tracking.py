"""What the worker reports while it holds a task: heartbeats, phases, logs, the cancel flag."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from chatops.core.network import BLOCK_REASONS, BlockedRequest
from chatops.core.ports import Phase
from chatops.store.tasks import TaskStore

log = logging.getLogger(__name__)

# Seconds between checks of the cancel flag while a container runs: fast enough to feel instant.
CANCEL_POLL_S = 0.5
# Log lines are written in batches at most this far apart (seconds) or this large (bytes).
LOG_FLUSH_S = 0.5
LOG_FLUSH_BYTES = 64 * 1024
# Per task; an agent that prints more gets a note instead of filling the database.
LOG_CAP_BYTES = 8 * 1024 * 1024
# Refusals recorded per run; an agent retrying in a loop should not fill the database.
BLOCKED_CAP = 500
# Seconds between heartbeats of a running task; a long silence means its worker died.
HEARTBEAT_S = 5.0


class Heartbeat:
    """Touches the task every HEARTBEAT_S while the worker holds it."""

    def __init__(self, store: TaskStore, task_id: str) -> None:
        self.store = store
        self.task_id = task_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"beat-{task_id}")

    def __enter__(self) -> Heartbeat:
        self.store.touch(self.task_id)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.store.touch(self.task_id)
            except Exception:
                log.exception("heartbeat of task %s failed", self.task_id)


class TaskEvents:
    """The sandbox's view of the task: phase changes, buffered logs, the cancel flag."""

    def __init__(self, store: TaskStore, task_id: str, on_agent: Callable[[], object],
                 clock: Callable[[], float] = time.monotonic, prefix: str = "") -> None:
        self.store = store
        self.task_id = task_id
        self.on_agent = on_agent
        # Marks every line of one candidate's logs when several run side by side.
        self.prefix = prefix
        self.clock = clock
        self._lock = threading.Lock()
        self._buffer: list[tuple[str, str]] = []
        self._buffered = 0
        self._written = 0
        self._last_flush = clock()
        self._last_poll = 0.0
        self._cancelled = False
        self._blocked = 0  # refusals reported, recorded or not

    def __enter__(self) -> TaskEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def phase(self, phase: Phase) -> None:
        self.flush()
        if phase is Phase.AGENT:
            self.on_agent()

    def log(self, phase: Phase, text: str) -> None:
        if self.prefix:
            text = "".join(self.prefix + line for line in text.splitlines(keepends=True))
        with self._lock:
            if self._written + self._buffered > LOG_CAP_BYTES:
                return
            self._buffer.append((phase.value, text))
            self._buffered += len(text)
            if self._written + self._buffered > LOG_CAP_BYTES:
                self._buffer.append((phase.value, "\n[log truncated: over the per-task cap]\n"))
            due = (self._buffered >= LOG_FLUSH_BYTES
                   or self.clock() - self._last_flush >= LOG_FLUSH_S)
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._buffer = self._buffer, []
            self._written += self._buffered
            self._buffered = 0
            self._last_flush = self.clock()
        merged: list[tuple[str, str]] = []
        for phase, text in pending:
            if merged and merged[-1][0] == phase:
                merged[-1] = (phase, merged[-1][1] + text)
            else:
                merged.append((phase, text))
        for phase, text in merged:
            self.store.append_log(self.task_id, phase, text)

    def blocked(self, requests: Sequence[BlockedRequest]) -> None:
        room = BLOCKED_CAP - self._blocked
        kept = list(requests[:max(room, 0)])
        self._blocked += len(requests)
        if kept:
            self.store.add_blocked(self.task_id, kept)
            self.log(Phase.AGENT, "".join(
                f"network: blocked {r.method} {r.url or r.host} at {r.at:%H:%M:%S} "
                f"({BLOCK_REASONS[r.reason]})\n" for r in kept))
        if room >= 0 and len(requests) > room:
            self.log(Phase.AGENT, f"network: over {BLOCKED_CAP} requests blocked; "
                                  "later ones are not recorded\n")

    def cancelled(self) -> bool:
        now = self.clock()
        if not self._cancelled and now - self._last_poll >= CANCEL_POLL_S:
            self._last_poll = now
            self._cancelled = self.store.cancel_requested(self.task_id)
        if self.clock() - self._last_flush >= LOG_FLUSH_S:
            self.flush()
        return self._cancelled



class Once:
    """Calls ``action`` the first time it is called, from whichever thread, and never again."""

    def __init__(self, action: Callable[[], object]) -> None:
        self.action = action
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self.action()
