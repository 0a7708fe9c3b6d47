"""Moving a checkout into a container and the agent's result back out, as tar streams.

Into the container, ``pack_workspace`` writes the host checkout (its ``.git`` included, so the
agent can use git) under ``workspace/``, owned by the sandbox user.

Out of the container, ``unpack_workspace`` treats the stream as hostile: the agent controls
every name, mode and link target in it. It extracts into a staging directory next to the
host checkout with Python's ``data`` filter (nothing outside the destination, no device files,
no setuid bits, no ownership), caps the bytes written, and ignores the container's top-level
``.git`` (hooks or config planted there would run in the host's git). Only when all of that
succeeded is the host's working tree replaced; its own ``.git`` is never touched.

A symlink that leads out of the checkout fails the run (AgentFailed naming it) rather than
being dropped: dropping it would silently delete it in the pull request, and keeping it would
leave a path out of the checkout for whatever reads the tree on the host later. The one
exception is a link the host checkout already has, with the same target: it came with the
repository, and it is stored, never written through.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from chatops.core.errors import AgentFailed, WorkspaceTooLarge
from sandbox.images import AGENT_GID, AGENT_UID

log = logging.getLogger(__name__)

WORKSPACE_ROOT = "workspace"

_UNSAFE_LINK_HINT = (
    "symlinks in the checkout must be relative and stay inside it; tell the agent to remove "
    "or rewrite the link, or read the agent log with `chatops logs TASK`"
)


def pack_workspace(source: Path, out: BinaryIO, root: str = WORKSPACE_ROOT) -> None:
    """Write ``source`` (``.git`` included) to ``out`` as a tar whose members live under ``root/``.

    Members are owned by the sandbox user and symlinks are stored as links, never followed.
    Sockets are left out (tar cannot carry them).
    """

    def as_agent(member: tarfile.TarInfo) -> tarfile.TarInfo:
        return member.replace(
            uid=AGENT_UID, gid=AGENT_GID, uname="agent", gname="agent", deep=False
        )

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(source), arcname=root, recursive=True, filter=as_agent)


class PackedCheckout:
    """The host checkout packed once per run, rooted at ``.`` for putting at /workspace.

    Rooted at ``.`` rather than ``workspace/`` because an agent container's root is read-only
    and the engine refuses an archive put at ``/`` there; /workspace is a volume. The tar is
    put into the setup container and, when the setup snapshot is a cache entry (which holds
    no checkout), into the agent's workspace too.
    """

    def __init__(self, source: Path) -> None:
        self.source = source
        self._file: BinaryIO | None = None

    def open(self) -> BinaryIO:
        """The tar, positioned at its start; packed on the first call."""
        if self._file is None:
            # Kept open across the run's phases; ``close`` releases it.
            self._file = tempfile.TemporaryFile()  # noqa: SIM115
            pack_workspace(self.source, self._file, root=".")
        self._file.seek(0)
        return self._file

    def paths(self) -> tuple[list[str], list[str]]:
        """The relative paths put in, as (files and links, directories), ``.git`` left out."""
        files: list[str] = []
        dirs: list[str] = []
        # A seekable file: iterating reads the headers and skips the contents.
        with tarfile.open(fileobj=self.open(), mode="r:") as tar:
            for member in tar:
                name = str(PurePosixPath(member.name))
                if name == "." or _is_git(name):
                    continue
                (dirs if member.isdir() else files).append(name)
        return files, dirs

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what docker-py streams)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def unpack_workspace(
    chunks: Iterable[bytes],
    workspace: Path,
    *,
    limit: int,
    root: str = WORKSPACE_ROOT,
    on_skip: Callable[[str], None] | None = None,
) -> None:
    """Replace ``workspace``'s working tree (never its ``.git``) with the tar stream's ``root/``.

    ``limit`` caps the bytes of the regular files written to the host; it is counted from the
    member headers as the stream is read, so an oversized result stops before it lands.
    Skipped members (the container's ``.git``, fifos, device files) are reported through
    ``on_skip`` one line each. Raises WorkspaceTooLarge over the cap and AgentFailed for a
    member that would escape the checkout; in both cases the host checkout is left untouched.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{workspace.name}-collect-", dir=workspace.parent))
    try:
        extractor = _Extractor(staging, workspace, limit, root, on_skip or _log_skip)
        with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks)), mode="r|") as tar:
            # Safe: every member goes through extractor.filter (the data filter and more).
            tar.extractall(  # noqa: S202
                str(staging), members=extractor.members(tar), filter=extractor.filter
            )
        extractor.report()
        _replace_tree(workspace, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _log_skip(text: str) -> None:
    log.info("%s", text)


class _Extractor:
    """The per-member policy for ``unpack_workspace``; one instance per stream."""

    def __init__(
        self, staging: Path, workspace: Path, limit: int, root: str, on_skip: Callable[[str], None]
    ) -> None:
        self.staging = staging
        self.workspace = workspace
        self.limit = limit
        self.root = root
        self.on_skip = on_skip
        self.written = 0
        self.extracted: set[str] = set()
        self.git_members = 0

    def members(self, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        """Members renamed from ``root/x`` to ``x``; the root itself and ``.git`` dropped."""
        for member in tar:
            relative = self._relative(member.name)
            if relative is None:
                continue
            if _is_git(relative):
                self.git_members += 1
                continue
            if not member.islnk():
                yield member.replace(name=relative, deep=False)
                continue
            target = self._relative(member.linkname)
            if target is None or target not in self.extracted:
                # Stream-mode tar cannot seek back to the content of a link whose first copy
                # was skipped (e.g. a hard link into .git); the file is left out.
                self.on_skip(f"left out {relative}: hard link to a file that was not kept")
                continue
            yield member.replace(name=relative, linkname=target, deep=False)

    def _relative(self, name: str) -> str | None:
        """``name`` relative to the root, None for the root itself or a stray member."""
        parts = [part for part in PurePosixPath(name.lstrip("/")).parts if part != "."]
        if ".." in parts:
            # Never produced by the engine's own tar writer; refuse rather than guess.
            raise AgentFailed(f"the result archive names {name!r}, outside the checkout")
        if not parts or parts[0] != self.root:
            self.on_skip(f"left out {name}: not under /{self.root}")
            return None
        if len(parts) == 1:
            return None
        return "/".join(parts[1:])

    def filter(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        """The ``data`` filter plus the checkout's own rules; called just before each write."""
        try:
            safe = tarfile.data_filter(member, dest)
        except tarfile.SpecialFileError:
            self.on_skip(f"left out {member.name}: not a regular file, directory or link")
            return None
        except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
            if not (member.issym() and self._unchanged_link(member)):
                raise AgentFailed(
                    f"the agent left a symlink {member.name} -> {member.linkname} that points "
                    "outside the checkout",
                    _UNSAFE_LINK_HINT,
                ) from None
            # The same link is in the host checkout already: it came with the repository, and
            # keeping it keeps it out of the diff. Validate everything but its target, which
            # is only ever stored, never followed (later members are checked with realpath).
            safe = tarfile.data_filter(member.replace(linkname=".", deep=False), dest)
            safe = safe.replace(linkname=member.linkname, deep=False)
        except tarfile.FilterError as exc:
            raise AgentFailed(
                f"the agent left {member.name}, which would be written outside the checkout "
                f"({exc})",
                _UNSAFE_LINK_HINT,
            ) from None
        if safe.isreg():
            self.written += safe.size
            if self.written > self.limit:
                raise WorkspaceTooLarge(
                    f"the agent left more than {format_size(self.limit)} of files in the checkout "
                    "(the environment's resources.workspace cap)"
                )
        if safe.isreg() or safe.islnk():
            self.extracted.add(safe.name)
        return safe

    def _unchanged_link(self, member: tarfile.TarInfo) -> bool:
        host = self.workspace / member.name
        try:
            return host.is_symlink() and os.readlink(host) == member.linkname
        except OSError:
            return False

    def report(self) -> None:
        if self.git_members:
            self.on_skip(
                f"ignored the container's .git ({self.git_members} entries); "
                "the host's repository is used as it was"
            )


def _is_git(relative: str) -> bool:
    # casefold: on a case-insensitive host file system .GIT is the same directory as .git.
    return relative.split("/", 1)[0].casefold() == ".git"


def _replace_tree(workspace: Path, staging: Path) -> None:
    """Remove everything in ``workspace`` but ``.git``, then move the staged entries in."""
    for entry in workspace.iterdir():
        if _is_git(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in staging.iterdir():
        if _is_git(entry.name):
            continue  # never staged (see _Extractor.members); checked again because it matters
        os.replace(entry, workspace / entry.name)


def format_size(n: int) -> str:
    """``n`` bytes for a message: 1 GiB, 512 MiB, 300 bytes."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"
