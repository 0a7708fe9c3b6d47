"""A loopback GitHub for every test, a clock the tests move, and a sleep that only records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integrations.github import GitHubForge
from tests.integrations.github.fake_github import FakeGitHub
from tests.integrations.github.support import (
    APP_ID,
    INSTALLATION,
    PAT,
    REPO,
    WEB,
    AppKey,
    FakeClock,
    make_app_key,
)


@pytest.fixture(scope="session")
def app_key() -> AppKey:
    return make_app_key()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> list[float]:
    """Every wait the forge asked for, in seconds; nothing actually waits."""
    return []


@pytest.fixture
def github(clock: FakeClock, app_key: AppKey) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(clock=clock, web_url=WEB, tokens=(PAT,), app_id=APP_ID,
                      public_key=app_key.public_key, installations={REPO: INSTALLATION})
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def make_forge(github: FakeGitHub, clock: FakeClock, sleeps: list[float],
               app_key: AppKey) -> Iterator[Callable[..., GitHubForge]]:
    """``make_forge(app=False, **options)``: a forge on the loopback GitHub, closed after."""
    made: list[GitHubForge] = []

    def make(app: bool = False, **options: Any) -> GitHubForge:
        credentials: dict[str, Any] = (
            {"app_id": APP_ID, "private_key": app_key.pem} if app else {"token": PAT}
        )
        settings = {"api_url": github.url, "web_url": WEB, "sleep": sleeps.append,
                    "clock": clock, **credentials, **options}
        forge = GitHubForge(**settings)
        made.append(forge)
        return forge

    yield make
    for forge in made:
        forge.close()
