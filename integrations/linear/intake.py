"""The webhook handler: verify, parse, call the TaskDesk; talk back to Linear after the 2xx.

Everything that decides whether a task exists (the dedupe lookup, the insert, the enqueue,
holding a request for an answer) happens before the answer, so an acknowledged event is
never lost; everything that calls Linear's API runs afterwards on the executor, so a slow
API never delays the acknowledgement Linear waits for.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from chatops.core import texts
from chatops.core.errors import AmbiguousEnvironment, ChatopsError
from chatops.core.ports import TaskDesk
from chatops.core.task import LinearIssue, Task
from integrations.linear.events import (
    TRIGGERS,
    Bot,
    Ignored,
    Malformed,
    Stop,
    Trigger,
    parse_event,
)
from integrations.linear.outbox import LinearOutbox
from integrations.linear.webhook import MAX_SKEW_MS, Unverified, check_fresh, verify_signature

log = logging.getLogger(__name__)

Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Waiting:
    """A held request (one whose environment was asked for), newest first from the ledger."""

    pending_id: str
    choices: tuple[str, ...]
    answered: bool


class Ledger(Protocol):
    """What the intake reads about earlier work; wired over the store by chatops.app."""

    def live(self, session_id: str) -> list[Task]:
        """The unfinished tasks started from agent session ``session_id``."""
        ...

    def waiting(self, issue_id: str, session_id: str | None) -> list[Waiting]:
        """Held requests of the session (or, with None, of the issue outside sessions)."""
        ...


@dataclass(frozen=True)
class IntakeConfig:
    secret: str
    bot_name: str = "chatops"
    triggers: frozenset[str] = frozenset(TRIGGERS)
    label: str = "codex-ready"
    max_skew_ms: int = MAX_SKEW_MS


class LinearIntake:
    def __init__(self, desk: TaskDesk, outbox: LinearOutbox, ledger: Ledger,
                 config: IntakeConfig, identity: Callable[[], str], executor: Executor,
                 clock: Callable[[], float] = time.time) -> None:
        self.desk = desk
        self.outbox = outbox
        self.ledger = ledger
        self.config = config
        self.identity = identity
        self.executor = executor
        self.clock = clock

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """One delivery: (HTTP status, JSON answer). Never raises for bad input."""
        try:
            verify_signature(body, headers, self.config.secret)  # before anything parses it
        except Unverified as exc:
            return 401, {"error": str(exc)}
        try:
            payload = json.loads(body)
        except ValueError as exc:  # undecodable bytes included
            return 400, {"error": f"malformed Linear payload: {exc}"}
        if not isinstance(payload, dict):
            return 400, {"error": "malformed Linear payload: not an object"}
        try:
            check_fresh(payload, self.clock() * 1000, self.config.max_skew_ms)
            event = parse_event(payload, self._bot(payload))
        except Unverified as exc:
            return 401, {"error": str(exc)}
        except (Malformed, ValueError) as exc:
            return 400, {"error": f"malformed Linear payload: {exc}"}
        if isinstance(event, Ignored):
            log.info("ignored a Linear %s %s: %s", payload.get("type"), payload.get("action"),
                     event.reason)
            return 200, {"ignored": event.reason}
        if isinstance(event, Stop):
            self._later(self._stop, event)
            return 200, {"stopping": event.session_id}
        return self._trigger(event)

    def _bot(self, payload: dict[str, Any]) -> Bot:
        # Agent session events name the bot themselves; only the others need the lookup.
        needs_id = payload.get("type") in {"Issue", "Comment"}
        return Bot(user_id=self.identity() if needs_id else "", name=self.config.bot_name,
                   triggers=self.config.triggers, label=self.config.label)

    # -- triggers ---------------------------------------------------------------------------

    def _trigger(self, trigger: Trigger) -> Answer:
        origin = trigger.origin
        if trigger.kind in {"prompt", "reply", "mention"}:
            held = self.ledger.waiting(origin.issue_id, origin.agent_session_id)
            if held:
                answered = self._answer(trigger, held[0])
                if answered is not None:
                    return answered
        if trigger.kind == "reply":
            return 200, {"ignored": "env:NAME with no question waiting for it"}
        return self._start(trigger)

    def _answer(self, trigger: Trigger, latest: Waiting) -> Answer | None:
        """Handle ``trigger`` as the answer to the latest question, or None if it is not."""
        named = trigger.reply_env or _bare_choice(trigger.text, latest.choices)
        if latest.answered:
            # A message naming only an environment, after the answer: the answer redelivered
            # (its task's dedupe key is the question's, not this event's).
            return (200, {"ignored": "that question was answered already"}) if named else None
        if named:
            return self._resolve(trigger, latest.pending_id, named)
        if trigger.kind != "prompt":
            return None  # a new mention while a question waits: a request of its own
        said = [c for c in latest.choices
                if re.search(rf"(?<![\w.-]){re.escape(c)}(?![\w.-])", trigger.text)]
        if len(said) == 1:
            return self._resolve(trigger, latest.pending_id, said[0])
        self._later(self._ask, trigger.origin, f"again:{trigger.dedupe_key}",
                    texts.linear_not_a_choice(trigger.text, list(latest.choices)),
                    list(latest.choices))
        return 200, {"held": latest.pending_id}

    def _start(self, trigger: Trigger) -> Answer:
        if not trigger.instruction:
            self._later(self._say, trigger.origin, texts.linear_usage(self.config.bot_name),
                        "error", f"usage:{trigger.dedupe_key}")
            return 200, {"ignored": "no instruction"}
        request = trigger.request()
        try:
            task = self.desk.submit(request, announce=False)
        except AmbiguousEnvironment as exc:
            pending_id, created = self.desk.hold(request, exc.choices)
            if created:
                self._later(self._ask, trigger.origin, f"ask:{pending_id}", exc.message,
                            exc.choices)
            return 200, {"held": pending_id}
        except ChatopsError as exc:
            self._later(self._say, trigger.origin, texts.chat_refusal(exc.message, exc.hint),
                        "error", f"refusal:{trigger.dedupe_key}")
            return 200, {"refused": exc.message}
        return self._started(trigger, task)

    def _resolve(self, trigger: Trigger, pending_id: str, environment: str) -> Answer:
        try:
            task = self.desk.resolve(pending_id, environment, announce=False)
        except ChatopsError as exc:
            self._later(self._say, trigger.origin, texts.chat_refusal(exc.message, exc.hint),
                        "error", f"refusal:{trigger.dedupe_key}")
            return 200, {"refused": exc.message}
        return self._started(trigger, task)

    def _started(self, trigger: Trigger, task: Task) -> Answer:
        session = trigger.origin.agent_session_id
        if session and getattr(task.request.origin, "agent_session_id", None) != session:
            # The same mention also arrived as a Comment webhook and started the task there.
            self._later(self._say, trigger.origin, texts.linear_tracked_elsewhere(task),
                        "response", f"elsewhere:{session}")
        elif not task.status_ref:
            self._later(self.desk.announce, task.id)
        return 200, {"task": task.id}

    # -- after the acknowledgement ----------------------------------------------------------

    def _stop(self, stop: Stop) -> None:
        live = self.ledger.live(stop.session_id)
        for task in live:
            self.desk.cancel(task.id)  # the notifier confirms with a response once stopped
        if not live:
            self.outbox.activity(stop.session_id, {"type": "response",
                                                   "body": texts.LINEAR_NOTHING_TO_STOP},
                                 seed=f"stop:{stop.activity_id}")

    def _ask(self, origin: LinearIssue, seed: str, why: str, choices: list[str]) -> None:
        session = origin.agent_session_id
        text = texts.linear_which_environment(why.rstrip("."), choices, self.config.bot_name,
                                              in_session=bool(session))
        if session:
            self.outbox.activity(session, {"type": "elicitation", "body": text}, seed=seed,
                                 signal="select",
                                 signal_metadata={"options": [{"value": c} for c in choices]})
        else:
            self.outbox.comment(origin.issue_id, text, seed)

    def _say(self, origin: LinearIssue, text: str, kind: str, seed: str) -> None:
        if origin.agent_session_id:
            self.outbox.activity(origin.agent_session_id, {"type": kind, "body": text},
                                 seed=seed)
        else:
            self.outbox.comment(origin.issue_id, text, seed)

    def _later(self, fn: Callable[..., Any], *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("a Linear call after the acknowledgement failed")

        self.executor.submit(run)


def _bare_choice(text: str, choices: tuple[str, ...]) -> str | None:
    """The choice a message consists of alone (a picked option comes back as its value)."""
    bare = text.strip().strip("`*_ ").strip()
    return bare if bare in choices else None
