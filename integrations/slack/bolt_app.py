"""The Bolt app: listeners translate Slack payloads and call the TaskDesk.

Each listener does the database work before Bolt answers Slack (``process_before_response``),
so the task is committed before the 2xx; anything that talks back to Slack runs afterwards on
the executor, so a slow Web API never delays the acknowledgement.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from chatops.core import texts
from chatops.core.errors import AmbiguousEnvironment, ChatopsError
from chatops.core.ports import TaskDesk
from chatops.core.task import SlackThread, TaskRequest
from integrations.slack import blocks
from integrations.slack.mention import Mention, NotAMention, parse_mention

log = logging.getLogger(__name__)


def create_bolt_app(desk: TaskDesk, client: WebClient, signing_secret: str,
                    executor: Executor) -> App:
    app = App(client=client, signing_secret=signing_secret,
              process_before_response=True, token_verification_enabled=False)
    later = _Later(executor)

    @app.event("app_mention")
    def on_mention(body: dict[str, Any], context: BoltContext) -> None:
        try:
            mention = parse_mention(body, context.bot_user_id or "")
        except NotAMention as exc:
            log.info("ignored a Slack event: %s", exc)
            return
        if not mention.instruction:
            later(_reply, client, mention.channel, mention.thread_ts, texts.CHAT_USAGE)
            return
        request = _request(mention)
        try:
            task = desk.submit(request, announce=False)
        except AmbiguousEnvironment as exc:
            pending_id, created = desk.hold(request, exc.choices)
            if created:
                text, choice = blocks.choice_message(pending_id, exc.choices, exc.message)
                later(_reply, client, mention.channel, mention.thread_ts, text, choice)
            return
        except ChatopsError as exc:
            later(_reply, client, mention.channel, mention.thread_ts,
                  texts.chat_refusal(exc.message, exc.hint))
            return
        later(desk.announce, task.id)

    @app.action(blocks.CANCEL)
    def on_cancel(ack: Callable[[], None], body: dict[str, Any], action: dict[str, Any],
                  ) -> None:
        ack()
        user = body["user"]["id"]
        task = desk.task(str(action["value"]))
        if user != task.request.requester:
            later(_whisper, client, body, user,
                  f"Only <@{task.request.requester}>, who asked for it, can cancel this task.")
            return
        desk.cancel(task.id)

    @app.action(blocks.RETRY)
    def on_retry(ack: Callable[[], None], body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        try:
            task = desk.retry(str(action["value"]), requester=body["user"]["id"])
        except ChatopsError as exc:
            later(_whisper, client, body, body["user"]["id"],
                  texts.chat_refusal(exc.message, exc.hint))
            return
        later(desk.announce, task.id)

    @app.action(re.compile(f"^{blocks.CHOOSE}:"))
    def on_choose(ack: Callable[[], None], body: dict[str, Any], action: dict[str, Any],
                  ) -> None:
        ack()
        pending_id, _, environment = str(action["value"]).partition(" ")
        user = body["user"]["id"]
        try:
            task = desk.resolve(pending_id, environment)
        except ChatopsError as exc:
            later(_whisper, client, body, user, texts.chat_refusal(exc.message, exc.hint))
            return
        later(_replace, client, body, texts.chat_picked(environment, f"<@{user}>"))
        later(desk.announce, task.id)

    @app.action(re.compile(f"^{blocks.PICK}:"))
    def on_pick(ack: Callable[[], None], body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        task_id, _, number = str(action["value"]).partition(" ")
        try:
            task = desk.pick(task_id, int(number), requester=body["user"]["id"])
        except (ChatopsError, ValueError) as exc:
            message = exc.message if isinstance(exc, ChatopsError) else str(exc)
            hint = exc.hint if isinstance(exc, ChatopsError) else ""
            later(_whisper, client, body, body["user"]["id"], texts.chat_refusal(message, hint))
            return
        later(desk.announce, task.id)

    @app.action(blocks.OPEN_PR)
    def on_open(ack: Callable[[], None]) -> None:
        ack()  # a link button: Slack opens the URL, we only acknowledge

    @app.event(re.compile(".*"))
    def on_other(body: dict[str, Any]) -> None:
        # Subscribed but unused events (message.*, ...) are acknowledged, not retried forever.
        log.info("ignored Slack event %s", (body.get("event") or {}).get("type"))

    return app


def _request(mention: Mention) -> TaskRequest:
    return TaskRequest(
        origin=SlackThread(team_id=mention.team_id, channel_id=mention.channel,
                           thread_ts=mention.thread_ts, message_ts=mention.ts),
        requester=mention.user,
        instruction=mention.instruction,
        environment=mention.environment,
        attempts=mention.attempts,
        # Slack redelivers an event with the same id until it gets a 2xx in time.
        dedupe_key=f"slack:{mention.team_id}:{mention.event_id}",
    )


class _Later:
    """Runs Slack calls after the acknowledgement; failures are logged, never raised."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def __call__(self, fn: Callable[..., Any], *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("a Slack call after the acknowledgement failed")

        self.executor.submit(run)


def _reply(client: WebClient, channel: str, thread_ts: str, text: str,
           content: list[dict[str, Any]] | None = None) -> None:
    client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text,
                            blocks=content or blocks.plain(text))


def _whisper(client: WebClient, body: dict[str, Any], user: str, text: str) -> None:
    container = body.get("container") or {}
    client.chat_postEphemeral(channel=container.get("channel_id") or body["channel"]["id"],
                              user=user, text=text,
                              thread_ts=container.get("thread_ts"))


def _replace(client: WebClient, body: dict[str, Any], text: str) -> None:
    container = body.get("container") or {}
    client.chat_update(channel=container.get("channel_id") or body["channel"]["id"],
                       ts=container.get("message_ts") or body["message"]["ts"], text=text,
                       blocks=blocks.plain(text))
