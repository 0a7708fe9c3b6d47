"""GitHubForge against payloads GitHub really sent (``shared/fixtures/github``, read by path).

The loopback GitHub answers with the recorded bodies; the forge must read them into the
right PullRequest and installation token, and must send a create-pull-request body shaped
like the recorded one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chatops.core.environment import Environment
from chatops.core.ports import PullRequestDraft
from chatops.core.task import PullRequest
from integrations.github import AppCredentials, GitHubForge
from tests.integrations.github.fake_github import FakeGitHub
from tests.integrations.github.support import APP_ID, AppKey, FakeClock, make_app_key

pytestmark = pytest.mark.conformance

# The installation and repository of the recordings (see the fixtures' SOURCES.md).
INSTALLATION = 30614431
RECORDED_REPO = "PyGithub/PyGithub"
WEBHOOK_REPO = "Codertocat/Hello-World"
# Only meaningful for a head branch in a fork; GitHub advises leaving it out otherwise.
FORK_ONLY_FIELDS = {"maintainer_can_modify"}


def _load(directory: Path, name: str) -> Any:
    return json.loads((directory / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def app_key() -> AppKey:
    return make_app_key()


@pytest.fixture
def recorded(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "github"


@pytest.fixture
def clock(recorded: Path) -> FakeClock:
    """An hour before the recorded token expires: the moment GitHub issued it."""
    expires = _load(recorded, "installation_access_token_response.json")["expires_at"]
    clock = FakeClock()
    clock.now = datetime.fromisoformat(expires).timestamp() - 3600
    return clock


@pytest.fixture
def github(recorded: Path, clock: FakeClock, app_key: AppKey) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(clock=clock, prefix="", web_url="https://github.com", app_id=APP_ID,
                      public_key=app_key.public_key,
                      installations={RECORDED_REPO: INSTALLATION, WEBHOOK_REPO: INSTALLATION})
    fake.token_response = _load(recorded, "installation_access_token_response.json")
    fake.create_response = _load(recorded, "create_pull_request_response.json")
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def forge(github: FakeGitHub, clock: FakeClock, app_key: AppKey) -> Iterator[GitHubForge]:
    with GitHubForge(api_url=github.url, web_url="https://github.com", app_id=APP_ID,
                     private_key=app_key.pem, clock=clock, sleep=lambda _: None) as forge:
        yield forge


def _env(full_name: str) -> Environment:
    return Environment(name="recorded", repository=f"https://github.com/{full_name}.git",
                       forge="github")


def test_the_recorded_pull_request_is_read_right(forge: GitHubForge, github: FakeGitHub,
                                                 recorded: Path) -> None:
    request = _load(recorded, "create_pull_request_request.json")
    draft = PullRequestDraft(branch="master", base=request["base"], title=request["title"],
                             body=request["body"])

    pr = forge.open_pull_request(_env(RECORDED_REPO), draft)

    assert pr == PullRequest(
        forge="github", number=31, url="https://github.com/PyGithub/PyGithub/pull/31",
        branch="master", base="topic/RewriteWithGeneratedCode",
        title="Pull request created by PyGithub", body="Body of the pull request",
    )


def test_the_create_body_has_the_recorded_shape(forge: GitHubForge, github: FakeGitHub,
                                                recorded: Path) -> None:
    request = _load(recorded, "create_pull_request_request.json")
    forge.open_pull_request(_env(RECORDED_REPO), PullRequestDraft(
        branch="chatops/t1", base="main", title="Fix it", body="Asked in #eng"))

    (sent,) = github.seen("POST", f"/repos/{RECORDED_REPO}/pulls")
    assert set(sent.body) == set(request) - FORK_ONLY_FIELDS
    assert "draft" in sent.body
    for key, value in sent.body.items():
        assert type(value) is type(request[key]), key


def test_the_recorded_installation_token_is_read_and_cached(forge: GitHubForge,
                                                            github: FakeGitHub,
                                                            clock: FakeClock,
                                                            recorded: Path) -> None:
    recorded_token = _load(recorded, "installation_access_token_response.json")["token"]
    forge.open_pull_request(_env(RECORDED_REPO), PullRequestDraft(
        branch="master", base="topic/RewriteWithGeneratedCode", title="T", body="B"))
    credentials = forge.credentials
    assert isinstance(credentials, AppCredentials)

    token = credentials.installation_token(INSTALLATION)

    assert token.token == recorded_token
    assert token.expires_at == datetime(2024, 11, 25, 1, 0, 2, tzinfo=UTC)
    pulls = github.seen("POST", f"/repos/{RECORDED_REPO}/pulls")
    assert pulls[0].headers["authorization"] == f"Bearer {recorded_token}"
    exchanges = f"/app/installations/{INSTALLATION}/access_tokens"
    assert len(github.seen("POST", exchanges)) == 1
    clock.now = token.expires_at.timestamp() - 5 * 60
    credentials.installation_token(INSTALLATION)
    assert len(github.seen("POST", exchanges)) == 2


def test_a_modern_pull_request_object_is_found_and_reused(forge: GitHubForge,
                                                          github: FakeGitHub,
                                                          recorded: Path) -> None:
    opened = _load(recorded, "webhook_pull_request_opened.json")["pull_request"]
    github.pulls[WEBHOOK_REPO] = [opened]

    pr = forge.open_pull_request(_env(WEBHOOK_REPO), PullRequestDraft(
        branch="changes", base="master", title="ignored", body="ignored"))

    assert pr == PullRequest(
        forge="github", number=2, url="https://github.com/Codertocat/Hello-World/pull/2",
        branch="changes", base="master", title="Update the README with new information.",
        body="This is a pretty simple change that we need to pull into master.",
    )
    assert github.seen("POST", f"/repos/{WEBHOOK_REPO}/pulls") == []
