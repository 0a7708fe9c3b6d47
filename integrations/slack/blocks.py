"""Block Kit for the status message and the environment question. Pure functions."""

from __future__ import annotations

from typing import Any

from chatops.core import texts
from chatops.core.lifecycle import TaskState
from chatops.core.task import Task

CANCEL = "chatops_cancel"
RETRY = "chatops_retry"
CHOOSE = "chatops_choose"  # value: "<pending id> <environment>"
OPEN_PR = "chatops_open_pr"
PICK = "chatops_pick"  # value: "<task id> <attempt number>"

EMOJI = {
    TaskState.QUEUED: ":hourglass_flowing_sand:",
    TaskState.PROVISIONING: ":hammer_and_wrench:",
    TaskState.RUNNING: ":robot_face:",
    TaskState.DELIVERING: ":package:",
    TaskState.SUCCEEDED: ":white_check_mark:",
    TaskState.FAILED: ":x:",
    TaskState.CANCELLED: ":no_entry_sign:",
}

Blocks = list[dict[str, Any]]


def status_message(task: Task) -> tuple[str, Blocks]:
    """The one status message of a task: (fallback text, blocks)."""
    line = f"{EMOJI[task.state]} {_headline(task)}"
    blocks: Blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{line}*"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _receipt(task)}]},
    ]
    if task.candidates:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": escape(
            texts.attempts_summary(list(task.candidates)))}})
    if task.blocked:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": ":shield: " + escape(
            texts.blocked_summary(task))}})
    buttons = _buttons(task)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"task:{task.id}", "elements": buttons})
    return line, blocks


def _headline(task: Task) -> str:
    if task.state is TaskState.SUCCEEDED and task.pull_request:
        pr = task.pull_request
        return f"Pull request <{pr.url}|#{pr.number} {escape(pr.title)}> ({task.diffstat})"
    if task.state is TaskState.FAILED:
        return f"Failed: {escape(task.reason)}"
    if task.state is TaskState.CANCELLED:
        return f"Cancelled: {escape(task.reason)}" if task.reason else "Cancelled"
    return texts.STATE_LINES[task.state].capitalize() + (
        f" — {escape(task.reason)}" if task.state is not TaskState.QUEUED and task.reason else "")


def _receipt(task: Task) -> str:
    parts = [f"Environment *{task.environment}*: {escape(task.environment_reason)}",
             f"task `{task.id}`"]
    if task.request.parent_task_id:
        parts.append(f"follows up `{task.request.parent_task_id}`")
    if task.state in {TaskState.FAILED, TaskState.CANCELLED}:
        parts.append(f"logs: `chatops logs {task.id}`")
    return " · ".join(parts)


def _buttons(task: Task) -> Blocks:
    if not task.state.terminal:
        return [_button("Cancel", CANCEL, task.id, style="danger")]
    buttons = [_button(f"Open PR from attempt {a.number}", f"{PICK}:{a.number}",
                       f"{task.id} {a.number}", style="primary")
               for a in task.candidates if a.ok]
    if task.state is TaskState.SUCCEEDED and task.pull_request:
        buttons.append({**_button("Open pull request", OPEN_PR, task.id),
                        "url": task.pull_request.url})
    if task.state in {TaskState.FAILED, TaskState.CANCELLED}:
        buttons.append(_button("Retry", RETRY, task.id, style="primary"))
    return buttons


def choice_message(pending_id: str, choices: list[str], why: str) -> tuple[str, Blocks]:
    text = f"Which environment should I use? {why}"
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Which environment should I "
                                                               f"use?* {escape(why)}"}},
        {"type": "actions", "block_id": f"choose:{pending_id}", "elements": [
            _button(name, f"{CHOOSE}:{name}", f"{pending_id} {name}") for name in choices[:25]
        ]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            "Next time, say `env:NAME` in the message to skip this question."}]},
    ]


def plain(text: str) -> Blocks:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def _button(label: str, action_id: str, value: str, style: str | None = None,
            ) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action_id, "value": value,
                              "text": {"type": "plain_text", "text": label[:75]}}
    if style:
        button["style"] = style
    return button


def escape(text: str) -> str:
    """Text made literal in mrkdwn."""
    # Slack's three control characters in mrkdwn.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
