"""An in-memory Slack workspace: what the Web API methods chatops calls do to it.

It emulates the documented answers of ``auth.test``, ``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, ``chat.getPermalink``, ``reactions.add``, ``conversations.replies``
and ``users.info`` (the ``ok: true`` fields, and the ``error`` codes they refuse with):

- messages get increasing ``ts`` strings (``"1700000000.000100"``, +100 µs each); replies
  carry ``thread_ts`` and ``parent_user_id``; parents carry ``thread_ts``, ``reply_count``,
  ``reply_users`` and ``latest_reply``;
- ``conversations.replies`` lists the parent first, then the replies in ``ts`` order, in pages
  of ``limit`` with an opaque ``response_metadata.next_cursor`` (empty on the last page);
- a channel exists once something was posted or seeded in it; updates, reactions, permalinks
  and replies need the message to exist, and the bot may only edit its own messages.

Arguments arrive as sent: strings from a form, JSON values from a JSON body. The HTTP side
(tokens, recording, faults) lives in ``slack_api``.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# The first ts handed out, in microseconds: 1700000000.000100, then +100 µs per message.
FIRST_TS_US = 1_700_000_000_000_100
TS_STEP_US = 100
# conversations.replies: Slack's default and maximum page size.
REPLIES_MAX_LIMIT = 1000
# Who seeded messages are from unless a test says otherwise.
DEFAULT_HUMAN = "U0HUMAN0001"

Args = dict[str, Any]
Message = dict[str, Any]


class SlackError(Exception):
    """A method's refusal: answered as ``{"ok": false, "error": code}``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def ts_key(ts: str) -> int:
    """A Slack ts ("1700000000.000100", "1700000000") as integer microseconds, for ordering."""
    seconds, _, fraction = str(ts).partition(".")
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


