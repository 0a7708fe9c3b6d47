"""The `slack` fixture: a deployment with the web app on loopback, a fake Slack Web API
(tests.fakes) reached through the real slack_sdk client, and real workers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chatops.app.settings import Settings
from chatops.app.wiring import Runtime
from tests.deployment import Deployment
from tests.fakes import BOT_TOKEN, FakeSlack
from tests.fakes.slack_signing import block_actions_form, event_envelope, sign
from tests.serving import serving

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0CHAN00001"
ALICE = "U0ALICE0001"
BOB = "U0BOB000001"

SLACK_ENVIRONMENTS = """
[environments.api]
repository = "{repo}"
queue = "{queue}"
channels = ["C0OTHER0001"]

[environments.restricted]
repository = "{repo}"
queue = "{queue}"
allowed_users = ["U0NOBODY001"]
"""


@dataclass
class SlackRig:
    deployment: Deployment
    fake: FakeSlack
    url: str

    @property
    def store(self) -> Any:
        return self.deployment.runtime.store

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}/slack/events", content=body, headers=headers, timeout=30)

    def signed(self, payload: dict[str, Any], **headers: str) -> httpx.Response:
        body = json.dumps(payload).encode()
        return self.post(body, {"Content-Type": "application/json",
                                **sign(body, SIGNING_SECRET), **headers})

    def mention(self, text: str, *, thread_ts: str | None = None, user: str = ALICE,
                event_id: str | None = None, **headers: str) -> tuple[httpx.Response, dict]:
        """Seed the message in the fake workspace and deliver its app_mention event."""
        # Slack escapes these three in message text.
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        wire = f"<@{self.fake.bot_user_id}> {escaped}"
        ts = self.fake.add_message(CHANNEL, wire, user=user, thread_ts=thread_ts)
        event = {"type": "app_mention", "user": user, "ts": ts, "event_ts": ts,
                 "channel": CHANNEL, "team": self.fake.team_id, "text": wire}
        if thread_ts:
            event["thread_ts"] = thread_ts
        envelope = event_envelope(event, team_id=self.fake.team_id,
                                  api_app_id=self.fake.app_id,
                                  event_id=event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
                                  bot_user_id=self.fake.bot_user_id)
        return self.signed(envelope, **headers), envelope

    def click(self, action_id: str, value: str, message_ts: str, thread_ts: str,
              user: str = ALICE) -> httpx.Response:
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": "someone", "team_id": self.fake.team_id},
            "api_app_id": self.fake.app_id,
            "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL,
                          "is_ephemeral": False, "thread_ts": thread_ts},
            "team": {"id": self.fake.team_id, "domain": "example"},
            "channel": {"id": CHANNEL, "name": "dev"},
            "message": {"ts": message_ts, "thread_ts": thread_ts, "type": "message"},
            "trigger_id": "1.2.3",
            "actions": [{"action_id": action_id, "block_id": "b", "value": value,
                         "type": "button", "action_ts": f"{time.time():.6f}"}],
        }
        body = block_actions_form(payload)
        return self.post(body, {"Content-Type": "application/x-www-form-urlencoded",
                                **sign(body, SIGNING_SECRET)})

    def status_message(self, thread_ts: str) -> dict[str, Any]:
        """The bot's first message in the thread: the task's status message."""
        ours = [m for m in self.fake.messages(CHANNEL)
                if m.get("thread_ts") == thread_ts and m.get("bot_id")]
        assert ours, "no status message in the thread"
        return ours[0]

    def wait_until(self, predicate: Any, timeout: float = 60, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or predicate}")


@pytest.fixture
def slack_identity() -> dict[str, str]:
    """The workspace's ids (FakeSlack keyword arguments); override to replay recorded ids."""
    return {}


@pytest.fixture
def slack(deployment: Deployment, slack_identity: dict[str, str]) -> Iterator[SlackRig]:
    with FakeSlack(**slack_identity) as fake:
        fake.add_user(ALICE, "alice", real_name="Alice Liddell", display_name="alice")
        fake.add_user(BOB, "bob", real_name="Bob Builder", display_name="bob")
        deployment.environ.update({
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.base_url,
        })
        runtime = Runtime(Settings.from_env(deployment.environ))
        with serving(runtime) as url:
            yield SlackRig(deployment, fake, url)
