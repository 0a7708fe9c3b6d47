"""GitHubForge on a loopback GitHub: what it sends, what it returns, how it fails."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatops.core.environment import Environment
from chatops.core.errors import ConfigError, ForgeError
from chatops.core.ports import Forge, PullRequestDraft
from integrations.github import GitHubForge
from tests.integrations.github.fake_github import Canned, FakeGitHub, validation_failed
from tests.integrations.github.support import PAT, REPO, WEB

MakeForge = Callable[..., GitHubForge]
PULLS = rf"/repos/{REPO}/pulls"


def _env(draft: bool = False, repository: str = f"{WEB}/{REPO}.git") -> Environment:
    return Environment(name="demo", repository=repository, forge="github", draft=draft)


def _draft(branch: str = "chatops/t1") -> PullRequestDraft:
    return PullRequestDraft(branch=branch, base="main", title="Fix the flaky retry test",
                            body="Asked in #eng by @ana\n\n1 file changed, +2 -1")


def test_opens_a_pull_request_with_the_documented_fields(make_forge: MakeForge,
                                                         github: FakeGitHub) -> None:
    pr = make_forge().open_pull_request(_env(draft=True), _draft())

    assert (pr.forge, pr.number, pr.branch, pr.base) == ("github", 1, "chatops/t1", "main")
    assert pr.url == f"{WEB}/{REPO}/pull/1"
    assert (pr.title, pr.body) == ("Fix the flaky retry test", _draft().body)
    (created,) = github.seen("POST", PULLS)
    assert created.body == {"title": "Fix the flaky retry test", "head": "chatops/t1",
                            "base": "main", "body": _draft().body, "draft": True}
    (looked_up,) = github.seen("GET", PULLS)
    assert looked_up.query == {"head": "octo:chatops/t1", "state": "open"}
    assert github.open_pulls(REPO)[0]["draft"] is True


def test_sends_the_headers_github_asks_for(make_forge: MakeForge, github: FakeGitHub) -> None:
    make_forge().open_pull_request(_env(), _draft())

    for request in github.requests:
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        assert request.headers["user-agent"]
        assert request.headers["authorization"] == f"Bearer {PAT}"
    assert github.seen("POST", PULLS)[0].headers["content-type"] == "application/json"


def test_the_environment_draft_flag_defaults_to_false(make_forge: MakeForge,
                                                      github: FakeGitHub) -> None:
    make_forge().open_pull_request(_env(), _draft())
    assert github.seen("POST", PULLS)[0].body["draft"] is False


def test_an_open_pull_request_is_returned_not_duplicated(make_forge: MakeForge,
                                                         github: FakeGitHub) -> None:
    first = make_forge().open_pull_request(_env(), _draft())
    # A redelivered job, in another worker: a new forge, a retitled draft.
    again = make_forge().open_pull_request(
        _env(), PullRequestDraft(branch="chatops/t1", base="main", title="retried", body=""))

    assert again == first
    assert len(github.open_pulls(REPO)) == 1
    assert len(github.seen("POST", PULLS)) == 1


def test_already_exists_after_a_lost_race_returns_the_winner(make_forge: MakeForge,
                                                              github: FakeGitHub) -> None:
    winner = make_forge().open_pull_request(_env(), _draft())
    # The look-up runs before the other delivery's create lands, so it finds nothing; the
    # create then meets GitHub's "already exists".
    github.script("GET", PULLS, Canned(200, []))

    pr = make_forge().open_pull_request(_env(), _draft())

    assert pr == winner
    assert len(github.open_pulls(REPO)) == 1
    assert [r.method for r in github.requests[-3:]] == ["GET", "POST", "GET"]


def test_another_branch_gets_its_own_pull_request(make_forge: MakeForge,
                                                  github: FakeGitHub) -> None:
    forge = make_forge()
    one = forge.open_pull_request(_env(), _draft("chatops/one"))
    two = forge.open_pull_request(_env(), _draft("chatops/two"))
    assert (one.number, two.number) == (1, 2)


def test_comment_on_a_pull_request(make_forge: MakeForge, github: FakeGitHub) -> None:
    forge = make_forge()
    pr = forge.open_pull_request(_env(), _draft())

    forge.comment(_env(), pr.number, "Pushed a follow-up: 1 file changed")

    (posted,) = github.seen("POST", rf"/repos/{REPO}/issues/{pr.number}/comments")
    assert posted.body == {"body": "Pushed a follow-up: 1 file changed"}
    assert [c["number"] for c in github.comments] == [pr.number]


def test_it_is_a_forge(make_forge: MakeForge) -> None:
    forge: Forge = make_forge()  # checked by mypy: the port's methods and signatures
    assert callable(forge.open_pull_request) and callable(forge.comment)


def test_the_draft_flag_of_the_draft_counts_too(make_forge: MakeForge,
                                                github: FakeGitHub) -> None:
    draft = PullRequestDraft(branch="b", base="main", title="T", body="", draft=True)
    make_forge().open_pull_request(_env(), draft)
    assert github.seen("POST", PULLS)[0].body["draft"] is True


@pytest.mark.parametrize("repository", [
    f"{WEB}/{REPO}", f"{WEB}/{REPO}.git", f"{WEB}/{REPO}/", "git@github.example:octo/demo.git",
    f"https://someone@{WEB.removeprefix('https://')}/{REPO}.git",
])
def test_repository_url_forms(make_forge: MakeForge, github: FakeGitHub,
                              repository: str) -> None:
    make_forge().open_pull_request(_env(repository=repository), _draft())
    assert github.seen("POST", PULLS)


def test_a_repository_elsewhere_is_refused_before_any_request(make_forge: MakeForge,
                                                               github: FakeGitHub) -> None:
    with pytest.raises(ForgeError) as caught:
        make_forge().open_pull_request(_env(repository="https://gitlab.com/octo/demo.git"),
                                       _draft())
    assert "not on the configured GitHub (github.example)" in caught.value.message
    assert "https://github.example/OWNER/REPO.git" in caught.value.hint
    assert github.requests == []


def test_a_renamed_repository_is_followed(make_forge: MakeForge, github: FakeGitHub) -> None:
    moved = f"{github.url}/repos/octo/renamed/pulls"
    github.script("POST", PULLS, Canned(307, None, {"location": moved}))

    pr = make_forge().open_pull_request(_env(), _draft())

    (followed,) = github.seen("POST", "/repos/octo/renamed/pulls")
    assert followed.headers["authorization"] == f"Bearer {PAT}"
    assert followed.body == github.seen("POST", PULLS)[0].body
    assert pr.url == f"{WEB}/octo/renamed/pull/1"


# -- refusals ------------------------------------------------------------------------------


def _refusal(make_forge: MakeForge, github: FakeGitHub, method: str, answer: Canned,
             app: bool = False) -> ForgeError:
    github.script(method, PULLS, answer)
    with pytest.raises(ForgeError) as caught:
        make_forge(app=app).open_pull_request(_env(), _draft())
    return caught.value


def test_bad_credentials(make_forge: MakeForge, github: FakeGitHub) -> None:
    error = _refusal(make_forge, github, "GET",
                     Canned(401, {"message": "Bad credentials", "status": "401"}))
    assert "401: Bad credentials" in error.message
    assert "GITHUB_TOKEN" in error.hint and "new token" in error.hint


def test_a_token_without_permission(make_forge: MakeForge, github: FakeGitHub) -> None:
    error = _refusal(make_forge, github, "POST", Canned(403, {
        "message": "Resource not accessible by personal access token", "status": "403"}))
    assert "Resource not accessible by personal access token" in error.message
    assert "`contents: write` and `pull_requests: write`" in error.hint
    assert REPO in error.hint


def test_an_app_without_permission(make_forge: MakeForge, github: FakeGitHub) -> None:
    error = _refusal(make_forge, github, "POST", Canned(403, {
        "message": "Resource not accessible by integration"}), app=True)
    assert "Resource not accessible by integration" in error.message
    assert "GitHub App" in error.hint and "installation includes octo/demo" in error.hint


def test_a_repository_that_is_not_there(make_forge: MakeForge, github: FakeGitHub) -> None:
    error = _refusal(make_forge, github, "GET", Canned(404, {"message": "Not Found"}))
    assert "404: Not Found" in error.message
    assert "`repository` (octo/demo)" in error.hint


def test_no_commits_between(make_forge: MakeForge, github: FakeGitHub) -> None:
    error = _refusal(make_forge, github, "POST",
                     validation_failed("No commits between main and chatops/t1"))
    assert "422: Validation Failed: No commits between main and chatops/t1" in error.message
    assert "pushed" in error.hint and "`base_branch`" in error.hint


def test_a_head_github_does_not_know(make_forge: MakeForge, github: FakeGitHub) -> None:
    error = _refusal(make_forge, github, "POST", Canned(422, {
        "message": "Validation Failed",
        "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}]}))
    assert "field: head" in error.message
    assert "push the branch" in error.hint


def test_drafts_not_supported(make_forge: MakeForge, github: FakeGitHub) -> None:
    error = _refusal(make_forge, github, "POST", validation_failed(
        "Draft pull requests are not supported in this repository."))
    assert "draft = false" in error.hint


def test_a_non_json_answer(make_forge: MakeForge, github: FakeGitHub) -> None:
    github.script("GET", PULLS, Canned(200, None, {"content-type": "text/html"}))
    with pytest.raises(ForgeError) as caught:
        make_forge().open_pull_request(_env(), _draft())
    assert "not JSON" in caught.value.message
    assert "GITHUB_API_URL" in caught.value.hint


def test_github_unreachable(make_forge: MakeForge, sleeps: list[float]) -> None:
    forge = make_forge(api_url="http://127.0.0.1:9/api/v3")  # discard port: nothing listens
    with pytest.raises(ForgeError) as caught:
        forge.open_pull_request(_env(), _draft())
    assert "cannot reach GitHub at http://127.0.0.1:9/api/v3" in caught.value.message
    assert sleeps == [1.0, 2.0]


def test_needs_exactly_one_kind_of_credentials() -> None:
    with pytest.raises(ConfigError):
        GitHubForge()
    with pytest.raises(ConfigError):
        GitHubForge(token=PAT, app_id="1", private_key="x")
    with pytest.raises(ConfigError) as caught:
        GitHubForge(app_id="1", private_key="-----BEGIN RSA PRIVATE KEY-----\nnope\n")
    assert "nope" not in str(caught.value)


def test_a_malformed_pull_request_object(make_forge: MakeForge, github: FakeGitHub) -> None:
    github.script("GET", PULLS, Canned(200, [{"number": 7, "head": {"ref": "chatops/t1"}}]))
    with pytest.raises(ForgeError) as caught:
        make_forge().open_pull_request(_env(), _draft())
    assert "lacks the field 'html_url'" in caught.value.message
