"""Delivery over real git smart HTTP: GitRepository pushes with the forge's credentials.

The remote is ``git http-backend`` behind a loopback server that, like GitHub, wants HTTP
Basic with ``x-access-token`` and a valid token; the pull request goes to the loopback REST
API. Then we look for the token everywhere it must not be.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatops.core.environment import Environment
from chatops.core.errors import ChatopsError, ForgeError, RepositoryError
from chatops.core.ports import PullRequestDraft
from chatops.core.task import PullRequest
from integrations.git import GitRepository
from integrations.github import GitHubForge
from tests.integrations.github.fake_github import Canned, FakeGitHub
from tests.integrations.github.git_http import GitHttpServer, make_served_repository
from tests.integrations.github.support import PAT, REPO
from tests.integrations.gitutil import make_origin, spec, text

MakeForge = Callable[..., GitHubForge]


@pytest.fixture
def served(tmp_path: Path) -> Path:
    origin = make_origin(tmp_path / "seed", {"README.md": b"# demo\n", "src/app.py": b"x = 1\n"})
    return make_served_repository(tmp_path / "srv", REPO, origin)


@pytest.fixture
def git_server(served: Path, github: FakeGitHub) -> Iterator[GitHttpServer]:
    # GitHub's git accepts the same tokens as its API: the personal one, issued ones.
    server = GitHttpServer(served.parents[1], accepts=lambda token: token in github.valid_tokens)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(git_server: GitHttpServer) -> Environment:
    return Environment(name="demo", repository=f"{git_server.url}/{REPO}.git", forge="github")


def _deliver(forge: GitHubForge, env: Environment, tmp_path: Path, content: bytes,
             branch: str = "chatops/t1") -> tuple[str, PullRequest]:
    """What the service does: check out, change, publish, open the pull request."""
    repo = GitRepository(network_config=forge.git_config, scratch_dir=tmp_path / "scratch")
    (tmp_path / "scratch").mkdir(exist_ok=True)
    work = tmp_path / f"work-{len(list(tmp_path.glob('work-*')))}"
    base = repo.checkout(env, work)
    (work / "README.md").write_bytes(content)
    commit = repo.publish(env, spec(base, repo.collect_patch(work), branch=branch))
    pr = forge.open_pull_request(env, PullRequestDraft(branch=branch, base="main",
                                                       title="Update README", body=""))
    return commit, pr


@pytest.mark.parametrize("app", [False, True], ids=["token", "app"])
def test_the_branch_lands_and_one_pull_request_opens(make_forge: MakeForge, env: Environment,
                                                     served: Path, git_server: GitHttpServer,
                                                     github: FakeGitHub, tmp_path: Path,
                                                     app: bool) -> None:
    forge = make_forge(app=app, web_url=git_server.url)

    commit, pr = _deliver(forge, env, tmp_path, b"# changed\n")
    # The job is delivered again (a worker died after the push): same commit, same PR.
    again, same = _deliver(make_forge(app=app, web_url=git_server.url), env, tmp_path,
                           b"# changed\n")

    assert text(served, "rev-parse", "refs/heads/chatops/t1") == commit == again
    assert text(served, "show", "chatops/t1:README.md") == "# changed"
    assert same == pr and len(github.open_pulls(REPO)) == 1
    assert pr.number == 1 and pr.branch == "chatops/t1"
    tokens = github.issued if app else [PAT]
    assert len(tokens) == (2 if app else 1)  # one per forge: each worker exchanges its own
    assert git_server.refused == 0
    assert set(git_server.authorizations) == {
        "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
        for token in tokens
    }


def test_without_the_forge_the_server_refuses(env: Environment, git_server: GitHttpServer,
                                              tmp_path: Path) -> None:
    with pytest.raises(RepositoryError):
        GitRepository().checkout(env, tmp_path / "work")
    assert git_server.refused >= 1


def test_git_config_is_scoped_to_the_repository(make_forge: MakeForge,
                                                git_server: GitHttpServer) -> None:
    forge = make_forge(web_url=git_server.url)
    url = f"{git_server.url}/{REPO}.git"

    config = forge.git_config(url.replace("http://", "http://someone@"))

    assert list(config) == [f"http.{url}.extraHeader"]
    assert forge.git_config(f"{git_server.url}/{REPO}") != {}
    for elsewhere in ("https://gitlab.com/octo/demo.git", "/srv/git/demo.git",
                      "http://127.0.0.1:1/octo/demo.git", f"git@127.0.0.1:{REPO}.git"):
        assert forge.git_config(elsewhere) == {}


def test_the_token_goes_nowhere_it_should_not(make_forge: MakeForge, env: Environment,
                                              served: Path, git_server: GitHttpServer,
                                              github: FakeGitHub, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Every git process the delivery starts records its arguments on its way to the real git.
    argv_log = tmp_path / "argv.log"
    wrapper = tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{argv_log}"\n'
                       f'exec "{shutil.which("git")}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    caplog.set_level(logging.DEBUG)

    forge = make_forge(app=True, web_url=git_server.url)
    _deliver(forge, env, tmp_path, b"# changed\n")
    errors: list[ChatopsError] = []
    with pytest.raises(RepositoryError) as pushed:  # the branch exists at another commit
        _deliver(forge, env, tmp_path, b"# something else\n")
    errors.append(pushed.value)
    github.script("POST", rf"/repos/{REPO}/issues/1/comments",
                  Canned(403, {"message": "Resource not accessible by integration"}))
    with pytest.raises(ForgeError) as commented:
        forge.comment(env, 1, "follow-up")
    errors.append(commented.value)

    secrets = _secret_forms(github.issued + [r.headers["authorization"].split()[1]
                                             for r in github.requests])
    assert github.issued and argv_log.read_text().count("push") >= 2
    for record in caplog.records:
        _assert_clean(f"{record.getMessage()} {record.args!r}", secrets, record.name)
    for error in errors:
        _assert_clean(f"{error} {error.message} {error.hint}", secrets, type(error).__name__)
    _assert_clean(argv_log.read_text(), secrets, "git's argv")
    for path in [*(tmp_path).glob("work-*/.git/**/*"), *served.rglob("*"),
                 *(tmp_path / "scratch").rglob("*")]:
        if path.is_file():
            _assert_clean(path.read_bytes().decode("latin-1"), secrets, str(path))
    assert list((tmp_path / "scratch").iterdir()) == []


def _secret_forms(tokens: list[str]) -> set[str]:
    forms = set()
    for token in tokens:
        forms.add(token)
        forms.add(base64.b64encode(f"x-access-token:{token}".encode()).decode())
    return forms


def _assert_clean(haystack: str, secrets: set[str], where: str) -> None:
    for secret in secrets:
        assert secret not in haystack, f"a credential leaked into {where}"
