"""GitHub App authentication: the JWT GitHub receives, installations, cached tokens."""

from __future__ import annotations

import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest

from chatops.core.environment import Environment
from chatops.core.errors import ForgeError
from chatops.core.ports import PullRequestDraft
from integrations.github import AppCredentials, GitHubForge
from tests.integrations.github.fake_github import Canned, FakeGitHub
from tests.integrations.github.support import (
    APP_ID,
    INSTALLATION,
    REPO,
    WEB,
    AppKey,
    FakeClock,
)

MakeForge = Callable[..., GitHubForge]
ENV = Environment(name="demo", repository=f"{WEB}/{REPO}.git", forge="github")
DRAFT = PullRequestDraft(branch="chatops/t1", base="main", title="T", body="B")
TOKENS = rf"/app/installations/{INSTALLATION}/access_tokens"
LOOKUP = rf"/repos/{REPO}/installation"


def _app(forge: GitHubForge) -> AppCredentials:
    assert isinstance(forge.credentials, AppCredentials)
    return forge.credentials


def _basic_token(config: dict[str, str]) -> str:
    (value,) = config.values()
    user, _, token = base64.b64decode(value.removeprefix("Authorization: Basic ")).decode() \
        .partition(":")
    assert user == "x-access-token"
    return token


def test_the_jwt_github_receives(make_forge: MakeForge, github: FakeGitHub, app_key: AppKey,
                                 clock: FakeClock) -> None:
    make_forge(app=True).open_pull_request(ENV, DRAFT)

    jwts = [r.headers["authorization"].removeprefix("Bearer ")
            for r in github.seen("GET", LOOKUP) + github.seen("POST", TOKENS)]
    assert len(jwts) == 2
    for token in jwts:
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        claims = jwt.decode(token, app_key.public_key, algorithms=["RS256"],
                            options={"verify_exp": False, "verify_iat": False})
        assert claims["iss"] == APP_ID
        assert claims["iat"] <= clock.now < claims["exp"]
        assert claims["exp"] - claims["iat"] <= 600


def test_installation_looked_up_then_its_token_used(make_forge: MakeForge,
                                                    github: FakeGitHub) -> None:
    make_forge(app=True).open_pull_request(ENV, DRAFT)

    (issued,) = github.issued
    assert [(r.method, r.path) for r in github.requests] == [
        ("GET", LOOKUP), ("POST", TOKENS), ("GET", f"/repos/{REPO}/pulls"),
        ("POST", f"/repos/{REPO}/pulls"),
    ]
    for request in github.requests[2:]:
        assert request.headers["authorization"] == f"Bearer {issued}"


def test_a_configured_installation_is_not_looked_up(make_forge: MakeForge,
                                                    github: FakeGitHub) -> None:
    make_forge(app=True, installation_id=INSTALLATION).open_pull_request(ENV, DRAFT)
    assert github.seen("GET", LOOKUP) == []
    assert len(github.seen("POST", TOKENS)) == 1


def test_one_token_serves_many_calls(make_forge: MakeForge, github: FakeGitHub) -> None:
    forge = make_forge(app=True)
    forge.open_pull_request(ENV, DRAFT)
    forge.open_pull_request(ENV, DRAFT)
    forge.comment(ENV, 1, "again")
    first = forge.git_config(ENV.repository)

    assert forge.git_config(ENV.repository) == first
    assert len(github.seen("GET", LOOKUP)) == 1
    assert len(github.seen("POST", TOKENS)) == 1
    assert _basic_token(first) == github.issued[0]


def test_the_token_is_replaced_shortly_before_it_expires(make_forge: MakeForge,
                                                         github: FakeGitHub,
                                                         clock: FakeClock) -> None:
    forge = make_forge(app=True)
    first = _basic_token(forge.git_config(ENV.repository))
    expires = _app(forge).installation_token(INSTALLATION).expires_at.timestamp()

    clock.now = expires - 5 * 60 - 1  # still more than the margin left
    assert _basic_token(forge.git_config(ENV.repository)) == first
    clock.now = expires - 5 * 60
    second = _basic_token(forge.git_config(ENV.repository))

    assert second != first and github.issued == [first, second]
    # ... and GitHub takes the new one once the old one has expired.
    clock.now = expires + 1
    forge.open_pull_request(ENV, DRAFT)
    assert len(github.issued) == 2


def test_concurrent_callers_share_one_exchange(make_forge: MakeForge,
                                               github: FakeGitHub) -> None:
    forge = make_forge(app=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        configs = list(pool.map(lambda _: forge.git_config(ENV.repository), range(16)))

    assert len({_basic_token(config) for config in configs}) == 1
    assert len(github.seen("GET", LOOKUP)) == 1
    assert len(github.seen("POST", TOKENS)) == 1


def test_an_app_not_installed_on_the_repository(make_forge: MakeForge,
                                                github: FakeGitHub) -> None:
    github.installations.clear()
    with pytest.raises(ForgeError) as caught:
        make_forge(app=True).open_pull_request(ENV, DRAFT)
    assert f"App {APP_ID} is not installed on {REPO}" in caught.value.message
    assert "install the App" in caught.value.hint
    assert "GITHUB_APP_INSTALLATION_ID" in caught.value.hint


def test_a_wrong_key_is_refused_with_a_fix(make_forge: MakeForge, github: FakeGitHub) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()
    with pytest.raises(ForgeError) as caught:
        make_forge(app=True, private_key=other).open_pull_request(ENV, DRAFT)
    assert "401" in caught.value.message and "could not be decoded" in caught.value.message
    assert "GITHUB_APP_ID" in caught.value.hint and "private key" in caught.value.hint


def test_a_failed_exchange_forgets_the_installation(make_forge: MakeForge,
                                                    github: FakeGitHub) -> None:
    forge = make_forge(app=True)
    github.script("POST", TOKENS, Canned(404, {"message": "Not Found"}))
    with pytest.raises(ForgeError):
        forge.git_config(ENV.repository)

    # Reinstalled under the same id here; what matters is that it is looked up again.
    assert forge.git_config(ENV.repository)
    assert len(github.seen("GET", LOOKUP)) == 2


def test_a_token_answer_without_an_expiry(make_forge: MakeForge, github: FakeGitHub) -> None:
    github.script("POST", TOKENS, Canned(201, {"token": "ghs_x"}))
    with pytest.raises(ForgeError) as caught:
        make_forge(app=True).git_config(ENV.repository)
    assert "lacks the field 'expires_at'" in caught.value.message
    assert "ghs_x" not in str(caught.value)