def ts_from_key(us: int) -> str:
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _copy(value: Any) -> Any:
    """A deep copy of JSON data, so answers and assertions never share state with the store."""
    return json.loads(json.dumps(value))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def _structured(value: Any, error: str) -> Any:
    """Blocks/attachments/metadata: JSON text in form bodies, JSON values in JSON bodies."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise SlackError(error) from None


def _encode_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        prefix, _, ts = base64.b64decode(cursor.encode(), validate=True).decode().partition(":")
        if prefix != "next_ts":
            raise ValueError(prefix)
        return ts_key(ts)
    except (ValueError, binascii.Error):
        raise SlackError("invalid_cursor") from None


class SlackWorkspace:
    """One team with one installed bot; ``call`` runs a Web API method against it."""

    def __init__(
        self,
        *,
        bot_user_id: str = "U0BOT000001",
        bot_id: str = "B0BOT000001",
        bot_name: str = "chatops",
        team_id: str = "T0TEAM00001",
        team: str = "Chatops Test",
        app_id: str = "A0APP000001",
        url: str = "https://example.slack.test/",
    ) -> None:
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.team_id = team_id
        self.team = team
        self.app_id = app_id
        self.url = url if url.endswith("/") else url + "/"
        self._lock = threading.RLock()
        self._methods: dict[str, Callable[[Args], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
        }
        self._clear_state()

    def _clear_state(self) -> None:
        self._channels: dict[str, dict[str, Message]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self.ephemerals: list[Message] = []
        self._next_ts = FIRST_TS_US

    def reset(self) -> None:
        """Forget messages, users and ephemeral messages."""
        with self._lock:
            self._clear_state()

    def knows(self, method: str) -> bool:
        return method in self._methods

    def call(self, method: str, args: Args) -> dict[str, Any]:
        """The ``ok: true`` answer's other fields; raises SlackError for a refusal."""
        with self._lock:
            return self._methods[method](args)

    # -- seeding and inspection --------------------------------------------------------------

    def add_user(self, id: str, name: str, real_name: str = "", display_name: str = "",
                 **extra: Any) -> dict[str, Any]:
        """A workspace member for ``users.info``; ``extra`` overrides top-level fields."""
        real_name = real_name or name
        user: dict[str, Any] = {
            "id": id, "team_id": self.team_id, "name": name, "deleted": False,
            "color": "9f69e7", "real_name": real_name, "tz": "Europe/Amsterdam",
            "tz_label": "Central European Time", "tz_offset": 3600,
            "profile": {
                "real_name": real_name, "real_name_normalized": real_name,
                "display_name": display_name, "display_name_normalized": display_name,
                "avatar_hash": "g0000000000", "team": self.team_id,
                "image_48": "https://example.slack.test/avatars/48.png",
            },
            "is_admin": False, "is_owner": False, "is_primary_owner": False,
            "is_restricted": False, "is_ultra_restricted": False, "is_bot": False,
            "is_app_user": False, "updated": 1700000000,
        }
        user.update(extra)
        with self._lock:
            self._users[id] = user
        return dict(_copy(user))

    def add_message(self, channel: str, text: str = "", *, user: str = DEFAULT_HUMAN,
                    ts: str | None = None, thread_ts: str | None = None, **extra: Any) -> str:
        """Seed a message (a reply when ``thread_ts`` is given); returns its ts."""
        message: Message = {"type": "message", "user": user, "text": text, **extra}
        with self._lock:
            return self._store(channel, message, ts=ts, thread_ts=thread_ts)

    def add_thread(self, channel: str, messages: Sequence[Mapping[str, Any] | str]) -> str:
        """Seed a parent and its replies (dicts with ``text``/``user``/..., or plain texts).

        Returns the parent's ts, which is the thread's ``thread_ts``.
        """
        if not messages:
            raise ValueError("a thread needs at least its parent message")
        parent_ts = ""
        with self._lock:
            for item in messages:
                fields = {"text": item} if isinstance(item, str) else dict(item)
                fields.pop("thread_ts", None)
                stored = self.add_message(channel, fields.pop("text", ""),
                                          user=fields.pop("user", DEFAULT_HUMAN),
                                          ts=fields.pop("ts", None),
                                          thread_ts=parent_ts or None, **fields)
                parent_ts = parent_ts or stored
        return parent_ts

    def message(self, channel: str, ts: str) -> Message | None:
        """A copy of a stored message, for assertions."""
        with self._lock:
            found = self._channels.get(channel, {}).get(ts)
            return dict(_copy(found)) if found is not None else None

    def messages(self, channel: str) -> list[Message]:
        """Copies of every stored message of a channel, in ts order (replies included)."""
        with self._lock:
            stored = self._channels.get(channel, {})
            return [dict(_copy(stored[ts])) for ts in sorted(stored, key=ts_key)]

    def _new_ts(self) -> str:
        ts = ts_from_key(self._next_ts)
        self._next_ts += TS_STEP_US
        return ts

    def _store(self, channel: str, message: Message, *, ts: str | None,
               thread_ts: str | None) -> str:
        if ts is None:
            ts = self._new_ts()
        else:  # a seeded ts: later messages must still come after it
            self._next_ts = max(self._next_ts, ts_key(ts) + TS_STEP_US)
        message["ts"] = ts
        history = self._channels.setdefault(channel, {})
        if thread_ts and thread_ts != ts:
            message["thread_ts"] = thread_ts
            parent = history.get(thread_ts)
            if parent is not None:
                message["parent_user_id"] = parent.get("user", "")
                repliers = parent.setdefault("reply_users", [])
                if message.get("user") and message["user"] not in repliers:
                    repliers.append(message["user"])
                parent.update(thread_ts=thread_ts, reply_count=parent.get("reply_count", 0) + 1,
                              reply_users_count=len(repliers), latest_reply=ts)
        history[ts] = message
        return ts

    def _history(self, args: Args) -> tuple[str, dict[str, Message]]:
        channel = args.get("channel")
        if not isinstance(channel, str) or channel not in self._channels:
            raise SlackError("channel_not_found")
        return channel, self._channels[channel]

    @staticmethod
    def _apply_content(message: Message, args: Args) -> None:
        if not any(args.get(key) for key in ("text", "blocks", "attachments")):
            raise SlackError("no_text")
        if "text" in args:
            message["text"] = str(args["text"] or "")
        for key, error in (("blocks", "invalid_blocks"), ("attachments", "invalid_attachments"),
                           ("metadata", "invalid_metadata_format")):
            if args.get(key):
                message[key] = _structured(args[key], error)

    # -- methods -----------------------------------------------------------------------------

    def _auth_test(self, args: Args) -> dict[str, Any]:
        return {"url": self.url, "team": self.team, "user": self.bot_name,
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def _chat_post_message(self, args: Args) -> dict[str, Any]:
        channel = args.get("channel")
        if not isinstance(channel, str) or not channel:
            raise SlackError("channel_not_found")
        message: Message = {"bot_id": self.bot_id, "type": "message", "text": "",
                            "user": self.bot_user_id, "app_id": self.app_id,
                            "team": self.team_id}
        self._apply_content(message, args)
        message["bot_profile"] = {"id": self.bot_id, "app_id": self.app_id,
                                  "name": self.bot_name, "deleted": False, "updated": 1700000000,
                                  "team_id": self.team_id, "icons": {}}
        thread_ts = str(args["thread_ts"]) if args.get("thread_ts") else None
        ts = self._store(channel, message, ts=None, thread_ts=thread_ts)
        return {"channel": channel, "ts": ts, "message": _copy(message)}

    def _chat_update(self, args: Args) -> dict[str, Any]:
        channel, history = self._history(args)
        message = history.get(str(args.get("ts", "")))
        if message is None:
            raise SlackError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise SlackError("cant_update_message")
        self._apply_content(message, args)
        message["edited"] = {"user": self.bot_id, "ts": f"{int(time.time())}.000000"}
        # Slack's answer shows the edited message without its ts/thread_ts.
        shown = {key: value for key, value in _copy(message).items()
                 if key not in {"ts", "thread_ts"}}
        return {"channel": channel, "ts": message["ts"], "text": message["text"],
                "message": shown}

    def _chat_post_ephemeral(self, args: Args) -> dict[str, Any]:
        channel = args.get("channel")
        if not isinstance(channel, str) or not channel:
            raise SlackError("channel_not_found")
        if not args.get("user"):
            raise SlackError("user_not_in_channel")
        message: Message = {"type": "message", "channel": channel, "user": str(args["user"])}
        self._apply_content(message, args)
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        message["message_ts"] = self._new_ts()
        self.ephemerals.append(message)
        return {"message_ts": message["message_ts"]}

    def _chat_get_permalink(self, args: Args) -> dict[str, Any]:
        channel, history = self._history(args)
        message = history.get(str(args.get("message_ts", "")))
        if message is None:
            raise SlackError("message_not_found")
        permalink = f"{self.url}archives/{channel}/p{message['ts'].replace('.', '')}"
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            permalink += f"?thread_ts={thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": permalink}

    def _reactions_add(self, args: Args) -> dict[str, Any]:
        name = str(args.get("name") or "").strip(":")
        if not name:
            raise SlackError("invalid_name")
        if not args.get("timestamp"):
            raise SlackError("no_item_specified")
        _, history = self._history(args)
        message = history.get(str(args["timestamp"]))
        if message is None:
            raise SlackError("message_not_found")
        reactions = message.setdefault("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is None:
            reaction = {"name": name, "users": [], "count": 0}
            reactions.append(reaction)
        if self.bot_user_id in reaction["users"]:
            raise SlackError("already_reacted")
        reaction["users"].append(self.bot_user_id)
        reaction["count"] += 1
        return {}

    def _conversations_replies(self, args: Args) -> dict[str, Any]:
        _, history = self._history(args)
        anchor = history.get(str(args.get("ts", "")))
        if anchor is None:
            raise SlackError("thread_not_found")
        root_ts = str(anchor.get("thread_ts", anchor["ts"]))
        root = history.get(root_ts)
        if root is None:
            raise SlackError("thread_not_found")
        replies = [m for m in history.values() if m.get("thread_ts") == root_ts
                   and m["ts"] != root_ts and _in_window(m["ts"], args)]
        thread = [root, *sorted(replies, key=lambda m: ts_key(m["ts"]))]
        try:
            limit = int(args.get("limit") or REPLIES_MAX_LIMIT)
        except (TypeError, ValueError):
            raise SlackError("invalid_limit") from None
        limit = min(max(limit, 1), REPLIES_MAX_LIMIT)
        if args.get("cursor"):
            start = _decode_cursor(str(args["cursor"]))
            thread = [m for m in thread if ts_key(m["ts"]) >= start]
        page, rest = thread[:limit], thread[limit:]
        next_cursor = _encode_cursor(rest[0]["ts"]) if rest else ""
        return {"messages": _copy(page), "has_more": bool(rest),
                "response_metadata": {"next_cursor": next_cursor}}

    def _users_info(self, args: Args) -> dict[str, Any]:
        user = self._users.get(str(args.get("user", "")))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": _copy(user)}


def _in_window(ts: str, args: Args) -> bool:
    """conversations.replies' ``oldest`` / ``latest`` / ``inclusive`` filter on replies."""
    key, inclusive = ts_key(ts), _truthy(args.get("inclusive", False))
    if args.get("oldest"):
        oldest = ts_key(str(args["oldest"]))
        if key < oldest or (key == oldest and not inclusive):
            return False
    if args.get("latest"):
        latest = ts_key(str(args["latest"]))
        if key > latest or (key == latest and not inclusive):
            return False
    return True
