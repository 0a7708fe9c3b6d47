"""Running the host's ``git``: hermetic, promptless, hook-free, and quiet about credentials.

Every git process chatops starts goes through :func:`run_git`, which

- builds its environment from scratch (:func:`git_environment`): the caller's ``GIT_*``
  variables are dropped, so a worker started from inside a hook or a checkout (``GIT_DIR``,
  ``GIT_INDEX_FILE``, ``GIT_WORK_TREE`` ...) cannot redirect it at another repository, and
  the system and global config files are ignored, so an operator's ``commit.gpgSign``,
  ``apply.whitespace=fix`` or ``diff.noprefix`` cannot change what we commit or collect;
- passes configuration through ``GIT_CONFIG_COUNT`` rather than ``-c`` arguments, so a token
  handed in for one push is never visible in ``ps``;
- disables hooks and the fsmonitor (both run programs named by repository config);
- never prompts: no terminal (``GIT_TERMINAL_PROMPT=0``, a new session, ssh in batch mode);
- raises :class:`RepositoryError` carrying git's own message with URL userinfo and any
  configured secret values removed.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatops.core.errors import RepositoryError

log = logging.getLogger(__name__)

# 10 minutes: a clone or push of a large repository over a slow link, yet a hung remote still
# frees the worker well before the job's own limit.
DEFAULT_TIMEOUT_S = 600
# Lines of git's stderr kept in an error message: the cause is at the end, the rest is noise.
STDERR_TAIL_LINES = 20

# Host variables git may still see: how to reach remotes (ssh, the CAs to trust). Everything
# else that starts with GIT_ locates a repository, injects config, changes identities, or
# (GIT_TRACE_CURL) writes headers with tokens to the log.
_KEPT_GIT_VARIABLES = frozenset({
    "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
})
# git refuses a repository owned by another user, and -c safe.directory cannot help: git
# clears command-line config for the upload-pack or receive-pack it runs on a local path.
_FOREIGN_OWNER_HINT = (
    "git refuses repositories that belong to another user: run the worker as the repository's"
    " owner, or give the repository to the worker's user"
)

# Applied to every command. hooksPath=/dev/null makes git look for hooks in a directory that
# cannot exist; the fsmonitor would run a program named in the repository's config.
HARDENING: Mapping[str, str] = {
    "core.hooksPath": "/dev/null",
    "core.fsmonitor": "false",
    "commit.gpgSign": "false",
    "tag.gpgSign": "false",
    "credential.interactive": "false",
}

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")
_SCP_LIKE = re.compile(r"^[^/]*:")


def display_url(repository: str) -> str:
    """``repository`` fit for a message: the userinfo (tokens, passwords) of a URL removed."""
    return _USERINFO.sub(r"\g<scheme>", repository)


def is_local(repository: str) -> bool:
    """True for a path on disk, False for a URL or an scp-like ``host:path`` (git's own rule)."""
    return "://" not in repository and not _SCP_LIKE.match(repository)


def source_for_git(repository: str) -> str:
    """What to hand git as the remote: absolute paths for local repositories.

    Absolute because git runs in the destination directory, and so that a repository named
    ``-x`` can never be read as an option.
    """
    if is_local(repository):
        return os.path.abspath(os.path.expanduser(repository))
    return repository


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL userinfo and every non-empty ``secrets`` value replaced."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return display_url(text)


def git_environment(
    extra: Mapping[str, str] | None = None,
    config: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one git process.

    ``base`` (default ``os.environ``) minus its ``GIT_*`` variables, plus ``config`` and the
    hardening (which wins) as ``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``, plus ``extra``.
    """
    source = os.environ if base is None else base
    env = {
        key: value
        for key, value in source.items()
        if not key.startswith("GIT_") or key in _KEPT_GIT_VARIABLES
    }
    env.update(
        {
            # Only the repository's own config and what we pass: see the module docstring.
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            # Messages we parse ("couldn't find remote ref") and show are git's English ones.
            "LC_ALL": "C",
            "LANGUAGE": "C",
            "GIT_ADVICE": "0",
        }
    )
    if "GIT_SSH" not in env and "GIT_SSH_COMMAND" not in env:
        # ssh asks for passphrases and host-key confirmations on /dev/tty otherwise.
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    # The hardening last: no caller-supplied entry may turn hooks back on.
    entries = {**(config or {}), **HARDENING}
    env["GIT_CONFIG_COUNT"] = str(len(entries))
    for index, (key, value) in enumerate(entries.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "surrogateescape").strip()


def run_git(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    config: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
    what: str | None = None,
) -> GitResult:
    """Run ``git *args`` in ``cwd``.

    ``env`` adds variables (identities, dates); ``config`` adds configuration whose values are
    treated as secrets. With ``check`` (the default) a non-zero exit raises RepositoryError
    described by ``what`` (default: ``git <subcommand>``); otherwise the result is returned
    for the caller to interpret. A command still running after ``timeout`` seconds is killed,
    with every process it started.
    """
    secrets = list((config or {}).values())
    label = what or (f"git {args[0]}" if args else "git")
    log.debug("running git %s in %s", redact(" ".join(args[:1]), secrets), cwd)
    try:
        proc = subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            env=git_environment(env, config),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Its own session: no controlling terminal to prompt on, and one group to kill.
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise RepositoryError(
            f"cannot run git in {cwd}: {exc.strerror}",
            "install git on the worker's host and make sure it is on PATH",
        ) from None
    try:
        stdout, stderr_bytes = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RepositoryError(
            f"{label} did not finish within {timeout:g} s", "check that the remote is reachable"
        ) from None
    stderr = redact(stderr_bytes.decode("utf-8", "replace"), secrets)
    result = GitResult(proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise RepositoryError(f"{label} failed: {tail(stderr) or f'exit {proc.returncode}'}",
                              hint_for(stderr))
    return result


# What git prints when the remote answered 401/403 and it had no way to ask for a password.
_REFUSED_CREDENTIALS = ("unable to get password", "authentication failed",
                        "could not read username", "could not read password",
                        "the requested url returned error: 401",
                        "the requested url returned error: 403")
_REFUSED_HINT = ("the remote refused the worker's credentials: check that the forge token (for "
                 "GitHub: GITHUB_TOKEN, or the App's installation) may read and write this "
                 "repository (contents: write)")


def hint_for(stderr: str) -> str | None:
    """A fix for the failures git explains badly; None keeps the error's default hint."""
    if "dubious ownership" in stderr:
        return _FOREIGN_OWNER_HINT
    lowered = stderr.lower()
    if any(marker in lowered for marker in _REFUSED_CREDENTIALS):
        return _REFUSED_HINT
    return None


def tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last ``lines`` non-blank lines of git's stderr, joined on one line each."""
    kept = [line.strip() for line in stderr.splitlines() if line.strip()]
    return "; ".join(kept[-lines:])
