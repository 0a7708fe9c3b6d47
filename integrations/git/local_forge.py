"""A forge with no server: pull requests recorded next to the refs of a bare repository.

Each pull request is one JSON file, ``<bare>/chatops/pulls/<number>.json``::

    {"number": 1, "branch": "chatops/abc", "base": "main", "head": "<commit>",
     "title": "...", "body": "...", "created_at": "2024-05-01T12:00:00+00:00", "state": "open"}

Git ignores unknown directories in a repository, so the records live with the branches they
describe and travel with a copy of the repository. Setting ``state`` to anything but
``open`` (by hand, for now) closes a pull request.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatops.core.environment import Environment
from chatops.core.errors import ForgeError
from chatops.core.ports import PullRequestDraft
from chatops.core.task import PullRequest
from integrations.git.bare import bare_repository, branch_commit, branch_diff

FORGE_NAME = "local"
# Relative to the bare repository.
PULLS_DIR = Path("chatops") / "pulls"
OPEN = "open"


class LocalForge:
    """The Forge port for environments whose ``repository`` is a bare repository on disk."""

    def open_pull_request(self, env: Environment, draft: PullRequestDraft) -> PullRequest:
        """Open a pull request for ``draft.branch``, or return the one already open for it.

        The look-up and the creation happen under an exclusive lock on the pulls directory,
        so a redelivered job racing its first delivery still gets the same pull request; the
        number itself is claimed with an atomic exclusive create, so two writers can never
        share one even where the lock is not honoured.
        """
        bare = bare_repository(env.repository)
        head = branch_commit(bare, draft.branch)
        if head is None:
            raise ForgeError(f"branch {draft.branch!r} was not pushed to {bare}",
                             "publish the branch before opening its pull request")
        if branch_commit(bare, draft.base) is None:
            raise ForgeError(f"base branch {draft.base!r} does not exist in {bare}",
                             "check the environment's `base_branch`")
        pulls = bare / PULLS_DIR
        pulls.mkdir(parents=True, exist_ok=True)
        with _locked(pulls / ".lock"):
            for record in _records(pulls):
                if record.get("branch") == draft.branch and record.get("state") == OPEN:
                    return _pull_request(pulls, record)
            record = {
                "branch": draft.branch,
                "base": draft.base,
                "head": head,
                "title": draft.title,
                "body": draft.body,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "state": OPEN,
            }
            return _pull_request(pulls, _create(pulls, record))

    def comment(self, env: Environment, number: int, body: str) -> None:
        """Append a comment (with its time) to the record's ``comments`` list."""
        bare = bare_repository(env.repository)
        pulls = bare / PULLS_DIR
        with _locked(pulls / ".lock"):
            record = _record(bare, number)
            record.setdefault("comments", []).append(
                {"body": body, "created_at": datetime.now(UTC).isoformat(timespec="seconds")})
            _rewrite(pulls / f"{number}.json", record)

    def comments(self, repository: str, number: int) -> list[str]:
        return [str(c.get("body", "")) for c in _record(bare_repository(repository), number)
                .get("comments", [])]

    def list_pull_requests(self, repository: str) -> list[PullRequest]:
        """Every pull request of ``repository``, open or not, by number."""
        pulls = bare_repository(repository) / PULLS_DIR
        return [_pull_request(pulls, record) for record in _records(pulls)]

    def get_pull_request(self, repository: str, number: int) -> PullRequest:
        bare = bare_repository(repository)
        return _pull_request(bare / PULLS_DIR, _record(bare, number))

    def pull_request_diff(self, repository: str, number: int) -> bytes:
        """The pull request's change as a binary-safe patch: ``git diff base...branch``."""
        bare = bare_repository(repository)
        record = _record(bare, number)
        return branch_diff(bare, record["base"], record["branch"])


def _record(bare: Path, number: int) -> dict[str, Any]:
    record = _read(bare / PULLS_DIR / f"{number}.json")
    if record is None:
        raise ForgeError(f"there is no pull request #{number} in {bare}",
                         "list the repository's pull requests to find its number")
    return record


def _records(pulls: Path) -> list[dict[str, Any]]:
    if not pulls.is_dir():
        return []
    found = (_read(path) for path in pulls.glob("*.json") if path.stem.isdigit())
    return sorted((record for record in found if record is not None),
                  key=lambda record: int(record.get("number", 0)))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ForgeError(f"cannot read pull request record {path}: {exc}",
                         "fix or remove the file") from None
    if not isinstance(data, dict):
        raise ForgeError(f"pull request record {path} is not a JSON object", "fix the file")
    return data


def _create(pulls: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` under the next free number and return it with that number.

    The record is written in full to a private file first and then hard-linked to its
    numbered name: ``link`` fails if the name exists (an O_EXCL create, atomically), and a
    reader never sees a half-written record.
    """
    numbers = [int(path.stem) for path in pulls.glob("*.json") if path.stem.isdigit()]
    number = max(numbers, default=0) + 1
    scratch = pulls / f".{uuid.uuid4().hex}.tmp"
    try:
        while True:
            numbered = {"number": number, **record}
            scratch.write_text(json.dumps(numbered, indent=2) + "\n", encoding="utf-8")
            try:
                os.link(scratch, pulls / f"{number}.json")
            except FileExistsError:
                number += 1
                continue
            return numbered
    finally:
        scratch.unlink(missing_ok=True)


def _rewrite(path: Path, record: dict[str, Any]) -> None:
    # Write aside, then rename over: readers see the old record or the new one, never half.
    scratch = path.with_name(f".{uuid.uuid4().hex}.tmp")
    scratch.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(scratch, path)


def _pull_request(pulls: Path, record: dict[str, Any]) -> PullRequest:
    try:
        return PullRequest(
            forge=FORGE_NAME,
            number=int(record["number"]),
            url=(pulls / f"{record['number']}.json").as_uri(),
            branch=str(record["branch"]),
            base=str(record["base"]),
            title=str(record.get("title", "")),
            body=str(record.get("body", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ForgeError(f"pull request record in {pulls} is incomplete: {exc}",
                         "fix the file") from None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
