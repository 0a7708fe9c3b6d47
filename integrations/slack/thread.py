"""The thread a mention came from, read as the task's context (a ContextSource)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from chatops.core.errors import ChatopsError
from chatops.core.task import ContextMessage, SlackThread, TaskRequest
from integrations.slack.mention import readable, user_ids

log = logging.getLogger(__name__)

# Messages per conversations.replies page: Slack's documented maximum is 1000, 200 recommended.
PAGE_SIZE = 200
# Beyond these the thread is trimmed from the middle (the start states the problem, the end
# is the latest word); the agent is told how much was left out.
MAX_MESSAGES = 120
MAX_CHARS = 60_000


class SlackThreadReader:
    def __init__(self, client: WebClient, bot_user_id: str = "",
                 max_messages: int = MAX_MESSAGES, max_chars: int = MAX_CHARS) -> None:
        self.client = client
        self.bot_user_id = bot_user_id
        self.max_messages = max_messages
        self.max_chars = max_chars
        self._names: dict[str, str] = {}

    def read(self, request: TaskRequest) -> TaskRequest:
        origin = request.origin
        if not isinstance(origin, SlackThread):
            return request
        try:
            raw = self._replies(origin.channel_id, origin.thread_ts)
            link = origin.url or self._permalink(origin)
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown_error")
            raise ChatopsError(
                f"could not read the Slack thread: {error}",
                "invite the bot to the channel and grant it channels:history / groups:history",
            ) from None
        messages = [m for m in raw if not self._is_ours(m)]
        names = self._resolve({uid for m in messages for uid in _people(m)})
        context = trim([_to_context(m, names) for m in messages], self.max_messages,
                       self.max_chars)
        return request.model_copy(update={
            "context": context, "origin": origin.model_copy(update={"url": link})})

    def _permalink(self, origin: SlackThread) -> str:
        answer = self.client.chat_getPermalink(channel=origin.channel_id,
                                               message_ts=origin.thread_ts)
        return str(answer.get("permalink") or "")

    def _replies(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.client.conversations_replies(channel=channel, ts=thread_ts,
                                                     limit=PAGE_SIZE, cursor=cursor)
            messages.extend(page.get("messages", []))
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return messages

    def _is_ours(self, message: dict[str, Any]) -> bool:
        # Our own status messages are progress, not conversation.
        if not self.bot_user_id:
            self.bot_user_id = str(self.client.auth_test().get("user_id") or "")
        return message.get("user") == self.bot_user_id

    def _resolve(self, ids: set[str]) -> dict[str, str]:
        for user_id in sorted(ids - set(self._names)):
            try:
                user = self.client.users_info(user=user_id).get("user") or {}
            except SlackApiError as exc:
                # A name is a nicety: keep the id, say why once.
                log.info("could not resolve Slack user %s: %s", user_id,
                         exc.response.get("error"))
                self._names[user_id] = user_id
                continue
            profile = user.get("profile") or {}
            self._names[user_id] = (profile.get("display_name") or user.get("real_name")
                                    or user.get("name") or user_id)
        return self._names


def _people(message: dict[str, Any]) -> list[str]:
    author = [message["user"]] if isinstance(message.get("user"), str) else []
    return author + user_ids(str(message.get("text", "")))


def _to_context(message: dict[str, Any], names: dict[str, str]) -> ContextMessage:
    author = message.get("user")
    if isinstance(author, str):
        who = names.get(author, author)
    else:
        who = str((message.get("bot_profile") or {}).get("name") or message.get("username")
                  or "a bot")
    links = tuple(str(f.get("permalink") or f.get("url_private") or f.get("name"))
                  for f in message.get("files") or [] if isinstance(f, dict))
    return ContextMessage(author=who, text=readable(str(message.get("text", "")), names),
                          at=_time(message.get("ts")), links=links)


def _time(ts: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(str(ts)), UTC)
    except ValueError:
        return None


def trim(messages: list[ContextMessage], max_messages: int, max_chars: int,
         ) -> tuple[ContextMessage, ...]:
    """Keep the start and the end of a long thread, with a note saying what was cut.

    The first third of the budget goes to the start (where the problem is stated), the rest to
    the latest messages; characters are then taken back from the middle outwards.
    """
    def size(kept: list[ContextMessage]) -> int:
        return sum(len(m.text) for m in kept)

    if len(messages) <= max_messages and size(messages) <= max_chars:
        return tuple(messages)
    head_count = max(1, max_messages // 3)
    head, rest = messages[:head_count], messages[head_count:]
    tail_count = max(0, max_messages - head_count - 1)
    tail = rest[len(rest) - tail_count:] if tail_count else []
    while tail and size(head + tail) > max_chars:
        tail = tail[1:]
    while len(head) > 1 and size(head + tail) > max_chars:
        head = head[:-1]
    if size(head + tail) > max_chars:  # one message alone is over the budget
        first = head[0]
        head = [first.model_copy(update={"text": first.text[:max_chars] + " … [cut to fit]"})]
    omitted = len(messages) - len(head) - len(tail)
    if not omitted:
        return (*head, *tail)
    note = ContextMessage(author="chatops", text=(
        f"[{omitted} message(s) from the middle of this thread were left out to fit; "
        "the first and the latest are kept]"))
    return (*head, note, *tail)
