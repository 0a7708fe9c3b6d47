"""The `linear` fixture: a deployment with the web app on loopback, a fake Linear GraphQL API
(tests.fakes.linear_api) reached through the real httpx client, and real workers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chatops.app.settings import Settings
from chatops.app.wiring import Runtime
from chatops.core.task import Task
from tests.deployment import Deployment
from tests.fakes.linear_api import API_KEY, FakeLinear
from tests.linear.payloads import sign
from tests.serving import serving

WEBHOOK_SECRET = "lin_wh_fake_signing_secret_for_tests_0001"

LINEAR_ENVIRONMENTS = """
[environments.api]
repository = "{repo}"
queue = "{queue}"
linear_teams = ["OPS"]

[environments.web]
repository = "{repo}"
queue = "{queue}"
linear_labels = ["frontend"]
"""


class Clock:
    """Wall-clock seconds, unless a test pins it (to replay a recorded delivery's time)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self) -> float:
        return time.time() if self.at is None else self.at


@dataclass
class LinearRig:
    deployment: Deployment
    fake: FakeLinear
    url: str
    clock: Clock
    team: str
    alice: str
    bob: str

    @property
    def store(self) -> Any:
        return self.deployment.runtime.store

    def tasks(self) -> list[Task]:
        return sorted(self.store.recent(), key=lambda t: t.created_at)

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}/linear/webhook", content=body, headers=headers,
                          timeout=30)

    def deliver(self, payload: dict[str, Any], secret: str = WEBHOOK_SECRET) -> httpx.Response:
        body = json.dumps(payload).encode()
        return self.post(body, {"Content-Type": "application/json", **sign(body, secret)})

    def wait_until(self, predicate: Any, timeout: float = 60, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or predicate}")

    def ended(self, task_id: str) -> Task:
        def done() -> Task | None:
            task = self.store.get(task_id)
            return task if task.state.terminal else None

        return self.wait_until(done, what=f"task {task_id} to end")


@pytest.fixture
def linear_env() -> dict[str, str]:
    """Extra environment for the deployment (LINEAR_TRIGGERS, ...); override per module."""
    return {}


@pytest.fixture
def linear(deployment: Deployment, linear_env: dict[str, str]) -> Iterator[LinearRig]:
    with FakeLinear() as fake:
        team = fake.add_team("ENG", "Engineering")
        alice, bob = fake.add_user("alice"), fake.add_user("bob")
        deployment.environ.update({
            "LINEAR_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LINEAR_API_KEY": API_KEY,
            "LINEAR_API_URL": fake.url,
            "LINEAR_BOT_USER_ID": fake.bot_id,
            **linear_env,
        })
        deployment.environ = {k: v for k, v in deployment.environ.items() if v != "<unset>"}
        clock = Clock()
        runtime = Runtime(Settings.from_env(deployment.environ), clock=clock)
        with serving(runtime) as url:
            yield LinearRig(deployment, fake, url, clock, team, alice, bob)
