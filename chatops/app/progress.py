"""Following a task from the terminal: state changes and log lines as they are stored."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from chatops.core import texts
from chatops.core.task import Task
from chatops.store.tasks import TaskStore, Transition

# Seconds between reads of the store while following; short enough to feel live.
FOLLOW_POLL_S = 0.3


def follow(store: TaskStore, task_id: str, out: TextIO = sys.stdout, show_logs: bool = True,
           poll_s: float = FOLLOW_POLL_S) -> Task:
    """Print the task's transitions (and logs, indented) in order until it ends."""
    seen_transitions = 0
    last_log = 0
    while True:
        task = store.get(task_id)
        transitions = store.transitions(task_id)
        lines = [(step.at, 0, _transition_line(step)) for step in transitions[seen_transitions:]]
        seen_transitions = len(transitions)
        if show_logs:
            entries = store.logs(task_id, after=last_log)
            last_log = entries[-1].id if entries else last_log
            lines += [(entry.at, 1, _indented(entry.text)) for entry in entries]
        out.write("".join(text for _, _, text in sorted(lines, key=lambda item: item[:2])))
        out.flush()
        if task.state.terminal:
            return task
        time.sleep(poll_s)


def _transition_line(step: Transition) -> str:
    label = texts.STATE_LINES[step.to_state]
    reason = f": {step.reason}" if step.reason and not step.to_state.terminal else ""
    return f"[{step.at:%H:%M:%S}] {label}{reason}\n"


def _indented(text: str) -> str:
    body = "".join("    " + line for line in text.splitlines(keepends=True))
    return body if body.endswith("\n") else body + "\n"


def print_logs(store: TaskStore, task_id: str, out: TextIO, after: int = 0,
               prefix: str | None = None) -> int:
    """Write the log lines stored after id ``after``; returns the last id written.

    Each line is prefixed with ``prefix``, or with its phase when ``prefix`` is None.
    """
    for entry in store.logs(task_id, after=after):
        lead = f"{entry.phase:>7} | " if prefix is None else prefix
        out.write("".join(lead + line for line in entry.text.splitlines(keepends=True)))
        if not entry.text.endswith("\n"):
            out.write("\n")
        after = entry.id
    return after


def follow_logs(store: TaskStore, task_id: str, out: TextIO, keep_following: bool,
                poll_s: float = FOLLOW_POLL_S) -> None:
    last = 0
    while True:
        ended = store.get(task_id).state.terminal
        last = print_logs(store, task_id, out, after=last)
        out.flush()
        if ended or not keep_following:
            return
        time.sleep(poll_s)
