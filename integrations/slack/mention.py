"""Turning an ``app_mention`` event into what a task needs. Pure functions over dicts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# `env:NAME` or `repo:NAME` anywhere in the message picks the environment (by its name, or its
# repository's); `attempts:N` asks for several candidates.
_ENV_HINT = re.compile(r"(?<!\S)(?:env|repo):(?P<name>[A-Za-z0-9._-]+)(?!\S)")
_ATTEMPTS = re.compile(r"(?<!\S)attempts:(?P<n>\d+)(?!\S)")
_USER = re.compile(r"<@(?P<id>[UW][A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass(frozen=True)
class Mention:
    team_id: str
    channel: str
    user: str
    ts: str
    thread_ts: str  # the thread to answer in: the mention's own ts when it starts one
    event_id: str
    instruction: str  # the text without the bot's mention and without the hints
    environment: str | None
    attempts: int


class NotAMention(ValueError):
    """The payload is not an app_mention we act on (say why, for the log line)."""


def parse_mention(body: dict[str, Any], bot_user_id: str) -> Mention:
    """Normalize an ``event_callback`` envelope holding an ``app_mention``.

    Raises NotAMention for bot messages (ours included), edits and payloads missing fields.
    """
    event = body.get("event")
    if not isinstance(event, dict) or event.get("type") != "app_mention":
        raise NotAMention("not an app_mention event")
    if event.get("bot_id") or event.get("subtype") or event.get("user") == bot_user_id:
        raise NotAMention("a bot's or an edited message")
    missing = [k for k in ("user", "channel", "ts", "text") if not isinstance(event.get(k), str)]
    if missing:
        raise NotAMention(f"app_mention without {', '.join(missing)}")
    text = readable(strip_bot_mention(event["text"], bot_user_id), {})
    text, environment, attempts = split_hints(text)
    return Mention(
        team_id=str(body.get("team_id") or event.get("team") or ""),
        channel=event["channel"],
        user=event["user"],
        ts=event["ts"],
        thread_ts=str(event.get("thread_ts") or event["ts"]),
        event_id=str(body.get("event_id") or f"{event['channel']}:{event['ts']}"),
        instruction=text,
        environment=environment,
        attempts=attempts,
    )


def strip_bot_mention(text: str, bot_user_id: str) -> str:
    mention = re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>") if bot_user_id else None
    if mention is not None:
        text = mention.sub("", text)
    return text.strip()


def split_hints(text: str) -> tuple[str, str | None, int]:
    """(text without hints, environment hint, attempts) from a message's text."""
    env = _ENV_HINT.search(text)
    attempts = _ATTEMPTS.search(text)
    cleaned = _ATTEMPTS.sub("", _ENV_HINT.sub("", text))
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned, env.group("name") if env else None, int(attempts.group("n")) if attempts else 1


def user_ids(text: str) -> list[str]:
    return [m.group("id") for m in _USER.finditer(text)]


def readable(text: str, names: dict[str, str]) -> str:
    """Slack's markup made readable: user ids to @names, links to ``label (url)``."""
    text = _USER.sub(lambda m: "@" + names.get(m.group("id"), m.group("id")), text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    text = re.sub(r"<#C[A-Z0-9]+\|([^>]+)>", r"#\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
