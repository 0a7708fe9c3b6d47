"""Patches as git sees them: their stat, why one does not apply, applying one to a worktree."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chatops.core.errors import NoChanges, PatchDoesNotApply, RepositoryError
from integrations.git.commands import run_git

# The ways `git apply` names a path it could not handle, conflicts of --3way included.
_PATH_MESSAGES = (
    re.compile(r"^error: patch failed: (?P<path>.+):\d+$"),
    re.compile(r"^error: (?P<path>.+): (?:patch does not apply|does not match index"
               r"|already exists in (?:working directory|index)|does not exist in index"
               r"|No such file or directory|wrong type|has type \d+, expected \d+)$"),
    re.compile(r"^error: (?:cannot|could not) .*?'(?P<path>[^']+)'"),
    re.compile(r"^Applied patch to '(?P<path>.+)' with conflicts\.$"),
    re.compile(r"^U (?P<path>.+)$"),
)


@dataclass(frozen=True)
class Stat:
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0


def numstat_entries(output: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """``(added, deleted, path)`` for each file of a ``--numstat -z`` listing.

    With ``-z`` a rename is ``added<TAB>deleted<TAB><NUL>old<NUL>new<NUL>`` (its new path is
    given); anything else is ``added<TAB>deleted<TAB>path<NUL>``. A binary file counts ``-``.
    """
    tokens = output.split(b"\0")
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.strip():
            continue
        added, deleted, path = token.split(b"\t", 2)
        if not path and index + 1 < len(tokens):
            path, index = tokens[index + 1], index + 2
        yield added, deleted, path


def parse_numstat(output: bytes) -> Stat:
    """Counts from ``git diff --numstat -z``; a binary file counts as one changed file."""
    files = insertions = deletions = 0
    for added, deleted, _ in numstat_entries(output):
        files += 1
        insertions += int(added) if added.isdigit() else 0
        deletions += int(deleted) if deleted.isdigit() else 0
    return Stat(files, insertions, deletions)


def conflicting_paths(stderr: str) -> list[str]:
    """The paths ``git apply`` complained about, in order, each once."""
    found: dict[str, None] = {}
    for line in stderr.splitlines():
        for pattern in _PATH_MESSAGES:
            match = pattern.match(line.strip())
            if match:
                found[_unquote(match.group("path"))] = None
                break
    return list(found)


def _unquote(path: str) -> str:
    # git quotes unusual names C-style ("d\303\251j\303\240.txt"); show them as people typed them.
    if len(path) >= 2 and path[0] == path[-1] == '"':
        raw = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return raw.encode("latin-1").decode("utf-8", "replace")
    return path


@dataclass(frozen=True)
class AppliedPatch:
    """What :func:`apply_to_worktree` did.

    ``merged`` is True when a plain apply failed and a clean three-way merge was used; git
    then also stages the result.
    """

    files: tuple[str, ...]
    merged: bool


def apply_to_worktree(cwd: Path, patch: bytes, check_only: bool = False) -> AppliedPatch:
    """Apply a task's patch to the git working tree that contains ``cwd``.

    Tries a plain ``git apply`` first (the worktree only, the index untouched), then a
    three-way merge against the blobs the patch records. Either the whole patch applies or
    nothing changes: a three-way merge is only attempted once a dry run shows it merges
    without conflicts, so no conflict markers are ever left behind. With ``check_only``
    nothing is written at all.

    Raises PatchDoesNotApply naming the conflicting files, NoChanges for an empty patch, and
    RepositoryError when ``cwd`` is not inside a git working tree.
    """
    if not patch.strip():
        raise NoChanges("the patch is empty; there is nothing to apply")
    top = _toplevel(cwd)
    # From the top level: in a subdirectory, git apply silently skips paths outside it.
    files = tuple(_patched_paths(top, patch))
    plain = run_git(["apply", "--binary", "--check", "-"], top, input=patch, check=False)
    if plain.returncode == 0:
        if not check_only:
            run_git(["apply", "--binary", "-"], top, input=patch, what="git apply")
        return AppliedPatch(files, merged=False)
    merge = run_git(["apply", "--binary", "--3way", "--check", "-"], top, input=patch,
                    check=False)
    # A dry-run --3way exits 0 even when the merge would conflict; it says so on stderr.
    if merge.returncode != 0 or "with conflicts" in merge.stderr:
        # Each pass stops at different problems: name what either of them found.
        paths = conflicting_paths(merge.stderr + "\n" + plain.stderr)
        named = ", ".join(paths) if paths else "(git named no file)"
        raise PatchDoesNotApply(
            f"the patch does not apply to {top}: conflicts in {named}",
            "commit or stash your changes to those files, or check out the task's base commit"
            " and apply it there",
        )
    if not check_only:
        run_git(["apply", "--binary", "--3way", "-"], top, input=patch, what="git apply --3way")
    return AppliedPatch(files, merged=True)


def _toplevel(cwd: Path) -> Path:
    result = run_git(["rev-parse", "--show-toplevel"], cwd, check=False)
    if result.returncode != 0 or not result.text:
        raise RepositoryError(
            f"{cwd} is not inside a git working tree",
            "run the command from a clone of the task's repository",
        )
    return Path(result.text)


def _patched_paths(top: Path, patch: bytes) -> list[str]:
    result = run_git(["apply", "--numstat", "-z", "-"], top, input=patch, check=False)
    if result.returncode != 0:
        raise PatchDoesNotApply(f"the patch is not a valid git patch: {result.stderr.strip()}")
    return [path.decode("utf-8", "replace") for _, _, path in numstat_entries(result.stdout)]
