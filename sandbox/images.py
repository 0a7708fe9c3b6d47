"""Sandbox images: the offline busybox image, and checks that an environment's image exists.

Nothing can be pulled on an air-gapped engine, so the default image is assembled here from the
host's statically linked busybox: a root filesystem written straight into a tar stream (owners
and modes set in the headers, so building needs no root on the host) and imported with
``docker import``. Richer images are built from ``sandbox/Dockerfile`` where a base can be
pulled.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors

from chatops.core.errors import ImageMissing, SandboxUnavailable

DEFAULT_TAG = "chatops/sandbox:busybox"

# The unprivileged user the agent phase runs as; the runner uses the numeric ids, so images
# built elsewhere only need to own /workspace by the same uid.
AGENT_UID = 1000
AGENT_GID = 1000
AGENT_HOME = "/home/agent"

# Where busybox-static usually lands; PATH is searched first.
_BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
_INSTALL_HINT = "install busybox-static (e.g. `apt-get install busybox-static`)"
# Fixed mtime for every member, so that two builds from the same binary are the same tar.
_EPOCH = 0

_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    f"agent:x:{AGENT_UID}:{AGENT_GID}:chatops agent:{AGENT_HOME}:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
_GROUP = f"root:x:0:\nagent:x:{AGENT_GID}:\nnogroup:x:65534:\n"

# (path, mode, uid, gid) of the directories the runner relies on, plus the usual mount points.
_DIRS: tuple[tuple[str, int, int, int], ...] = (
    ("bin", 0o755, 0, 0),
    ("sbin", 0o755, 0, 0),
    ("usr", 0o755, 0, 0),
    ("usr/bin", 0o755, 0, 0),
    ("usr/sbin", 0o755, 0, 0),
    ("etc", 0o755, 0, 0),
    ("dev", 0o755, 0, 0),
    ("proc", 0o555, 0, 0),
    ("sys", 0o555, 0, 0),
    ("root", 0o700, 0, 0),
    ("home", 0o755, 0, 0),
    (AGENT_HOME.lstrip("/"), 0o755, AGENT_UID, AGENT_GID),
    ("tmp", 0o1777, 0, 0),
    ("var", 0o755, 0, 0),
    ("var/tmp", 0o1777, 0, 0),
    ("workspace", 0o755, AGENT_UID, AGENT_GID),
    ("chatops", 0o755, 0, 0),
)

_CHANGES = [
    "ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin",
    'CMD ["/bin/sh"]',
    "WORKDIR /workspace",
    "LABEL chatops.image=busybox",
]


def find_busybox() -> Path:
    """The host's statically linked busybox; ImageMissing with an install hint otherwise."""
    on_path = shutil.which("busybox")
    candidates = [Path(p) for p in (on_path, *_BUSYBOX_CANDIDATES) if p]
    dynamic: list[Path] = []
    for candidate in dict.fromkeys(candidates):
        if not candidate.is_file():
            continue
        if _is_static_elf(candidate):
            return candidate
        dynamic.append(candidate)
    if dynamic:
        raise ImageMissing(
            f"busybox at {dynamic[0]} is dynamically linked and cannot run in an empty image",
            _INSTALL_HINT,
        )
    raise ImageMissing("busybox is not installed on this host", _INSTALL_HINT)


def _is_static_elf(path: Path) -> bool:
    """True when ``path`` is an ELF executable without a program interpreter (PT_INTERP)."""
    with path.open("rb") as binary:
        header = binary.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF":
            return False
        is_64 = header[4] == 2
        order = "<" if header[5] == 1 else ">"
        if is_64:
            (phoff,) = struct.unpack_from(order + "Q", header, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 0x36)
        else:
            (phoff,) = struct.unpack_from(order + "I", header, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 0x2A)
        binary.seek(phoff)
        table = binary.read(phentsize * phnum)
    pt_interp = 3
    return all(
        struct.unpack_from(order + "I", table, i * phentsize)[0] != pt_interp
        for i in range(phnum)
    )


