"""The egress proxy image: squid, assembled offline from the host's squid install.

Nothing can be pulled on an air-gapped engine, so, like the busybox image in ``images.py``,
this image is a root filesystem written straight into a tar stream (owners and modes in the
headers, a fixed mtime, members sorted, so two builds from the same host files give the
same layer) and imported with ``docker import``. Squid is dynamically linked: its binaries
are copied with the shared-library closure ``ldd`` reports, at the paths ``ldd`` reports,
including every symbolic link met on the way (``/lib`` -> ``usr/lib`` on a merged-/usr
host), so the loader finds each library where the host's did.

The image holds no squid.conf: callers put their own at ``SQUID_CONF`` (``put_archive``)
before starting the container. Docker refuses archive writes into a read-only root
filesystem, so a read-only container needs a volume at /etc/squid to receive it, and tmpfs
mounts for squid's state directories. The ICMP pinger is left out (it needs privileges the
proxy should not have): configs say ``pinger_enable off``.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import stat
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import docker

from chatops.core.errors import ImageMissing
from sandbox.images import existing_image, import_rootfs

# Versioned with what the image holds: a deployment that upgrades builds the new one.
PROXY_TAG = "chatops/egress:squid-2"
# Debian's "proxy" user, which owns squid's state directories there too.
PROXY_UID = 13
PROXY_GID = 13
SQUID_CONF = "/etc/squid/squid.conf"

_SQUID = "/usr/sbin/squid"
# Mints the certificates with which squid opens HTTPS to check methods (sandbox.egress_tls).
CERTGEN = "/usr/lib/squid/security_file_certgen"
_BINARIES = (
    _SQUID,
    CERTGEN,
    # Squid 5 refuses to start unless these helpers exist, even when nothing runs them
    # (no cache_dir to unlink from, no daemon: logs).
    "/usr/lib/squid/unlinkd",
    "/usr/lib/squid/log_file_daemon",
)
_INSTALL_HINT = "install squid-openssl (e.g. `apt-get install squid-openssl`)"
# Squid also refuses to start without the MIME table and the icon directory it names.
_DATA = (
    "/usr/share/squid/mime.conf",
    "/usr/share/squid/icons",
    "/usr/share/squid/errors/templates",
)
# Squid verifies origins' TLS against it; a host without one gives an empty one, which
# trusts nothing (CHATOPS_EGRESS_CA_FILE can add authorities).
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Fixed mtime for every member, so that two builds from the same host files are the same tar.
_EPOCH = 0
# The kernel's limit on symbolic links followed in one lookup (ELOOP).
_MAX_LINKS = 40

_PASSWD = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    f"proxy:x:{PROXY_UID}:{PROXY_GID}:proxy:/bin:/usr/sbin/nologin\n"
)
_GROUP = f"root:x:0:\nproxy:x:{PROXY_GID}:\n"
# Squid resolves names itself, but getpwnam and friends still go through NSS.
_NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"

# (path, mode, uid, gid): squid's state directories belong to the proxy user; the rest are
# mount points and the places callers write into.
_DIRS: tuple[tuple[str, int, int, int], ...] = (
    ("etc/squid", 0o755, 0, 0),
    ("etc/ssl/certs", 0o755, 0, 0),
    *((f"var/{d}/squid", 0o750, PROXY_UID, PROXY_GID) for d in ("log", "run", "spool", "lib")),
    ("tmp", 0o1777, 0, 0),
    ("dev", 0o755, 0, 0),
    ("proc", 0o555, 0, 0),
    ("sys", 0o555, 0, 0),
)

_CHANGES = [
    f"USER {PROXY_UID}:{PROXY_GID}",
    f'ENTRYPOINT ["{_SQUID}", "-N", "-f", "{SQUID_CONF}"]',
    "LABEL chatops.image=egress",
]

# A member's content: bytes written here, a host file to copy, or None (directory, link).
_Content = bytes | Path | None
_LOAD_ADDRESS = re.compile(r"\s*\(0x[0-9a-fA-F]+\)\s*$")


def _shared_libraries(binary: str) -> list[str]:
    """The absolute paths ``ldd`` lists for ``binary``, the dynamic loader included.

    Lines look like ``libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)``, or
    ``/lib64/ld-linux-x86-64.so.2 (0x...)`` for the loader; the vDSO has no file.
    """
    try:
        result = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ImageMissing("ldd is not available on this host", "install libc-bin") from exc
    if "not a dynamic executable" in result.stderr:
        return []
    if result.returncode != 0:
        raise ImageMissing(f"ldd {binary} failed: {result.stderr.strip()}", _INSTALL_HINT)
    paths = []
    for line in result.stdout.splitlines():
        name, arrow, found = line.partition("=>")
        location = _LOAD_ADDRESS.sub("", found if arrow else name).strip()
        if location == "not found":
            raise ImageMissing(f"{binary} needs {name.strip()}, which is missing", _INSTALL_HINT)
        if location.startswith("/"):
            paths.append(location)
    return paths


def _resolve(path: str) -> Iterator[tuple[str, str | None]]:
    """(link, target) for each symbolic link met looking ``path`` up, then (real path, None).

    The image needs every link on the way, not only the final file: the loader and the
    binaries name libraries by the paths the host's links make up.
    """
    pending = posixpath.normpath(path)
    for _ in range(_MAX_LINKS):
        parts = pending.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/" + "/".join(parts[:depth])
            if os.path.islink(prefix):
                target = os.readlink(prefix)
                yield prefix, target
                rest = posixpath.join(posixpath.dirname(prefix), target, *parts[depth:])
                pending = posixpath.normpath(rest)
                break
        else:
            yield pending, None
            return
    raise ImageMissing(f"too many symbolic links resolving {path}", _INSTALL_HINT)


def _host_members(path: str) -> Iterator[tuple[tarfile.TarInfo, _Content]]:
    """``path`` copied from the host with the links leading to it; a directory recursively."""
    for name, target in _resolve(path):
        if target is not None:
            link = _info(name, tarfile.SYMTYPE, 0o777)
            link.linkname = target
            yield link, None
        elif os.path.isdir(name):
            # os.walk descends real directories itself; links (to files or directories) and
            # files go through _host_members so that each link is kept as a link.
            for root, dirs, files in os.walk(name):
                linked = [entry for entry in dirs if os.path.islink(os.path.join(root, entry))]
                for entry in files + linked:
                    yield from _host_members(os.path.join(root, entry))
        else:
            mode = stat.S_IMODE(os.stat(name).st_mode)
            yield _info(name, tarfile.REGTYPE, mode), Path(name)


def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name.lstrip("/"))
    member.type, member.mode, member.uid, member.gid = kind, mode, uid, gid
    member.uname = "proxy" if uid == PROXY_UID else "root"
    member.gname = "proxy" if gid == PROXY_GID else "root"
    member.mtime = _EPOCH
    return member


Members = dict[str, tuple[tarfile.TarInfo, _Content]]


def host_files(binaries: Sequence[str], data: Sequence[str] = (),
               hint: str = _INSTALL_HINT) -> Members:
    """``binaries`` with the shared libraries they load and ``data`` (files or directories),
    copied from the host as tar members by name, with the links on the way to each.
    A missing one raises ImageMissing with ``hint``."""
    for required in (*binaries, *data):
        if not os.path.exists(required):
            raise ImageMissing(f"{required} is missing on this host", hint)
    closure = dict.fromkeys(lib for binary in binaries for lib in _shared_libraries(binary))
    members: Members = {}
    for path in (*binaries, *closure, *data):
        for member, content in _host_members(path):
            members.setdefault(member.name, (member, content))
    return members


def write_members(members: Members, dest: io.BufferedIOBase) -> None:
    """``members`` as a tar stream, parent directories filled in, in name order."""
    members = dict(members)
    # Links resolve through real directories only, so no parent here is itself a link.
    for name in list(members):
        parent = posixpath.dirname(name)
        while parent and parent not in members:
            members[parent] = _info(parent, tarfile.DIRTYPE, 0o755), None
            parent = posixpath.dirname(parent)
    with tarfile.open(fileobj=dest, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # Sorted, so parents precede children and the stream does not depend on walk order.
        for name in sorted(members):
            member, content = members[name]
            if content is None:
                tar.addfile(member)
                continue
            data = content.read_bytes() if isinstance(content, Path) else content
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def _rootfs_members() -> Members:
    """Every member of the proxy's root filesystem by name."""
    members = host_files(_BINARIES, _DATA)
    # Its content, not its links: squid reads this one path, and /etc/ssl/certs is ours.
    bundle = _info(CA_BUNDLE, tarfile.REGTYPE, 0o644)
    members[bundle.name] = bundle, Path(CA_BUNDLE) if os.path.exists(CA_BUNDLE) else b""
    for name, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP),
                       ("etc/nsswitch.conf", _NSSWITCH)):
        members[name] = _info(name, tarfile.REGTYPE, 0o644), text.encode()
    for name, mode, uid, gid in _DIRS:
        members[name] = _info(name, tarfile.DIRTYPE, mode, uid, gid), None
    return members


def _write_rootfs(dest: io.BufferedIOBase) -> None:
    write_members(_rootfs_members(), dest)


def build_proxy_image(client: docker.DockerClient, tag: str = PROXY_TAG) -> str:
    """Build the squid egress image from the host's squid; returns the image id.

    Runs as the proxy user (13:13) with squid in the foreground (``-N``) on ``SQUID_CONF``.
    """
    return import_rootfs(client, tag, _write_rootfs, _CHANGES)


def ensure_proxy_image(client: docker.DockerClient, tag: str = PROXY_TAG) -> str:
    """The id of ``tag``, building it from the host's squid first if the engine lacks it."""
    return existing_image(client, tag) or build_proxy_image(client, tag)
