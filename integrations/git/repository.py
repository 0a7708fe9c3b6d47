"""The Repository port on the host's git: check out, collect what changed, publish a branch."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from chatops.core.environment import Environment
from chatops.core.errors import NoChanges, PatchDoesNotApply, RepositoryError
from chatops.core.ports import CommitSpec
from chatops.core.task import Patch
from integrations.git.commands import (
    DEFAULT_TIMEOUT_S,
    GitResult,
    display_url,
    hint_for,
    run_git,
    source_for_git,
    tail,
)
from integrations.git.patches import (
    AppliedPatch,
    apply_to_worktree,
    conflicting_paths,
    parse_numstat,
)

__all__ = ["DEFAULT_DEPTH", "AppliedPatch", "GitRepository", "NetworkConfig", "apply_to_worktree"]

# 1 commit: the agent works on a tree, not on history, and a shallow .git is what the sandbox
# copies into every container. None fetches the whole history.
DEFAULT_DEPTH: int | None = 1

NetworkConfig = Mapping[str, str] | Callable[[str], Mapping[str, str]]
"""Git configuration for fetches and pushes: fixed, or made per command from the repository.

The only git settings from outside that reach git, and only its transport commands; the
operator's own git config files are ignored (see ``integrations.git.commands``). Fixed
entries suit what an operator sets once (``http.proxy``, ``url.<base>.insteadOf``). A
callable suits credentials that expire between commands: a forge returns, say,
``{"http.extraHeader": "Authorization: Basic ..."}`` for a GitHub App installation token.
Values reach git through its environment, never its arguments, and are redacted from errors.
"""

_FULL_COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SHORT_COMMIT_ID = re.compile(r"[0-9a-f]{4,39}")
_IDENT = re.compile(r"\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>]*)>\s*")
_NOT_FOUND = ("couldn't find remote ref", "not our ref", "unadvertised object",
              "no such remote ref", "not a valid object")
_UNREADABLE = ("does not appear to be a git repository", "not a git repository",
               "could not read from remote repository", "repository not found",
               "unable to access", "could not resolve host")


class GitRepository:
    """Repository port implementation: the ``git`` binary on the worker's host.

    ``depth`` bounds what checkouts fetch (see DEFAULT_DEPTH); ``network_config`` is the git
    configuration of fetches and pushes, credentials included (see NetworkConfig);
    ``scratch_dir`` holds publish's temporary clones (default: the system's temporary
    directory); ``timeout`` bounds each fetch and push, in seconds.
    """

    def __init__(
        self,
        *,
        depth: int | None = DEFAULT_DEPTH,
        network_config: NetworkConfig | None = None,
        scratch_dir: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if depth is not None and depth < 1:
            raise ValueError("depth must be a positive number of commits, or None")
        self.depth = depth
        self.network_config = network_config
        self.scratch_dir = scratch_dir
        self.timeout = timeout

    # -- checkout ---------------------------------------------------------------------------

    def checkout(self, env: Environment, dest: Path, ref: str | None = None) -> str:
        """Clone ``env.repository`` into ``dest`` at ``ref`` (a branch, or a full commit id).

        ``dest`` must be missing or empty. A branch is checked out as a local branch of that
        name, a commit as a detached HEAD. Works the same for a path on disk and a URL: a new
        repository fetches just what it needs (``depth`` commits of that one ref), which for a
        local path beats a hard-linked clone of all history in one respect that matters here:
        the sandbox copies the workspace, ``.git`` included, into every container. On failure
        ``dest`` is left as it was found.
        """
        dest = Path(dest)
        created = _prepare_destination(dest)
        try:
            return self._checkout(env.repository, dest, ref or env.base_branch)
        except BaseException:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                _empty(dest)
            raise

    def _checkout(self, repository: str, dest: Path, ref: str) -> str:
        if not _FULL_COMMIT_ID.fullmatch(ref):
            _check_branch_name(dest, ref)
        run_git(["init", "-q", f"--initial-branch={_initial_branch(ref)}"], dest)
        # The workspace is copied into containers: its remote must never carry credentials.
        run_git(["remote", "add", "origin", display_url(source_for_git(repository))], dest)
        if _FULL_COMMIT_ID.fullmatch(ref):
            self._fetch(repository, dest, ref, what=f"commit {ref}")
            run_git(["checkout", "-q", "--detach", ref], dest)
        else:
            tracking = f"refs/remotes/origin/{ref}"
            self._fetch(repository, dest, f"+refs/heads/{ref}:{tracking}", what=f"branch {ref!r}")
            run_git(["checkout", "-q", "-B", ref, tracking], dest)
        return run_git(["rev-parse", "HEAD"], dest).text

    def _fetch(self, repository: str, cwd: Path, refspec: str, what: str) -> None:
        shown = display_url(repository)
        depth = [f"--depth={self.depth}"] if self.depth else []
        result = self._network(
            ["fetch", "-q", "--no-tags", "--no-recurse-submodules", *depth], repository, cwd,
            [refspec],
        )
        if result.returncode == 0:
            return
        cause = result.stderr.lower()
        if any(marker in cause for marker in _NOT_FOUND):
            raise RepositoryError(f"{what} not found in {shown}", _not_found_hint(what))
        if any(marker in cause for marker in _UNREADABLE):
            raise RepositoryError(f"cannot read repository {shown}: {tail(result.stderr)}",
                                  hint_for(result.stderr))
        raise RepositoryError(f"cannot fetch {what} from {shown}: {tail(result.stderr)}",
                              hint_for(result.stderr))

    def _network(self, args: list[str], repository: str, cwd: Path, refs: list[str]) -> GitResult:
        config = self.network_config or {}
        if callable(config):
            config = config(repository)
        # "--" first: neither the repository nor a ref can then be taken for an option.
        return run_git([*args, "--", source_for_git(repository), *refs], cwd, config=config,
                       check=False, timeout=self.timeout)

    # -- collect ----------------------------------------------------------------------------

    def collect_patch(self, workdir: Path) -> Patch:
        """Stage everything in ``workdir`` (``.gitignore`` honoured); diff it against HEAD.

        ``workdir`` must be the top of a git working tree: never a directory inside another
        repository, whose whole tree ``git add -A`` would otherwise stage. The patch is
        ``git diff --binary`` with renames detected; binary files count as changed files.
        """
        workdir = Path(workdir)
        _require_toplevel(workdir)
        run_git(["add", "-A"], workdir)
        base = _head_or_empty_tree(workdir)
        # Explicit prefixes and no external or textconv drivers: the output must stay a patch
        # `git apply` takes, whatever the repository's config says.
        options = ["--cached", "-M", "--no-color", "--no-ext-diff", "--no-textconv"]
        data = run_git(
            ["diff", *options, "--binary", "--src-prefix=a/", "--dst-prefix=b/", base, "--"],
            workdir,
        ).stdout
        if not data.strip():
            return Patch(data=b"")
        stat = parse_numstat(run_git(["diff", *options, "--numstat", "-z", base, "--"],
                                     workdir).stdout)
        return Patch(data=data, files_changed=stat.files_changed, insertions=stat.insertions,
                     deletions=stat.deletions)

    # -- publish ----------------------------------------------------------------------------

    def publish(self, env: Environment, commit: CommitSpec) -> str:
        """Commit ``commit.patch`` on ``commit.base_commit`` and push it as ``commit.branch``.

        Works in a temporary clone holding only the base commit, and applies the patch to the
        index alone (``git apply --cached``): no files are checked out, and nothing in the
        clone can run. The commit is made with ``git commit-tree`` from the spec's author (as
        committer too), date (both dates) and message, so the same spec always yields the same
        commit id and re-publishing it pushes nothing. The push never forces: a branch that
        already points elsewhere is an error, not something to overwrite.

        Raises NoChanges for an empty patch, PatchDoesNotApply when it conflicts with the base,
        RepositoryError for everything git or the remote refused.
        """
        if commit.patch.empty:
            raise NoChanges("the patch is empty; there is nothing to commit")
        if not _FULL_COMMIT_ID.fullmatch(commit.base_commit):
            raise RepositoryError(f"base commit {commit.base_commit!r} is not a full commit id",
                                  "pass the id `checkout` returned")
        identity = _identity(commit.author, commit.date)
        repository, shown = env.repository, display_url(env.repository)
        with tempfile.TemporaryDirectory(prefix="chatops-publish-", dir=self.scratch_dir) as tmp:
            work = Path(tmp)
            _check_branch_name(work, commit.branch)
            run_git(["init", "-q"], work)
            self._fetch(repository, work, commit.base_commit,
                        what=f"base commit {commit.base_commit}")
            run_git(["read-tree", commit.base_commit], work)
            applied = run_git(["apply", "--cached", "--binary", "--whitespace=nowarn", "-"],
                              work, input=commit.patch.data, check=False)
            if applied.returncode != 0:
                named = ", ".join(conflicting_paths(applied.stderr)) or tail(applied.stderr)
                raise PatchDoesNotApply(
                    f"the patch does not apply on {commit.base_commit[:12]} of {shown}: {named}"
                )
            tree = run_git(["write-tree"], work).text
            if tree == run_git(["rev-parse", f"{commit.base_commit}^{{tree}}"], work).text:
                raise NoChanges("the patch changes nothing on the base commit")
            made = run_git(["commit-tree", tree, "-p", commit.base_commit, "-F", "-"], work,
                           env=identity, input=_message(commit.message)).text
            self._push(repository, work, made, commit.branch)
        return made

    def _push(self, repository: str, cwd: Path, commit: str, branch: str) -> None:
        shown = display_url(repository)
        result = self._network(["push", "--porcelain", "--no-verify"], repository, cwd,
                               [f"{commit}:refs/heads/{branch}"])
        if result.returncode == 0:
            return
        report = result.stdout.decode("utf-8", "replace") + "\n" + result.stderr
        if "[remote rejected]" in report:
            raise RepositoryError(f"{shown} refused branch {branch!r}: {tail(report, 4)}",
                                  "read the remote's message; a server-side hook declined it")
        if "[rejected]" in report:
            raise RepositoryError(
                f"branch {branch!r} already exists in {shown} at another commit;"
                " it was not overwritten",
                "delete that branch, or deliver the task to a new branch",
            )
        raise RepositoryError(f"cannot push branch {branch!r} to {shown}: {tail(result.stderr)}",
                              hint_for(result.stderr))


# -- helpers --------------------------------------------------------------------------------


def _prepare_destination(dest: Path) -> bool:
    """Make sure ``dest`` is an empty directory; True if it had to be created."""
    if dest.exists():
        if not dest.is_dir() or any(dest.iterdir()):
            raise RepositoryError(f"cannot check out into {dest}: it is not an empty directory",
                                  "give checkout a new or empty directory")
        return False
    dest.mkdir(parents=True)
    return True


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _initial_branch(ref: str) -> str:
    # Any valid name does for a commit checkout: the unborn branch disappears on --detach.
    return "main" if _FULL_COMMIT_ID.fullmatch(ref) else ref


def _not_found_hint(what: str) -> str:
    if what.startswith("branch"):
        name = what.split(" ", 1)[1].strip("'\"")
        if _SHORT_COMMIT_ID.fullmatch(name):
            return "to check out a commit, give its full 40-character id"
        return "push that branch, or set the environment's `base_branch` to one that exists"
    return ("push that commit to the repository, or use a commit it contains (a server that"
            " only speaks git protocol v0 may also refuse to serve a commit by its id)")


def _require_toplevel(workdir: Path) -> None:
    result = run_git(["rev-parse", "--show-toplevel"], workdir, check=False)
    if result.returncode != 0 or Path(result.text).resolve() != workdir.resolve():
        raise RepositoryError(
            f"{workdir} is not the top of a git checkout",
            "collect from the directory `checkout` created",
        )


def _head_or_empty_tree(workdir: Path) -> str:
    head = run_git(["rev-parse", "--verify", "-q", "HEAD^{commit}"], workdir, check=False)
    if head.returncode == 0:
        return head.text
    # No commit yet: everything is an addition. Hashing the empty tree gives its id in
    # whichever object format (SHA-1 or SHA-256) the repository uses.
    return run_git(["hash-object", "-t", "tree", "--stdin"], workdir, input=b"").text


def _check_branch_name(cwd: Path, branch: str) -> None:
    valid = run_git(["check-ref-format", f"refs/heads/{branch}"], cwd, check=False)
    if valid.returncode != 0 or branch.startswith("-"):
        raise RepositoryError(f"{branch!r} is not a valid branch name",
                              "see `git help check-ref-format` for the rules")


def _identity(author: str, date: datetime) -> dict[str, str]:
    match = _IDENT.fullmatch(author)
    if not match or not match.group("name") or not match.group("email"):
        raise RepositoryError(f"invalid commit author {author!r}",
                              "give it as 'Name <email@example.com>'")
    when = _git_date(date)
    name, email = match.group("name"), match.group("email")
    return {
        "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_COMMITTER_DATE": when,
    }


def _git_date(date: datetime) -> str:
    """Git's raw date format, ``@<seconds> <+hhmm>``; a naive datetime is taken as UTC.

    The "@" keeps git from guessing at timestamps that look like other date formats.
    """
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    offset = date.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"@{int(date.timestamp())} {sign}{hours:02d}{mins:02d}"


def _message(message: str) -> bytes:
    # Roughly `git commit --cleanup=whitespace` (trailing spaces and surrounding blank lines
    # go, "#" lines stay): commit-tree would otherwise store the text verbatim.
    lines = [line.rstrip() for line in message.strip().splitlines()]
    return ("\n".join(lines) + "\n").encode("utf-8")
