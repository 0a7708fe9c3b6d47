"""A bare git repository on disk, as the local forge reads it.

The forge only reads (refs, diffs); it runs git with the same hermetic environment as the
rest of this package (``commands.git_environment``), but maps failures to ForgeError.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from chatops.core.errors import ForgeError
from integrations.git.commands import git_environment

# 2 minutes: reading refs or diffing two branches of a local repository.
GIT_TIMEOUT_S = 120

_SCP_LIKE = re.compile(r"^[^/]*:")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")


def bare_repository(repository: str | Path) -> Path:
    """The directory of the bare repository ``repository`` names (a path or a file:// URL).

    Raises ForgeError, with the fix, for a URL, a missing directory or a non-bare repository.
    """
    text = str(repository)
    if text.startswith("file://"):
        text = unquote(urlparse(text).path)
    elif "://" in text or _SCP_LIKE.match(text):
        shown = _USERINFO.sub(r"\g<scheme>", text)
        raise ForgeError(
            f"the local forge needs a bare repository on disk, not {shown}",
            "set the environment's `repository` to a path such as /srv/git/demo.git,"
            " or use a forge for that host",
        )
    path = Path(os.path.abspath(os.path.expanduser(text)))
    if not path.is_dir():
        raise ForgeError(f"repository {path} does not exist",
                         f"create it with `git init --bare {path}` and push to it")
    bare = _try_git(path, ["rev-parse", "--is-bare-repository"])
    if bare is None or bare.strip() != b"true":
        if (path / ".git").exists() or bare is not None:
            raise ForgeError(
                f"{path} is a working tree, not a bare repository",
                f"make a bare copy with `git clone --bare {path} {path}.git` and point the"
                " environment at it",
            )
        raise ForgeError(f"{path} is not a git repository",
                         f"create it with `git init --bare {path}` and push to it")
    return path


def branch_commit(bare: Path, branch: str) -> str | None:
    """The commit ``refs/heads/<branch>`` points at, or None if there is no such branch."""
    out = _try_git(bare, ["rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}"])
    return out.decode().strip() if out else None


def branch_diff(bare: Path, base: str, branch: str) -> bytes:
    """``git diff --binary base...branch``: what the branch changed since it left ``base``."""
    for name in (base, branch):
        if branch_commit(bare, name) is None:
            raise ForgeError(f"branch {name!r} is no longer in {bare}",
                             "push it again, or close the pull request")
    result = _git(bare, ["diff", "--binary", "-M", "--no-color", "--no-ext-diff",
                         "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/",
                         f"refs/heads/{base}...refs/heads/{branch}", "--"])
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ForgeError(f"git diff failed in {bare}: {message[-1] if message else ''}")
    return result.stdout


def _try_git(bare: Path, args: Sequence[str]) -> bytes | None:
    """stdout of ``git --git-dir=<bare> *args``, or None if it failed."""
    result = _git(bare, args)
    return result.stdout if result.returncode == 0 else None


def _git(bare: Path, args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    # An explicit --git-dir: git never searches parent directories for another repository.
    try:
        return subprocess.run(
            ["git", f"--git-dir={bare}", *args], env=git_environment(), cwd=bare,
            capture_output=True, stdin=subprocess.DEVNULL, timeout=GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ForgeError(f"cannot run git on {bare}: {exc}",
                         "install git on this host and check the repository") from None
