"""Rate limits and server errors: waits as GitHub asks, within bounds, then a clear error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatops.core.environment import Environment
from chatops.core.errors import ForgeError
from chatops.core.ports import PullRequestDraft
from integrations.github import GitHubForge, RetryPolicy
from tests.integrations.github.fake_github import Canned, FakeGitHub
from tests.integrations.github.support import REPO, WEB, FakeClock

MakeForge = Callable[..., GitHubForge]
ENV = Environment(name="demo", repository=f"{WEB}/{REPO}.git", forge="github")
DRAFT = PullRequestDraft(branch="chatops/t1", base="main", title="T", body="B")
PULLS = rf"/repos/{REPO}/pulls"
SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes"
                        " before you try again.", "documentation_url": "https://docs.github.com"}


def _primary(clock: FakeClock, in_s: int, status: int = 403) -> Canned:
    return Canned(status, {"message": "API rate limit exceeded for user ID 1."}, {
        "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
        "x-ratelimit-used": "5000", "x-ratelimit-reset": str(int(clock.now) + in_s)})


@pytest.mark.parametrize("status", [403, 429])
def test_retry_after_is_honoured(make_forge: MakeForge, github: FakeGitHub,
                                 sleeps: list[float], status: int) -> None:
    github.script("POST", PULLS, Canned(status, SECONDARY, {"retry-after": "7"}))

    pr = make_forge().open_pull_request(ENV, DRAFT)

    assert pr.number == 1
    assert sleeps == [7.0]
    assert len(github.seen("POST", PULLS)) == 2


@pytest.mark.parametrize("status", [403, 429])
def test_a_primary_limit_waits_until_the_reset(make_forge: MakeForge, github: FakeGitHub,
                                               sleeps: list[float], clock: FakeClock,
                                               status: int) -> None:
    github.script("GET", PULLS, _primary(clock, 30, status))

    make_forge().open_pull_request(ENV, DRAFT)

    assert sleeps == [31.0]  # the reset, and a second for its rounding


def test_a_secondary_limit_without_headers_waits_a_minute(make_forge: MakeForge,
                                                          github: FakeGitHub,
                                                          sleeps: list[float]) -> None:
    github.script("POST", PULLS, Canned(403, SECONDARY))
    make_forge().open_pull_request(ENV, DRAFT)
    assert sleeps == [60.0]


def test_waits_add_up_to_a_bounded_total(make_forge: MakeForge, github: FakeGitHub,
                                         sleeps: list[float]) -> None:
    github.script("POST", PULLS, *[Canned(429, SECONDARY, {"retry-after": "50"})] * 5)

    with pytest.raises(ForgeError) as caught:
        make_forge().open_pull_request(ENV, DRAFT)

    assert sleeps == [50.0, 50.0]  # a third would pass the default 120 s
    assert "secondary rate limit" in caught.value.message
    assert "exceeded a secondary rate limit" in caught.value.message
    assert "retry the task after" in caught.value.hint


def test_the_number_of_retries_is_bounded(make_forge: MakeForge, github: FakeGitHub,
                                          sleeps: list[float]) -> None:
    github.script("GET", PULLS, *[Canned(429, SECONDARY, {"retry-after": "1"})] * 9)
    with pytest.raises(ForgeError):
        make_forge(retry=RetryPolicy(max_retries=3)).open_pull_request(ENV, DRAFT)
    assert sleeps == [1.0, 1.0, 1.0]
    assert len(github.seen("GET", PULLS)) == 4


def test_a_reset_far_away_fails_at_once_with_its_time(make_forge: MakeForge,
                                                      github: FakeGitHub, clock: FakeClock,
                                                      sleeps: list[float]) -> None:
    clock.now = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    github.script("GET", PULLS, _primary(clock, 3600))

    with pytest.raises(ForgeError) as caught:
        make_forge().open_pull_request(ENV, DRAFT)

    assert sleeps == []
    assert "primary rate limit" in caught.value.message
    assert "API rate limit exceeded" in caught.value.message
    assert "2023-11-14 23:13:21 UTC" in caught.value.message


def test_a_plain_403_is_not_a_rate_limit(make_forge: MakeForge, github: FakeGitHub,
                                         sleeps: list[float]) -> None:
    github.script("POST", PULLS, Canned(403, {"message": "Must have admin rights"}, {
        "x-ratelimit-remaining": "4999", "x-ratelimit-reset": "0"}))
    with pytest.raises(ForgeError) as caught:
        make_forge().open_pull_request(ENV, DRAFT)
    assert sleeps == []
    assert "Must have admin rights" in caught.value.message


def test_server_errors_are_retried_a_couple_of_times(make_forge: MakeForge,
                                                     github: FakeGitHub,
                                                     sleeps: list[float]) -> None:
    github.script("POST", PULLS, Canned(502, {"message": "Server Error"}),
                  Canned(503, {"message": "Service Unavailable"}))
    assert make_forge().open_pull_request(ENV, DRAFT).number == 1
    assert sleeps == [1.0, 2.0]


def test_persistent_server_errors_end_in_a_forge_error(make_forge: MakeForge,
                                                       github: FakeGitHub,
                                                       sleeps: list[float]) -> None:
    github.script("GET", PULLS, *[Canned(500, {"message": "Server Error"})] * 3)
    with pytest.raises(ForgeError) as caught:
        make_forge().open_pull_request(ENV, DRAFT)
    assert len(github.seen("GET", PULLS)) == 3
    assert "500: Server Error" in caught.value.message
    assert "retry the task later" in caught.value.hint
