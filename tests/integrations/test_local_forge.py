"""LocalForge: pull requests recorded in a bare repository on disk."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chatops.core.environment import Environment
from chatops.core.errors import ForgeError
from chatops.core.ports import PullRequestDraft
from integrations.git import GitRepository
from integrations.git.local_forge import LocalForge
from tests.integrations.gitutil import BINARY, git, spec, text


def _push_branch(env: Environment, tmp_path: Path, branch: str, content: bytes = b"new\n") -> str:
    repo = GitRepository()
    work = tmp_path / f"work-{branch.replace('/', '-')}"
    base = repo.checkout(env, work)
    (work / "README.md").write_bytes(content)
    (work / "image.bin").write_bytes(BINARY)
    return repo.publish(env, spec(base, repo.collect_patch(work), branch=branch))


def _draft(branch: str, title: str = "Fix the README") -> PullRequestDraft:
    return PullRequestDraft(branch=branch, base="main", title=title, body="Asked in #general")


@pytest.fixture
def forge() -> LocalForge:
    return LocalForge()


def test_opens_then_finds_the_same_pull_request(forge: LocalForge, env: Environment,
                                                origin: Path, tmp_path: Path) -> None:
    head = _push_branch(env, tmp_path, "chatops/one")

    first = forge.open_pull_request(env, _draft("chatops/one"))
    again = forge.open_pull_request(env, _draft("chatops/one", title="redelivered"))

    assert first.number == 1 and again == first
    assert (first.forge, first.branch, first.base) == ("local", "chatops/one", "main")
    assert (first.title, first.body) == ("Fix the README", "Asked in #general")
    record_path = origin / "chatops" / "pulls" / "1.json"
    assert first.url == record_path.as_uri()
    record = json.loads(record_path.read_text())
    assert record["number"] == 1 and record["state"] == "open" and record["head"] == head
    assert record["created_at"].endswith("+00:00")
    assert sorted(p.name for p in record_path.parent.iterdir()) == [".lock", "1.json"]


def test_another_branch_gets_the_next_number(forge: LocalForge, env: Environment,
                                             origin: Path, tmp_path: Path) -> None:
    _push_branch(env, tmp_path, "chatops/one")
    _push_branch(env, tmp_path, "chatops/two", b"two\n")

    one = forge.open_pull_request(env, _draft("chatops/one"))
    two = forge.open_pull_request(env, _draft("chatops/two"))

    assert (one.number, two.number) == (1, 2)
    assert forge.list_pull_requests(str(origin)) == [one, two]
    assert forge.get_pull_request(str(origin), 2) == two


def test_a_closed_pull_request_is_not_reused(forge: LocalForge, env: Environment, origin: Path,
                                             tmp_path: Path) -> None:
    _push_branch(env, tmp_path, "chatops/one")
    first = forge.open_pull_request(env, _draft("chatops/one"))
    path = origin / "chatops" / "pulls" / "1.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "state": "closed"}))

    assert forge.open_pull_request(env, _draft("chatops/one")).number == first.number + 1


def test_concurrent_opens_get_distinct_numbers(forge: LocalForge, env: Environment,
                                               origin: Path, tmp_path: Path) -> None:
    branches = [f"chatops/t{i}" for i in range(8)]
    for branch in branches:
        _push_branch(env, tmp_path, branch, branch.encode())
    # Each branch twice: a redelivered job racing its first delivery.
    drafts = [_draft(branch) for branch in branches * 2]

    with ThreadPoolExecutor(max_workers=16) as pool:
        opened = list(pool.map(lambda d: LocalForge().open_pull_request(env, d), drafts))

    by_branch = {pr.branch: pr.number for pr in opened}
    assert sorted(by_branch.values()) == list(range(1, 9))
    assert all(by_branch[pr.branch] == pr.number for pr in opened)
    assert len(forge.list_pull_requests(str(origin))) == 8


def test_diff_shows_the_change(forge: LocalForge, env: Environment, origin: Path,
                               tmp_path: Path) -> None:
    _push_branch(env, tmp_path, "chatops/one", b"# better\n")
    pr = forge.open_pull_request(env, _draft("chatops/one"))
    # main moving on afterwards does not show up: the diff is from where the branch left it.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    (other / "later.txt").write_text("later\n")
    git(other, "add", "later.txt")
    git(other, "commit", "-q", "-m", "later")
    git(other, "push", "-q", "origin", "main")

    diff = forge.pull_request_diff(str(origin), pr.number)

    assert b"-# demo\n+# better\n" in diff
    assert b"GIT binary patch" in diff and b"image.bin" in diff
    assert b"later.txt" not in diff
    # It is a real patch: it applies to the base it was cut from.
    check = tmp_path / "check"
    git(tmp_path, "clone", "-q", str(origin), str(check))
    git(check, "checkout", "-q", "HEAD~1")
    git(check, "apply", "--binary", "--index", "-", input=diff)
    assert (check / "image.bin").read_bytes() == BINARY


def test_the_branch_must_have_been_pushed(forge: LocalForge, env: Environment,
                                          origin: Path) -> None:
    with pytest.raises(ForgeError) as caught:
        forge.open_pull_request(env, _draft("chatops/never-pushed"))
    assert "'chatops/never-pushed' was not pushed" in caught.value.message
    assert "publish" in caught.value.hint
    assert not (origin / "chatops").exists()


def test_the_base_must_exist(forge: LocalForge, env: Environment, tmp_path: Path) -> None:
    _push_branch(env, tmp_path, "chatops/one")
    draft = PullRequestDraft(branch="chatops/one", base="trunk", title="t", body="")
    with pytest.raises(ForgeError, match="base branch 'trunk' does not exist"):
        forge.open_pull_request(env, draft)


def test_unknown_number(forge: LocalForge, origin: Path) -> None:
    with pytest.raises(ForgeError, match="no pull request #7"):
        forge.get_pull_request(str(origin), 7)
    with pytest.raises(ForgeError, match="no pull request #7"):
        forge.pull_request_diff(str(origin), 7)
    assert forge.list_pull_requests(str(origin)) == []


def test_a_file_url_names_the_same_repository(forge: LocalForge, env: Environment,
                                              origin: Path, tmp_path: Path) -> None:
    _push_branch(env, tmp_path, "chatops/one")
    by_url = Environment(name="demo", repository=origin.as_uri())
    assert forge.open_pull_request(by_url, _draft("chatops/one")).number == 1
    assert forge.open_pull_request(env, _draft("chatops/one")).number == 1


def test_not_a_local_bare_repository(forge: LocalForge, origin: Path, tmp_path: Path) -> None:
    working = tmp_path / "working"
    git(tmp_path, "clone", "-q", str(origin), str(working))
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    cases = {
        str(tmp_path / "missing.git"): "does not exist",
        str(working): "is a working tree, not a bare repository",
        str(working / ".git"): "is a working tree, not a bare repository",
        str(plain_dir): "is not a git repository",
        "https://tok3n@github.com/o/r.git": "needs a bare repository on disk",
        "git@github.com:o/r.git": "needs a bare repository on disk",
    }
    for repository, message in cases.items():
        env = Environment(name="demo", repository=repository)
        with pytest.raises(ForgeError, match=message) as caught:
            forge.open_pull_request(env, _draft("main"))
        assert caught.value.hint
        assert "tok3n" not in str(caught.value)
        with pytest.raises(ForgeError, match=message):
            forge.list_pull_requests(repository)


def test_reads_do_not_need_a_lock_or_a_half_written_file(forge: LocalForge, env: Environment,
                                                         origin: Path, tmp_path: Path) -> None:
    _push_branch(env, tmp_path, "chatops/one")
    forge.open_pull_request(env, _draft("chatops/one"))
    # A scratch file left by a writer that died mid-way is not a pull request.
    (origin / "chatops" / "pulls" / ".deadbeef.tmp").write_text('{"number": 9')
    assert [pr.number for pr in forge.list_pull_requests(str(origin))] == [1]
    assert text(origin, "rev-parse", "chatops/one")