def _applets(busybox: Path) -> list[str]:
    """Applet paths relative to /, e.g. ``bin/sh``; plain ``--list`` names go to bin/."""
    result = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=False
    )
    if result.returncode == 0 and result.stdout.strip():
        return [line.strip().lstrip("/") for line in result.stdout.splitlines() if line.strip()]
    result = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    return [f"bin/{name.strip()}" for name in result.stdout.splitlines() if name.strip()]


def _rootfs_members(busybox: Path) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    def info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
        member = tarfile.TarInfo(name)
        member.type, member.mode, member.uid, member.gid = kind, mode, uid, gid
        member.uname = "agent" if uid == AGENT_UID else "root"
        member.gname = "agent" if gid == AGENT_GID else "root"
        member.mtime = _EPOCH
        return member

    directories = {name for name, *_ in _DIRS}
    for name, mode, uid, gid in _DIRS:
        yield info(name, tarfile.DIRTYPE, mode, uid, gid), None

    binary = busybox.read_bytes()
    yield info("bin/busybox", tarfile.REGTYPE, 0o755), binary
    for path in ("etc/passwd", "etc/group"):
        text = (_PASSWD if path == "etc/passwd" else _GROUP).encode()
        yield info(path, tarfile.REGTYPE, 0o644), text

    for applet in _applets(busybox):
        if applet == "bin/busybox" or applet.rsplit("/", 1)[0] not in directories:
            continue  # applets in unusual directories are reachable through bin/busybox NAME
        link = info(applet, tarfile.SYMTYPE, 0o777)
        link.linkname = "/bin/busybox"
        yield link, None


def _write_rootfs(busybox: Path, dest: io.BufferedIOBase) -> None:
    seen: set[str] = set()
    with tarfile.open(fileobj=dest, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in _rootfs_members(busybox):
            if member.name in seen:
                continue
            seen.add(member.name)
            if data is None:
                tar.addfile(member)
            else:
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))


def build_busybox_image(client: docker.DockerClient, tag: str = DEFAULT_TAG) -> str:
    """Build the offline sandbox image from the host's busybox-static; returns the image id.

    Root and ``agent`` (uid/gid 1000, home /home/agent); /workspace and the home owned by
    agent, /tmp 1777, /chatops for the runner's input files. No network is needed.
    """
    busybox = find_busybox()
    return import_rootfs(client, tag, lambda out: _write_rootfs(busybox, out), _CHANGES)


def import_rootfs(
    client: docker.DockerClient,
    tag: str,
    write: Callable[[io.BufferedIOBase], None],
    changes: list[str],
) -> str:
    """Import the root filesystem tar that ``write`` produces as ``tag``; returns the image id.

    ``changes`` are Dockerfile instructions (ENV, USER, ENTRYPOINT, LABEL...) applied on import.
    """
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        repository, version = tag, "latest"
    with tempfile.TemporaryDirectory(prefix="chatops-rootfs-") as workdir:
        archive = Path(workdir) / "rootfs.tar"
        with archive.open("wb") as out:
            write(out)
        try:
            client.api.import_image(
                src=str(archive), repository=repository, tag=version, changes=changes
            )
            return str(client.images.get(tag).id)
        except docker.errors.APIError as exc:
            raise ImageMissing(f"importing {tag} failed: {exc.explanation or exc}") from exc
        except docker.errors.DockerException as exc:
            raise SandboxUnavailable(f"the Docker engine cannot be reached: {exc}") from exc


def existing_image(client: docker.DockerClient, tag: str) -> str | None:
    """The id of ``tag`` on the engine, or None when it has no such image."""
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(f"the Docker engine cannot be reached: {exc}") from exc


def ensure_image(client: docker.DockerClient, tag: str = DEFAULT_TAG) -> str:
    """The id of ``tag``, building it first if it is the busybox image and missing.

    Any other missing tag raises ImageMissing: it can neither be pulled nor built here.
    """
    found = existing_image(client, tag)
    if found is not None:
        return found
    if tag != DEFAULT_TAG:
        raise ImageMissing(
            f"the image {tag!r} is not on the Docker engine",
            f"build it on this engine, e.g. `docker build -t {tag} -f sandbox/Dockerfile .` "
            f"(nothing can be pulled), or use {DEFAULT_TAG}, which `chatops image build` "
            "makes offline",
        )
    return build_busybox_image(client, tag)
