"""The Notifier for Slack threads: 👀 on the mention, one status message kept up to date, and a
reply that mentions the requester when the task ends (an edit alone notifies nobody)."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from chatops.core import texts
from chatops.core.task import SlackThread, Task
from integrations.slack.blocks import escape, status_message

log = logging.getLogger(__name__)

ACK_REACTION = "eyes"


class SlackNotifier:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def task_changed(self, task: Task) -> str | None:
        origin = task.request.origin
        if not isinstance(origin, SlackThread):
            return None
        text, blocks = status_message(task)
        ref = task.status_ref
        if ref:
            try:
                self.client.chat_update(channel=origin.channel_id, ts=ref, text=text,
                                        blocks=blocks)
            except SlackApiError as exc:
                if exc.response.get("error") != "message_not_found":
                    raise
                ref = ""  # somebody deleted it: post a fresh one below
        fresh = not ref
        if fresh:
            self._react(origin)
            posted = self.client.chat_postMessage(channel=origin.channel_id,
                                                  thread_ts=origin.thread_ts, text=text,
                                                  blocks=blocks)
            ref = str(posted["ts"])
        if task.state.terminal and not fresh:
            self.client.chat_postMessage(
                channel=origin.channel_id, thread_ts=origin.thread_ts,
                text=f"<@{task.request.requester}> {_final(task)}")
        return ref

    def _react(self, origin: SlackThread) -> None:
        try:
            self.client.reactions_add(channel=origin.channel_id, timestamp=origin.message_ts,
                                      name=ACK_REACTION)
        except SlackApiError as exc:
            if exc.response.get("error") != "already_reacted":
                log.info("could not react to %s: %s", origin.message_ts,
                         exc.response.get("error"))


def _final(task: Task) -> str:
    if task.pull_request:
        pr = task.pull_request
        line = f"pull request ready: <{pr.url}|#{pr.number} {pr.title}> ({task.diffstat})"
        blocked = texts.blocked_summary(task)
        return f"{line}\n{escape(blocked)}" if blocked else line
    return escape(texts.final_line(task))
