"""The result extractor against hand-made hostile archives, and the packer's output."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatops.core.errors import AgentFailed, WorkspaceTooLarge
from sandbox.archive import pack_workspace, unpack_workspace
from tests.sandbox.helpers import BLOB

Member = Callable[[tarfile.TarFile], None]


def regular(name: str, data: bytes, mode: int = 0o644) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))

    return add


def special(name: str, kind: bytes, linkname: str = "", mode: int = 0o755) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = kind, linkname, mode
        tar.addfile(info)

    return add


def archive(*members: Member, chunk: int = 7) -> Iterator[bytes]:
    """A tar stream in small chunks, the way the engine hands it over (only smaller)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        special("workspace", tarfile.DIRTYPE)(tar)
        for add in members:
            add(tar)
    data = out.getvalue()
    return (data[i : i + chunk] for i in range(0, len(data), chunk))


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n")
    (root / "old.txt").write_text("old\n")
    (root / "olddir").mkdir()
    (root / "olddir" / "f").write_text("f\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


def unchanged(checkout: Path) -> bool:
    """The checkout as the fixture made it, and no staging directory left beside it."""
    staged = [p for p in checkout.parent.iterdir() if p.name.startswith(".checkout-")]
    names = sorted(p.name for p in checkout.iterdir())
    return not staged and names == [".git", "old.txt", "olddir"]


def test_the_working_tree_is_replaced_and_the_git_directory_kept(checkout: Path) -> None:
    skipped: list[str] = []
    unpack_workspace(
        archive(
            regular("workspace/new.txt", b"new\n"),
            special("workspace/sub", tarfile.DIRTYPE),
            regular("workspace/sub/blob.bin", BLOB),
            regular("workspace/.git/config", b"[core]\n\tfsmonitor = evil\n"),
            regular("workspace/.git/hooks/pre-commit", b"#!/bin/sh\nevil\n", 0o755),
        ),
        checkout,
        limit=1024**2,
        on_skip=skipped.append,
    )
    assert sorted(p.name for p in checkout.iterdir()) == [".git", "new.txt", "sub"]
    assert (checkout / "sub" / "blob.bin").read_bytes() == BLOB
    assert (checkout / ".git" / "config").read_text() == "[core]\n"
    assert not (checkout / ".git" / "hooks" / "pre-commit").exists()
    assert any("ignored the container's .git (2 entries)" in line for line in skipped)
    # The staging directory is gone too.
    assert sorted(p.name for p in checkout.parent.iterdir()) == ["checkout"]


def test_a_differently_cased_git_directory_is_ignored_too(checkout: Path) -> None:
    unpack_workspace(
        archive(regular("workspace/.GIT/config", b"evil"), regular("workspace/a", b"a")),
        checkout,
        limit=1024,
    )
    assert sorted(p.name for p in checkout.iterdir()) == [".git", "a"]


def test_modes_are_tamed_and_special_files_left_out(checkout: Path) -> None:
    skipped: list[str] = []
    unpack_workspace(
        archive(
            regular("workspace/setuid", b"x", mode=0o4777),
            regular("workspace/plain", b"x", mode=0o400),
            special("workspace/fifo", tarfile.FIFOTYPE),
            special("workspace/disk", tarfile.BLKTYPE),
        ),
        checkout,
        limit=1024,
        on_skip=skipped.append,
    )
    assert stat.S_IMODE((checkout / "setuid").stat().st_mode) == 0o755
    assert stat.S_IMODE((checkout / "plain").stat().st_mode) == 0o600
    assert not (checkout / "fifo").exists()
    assert not (checkout / "disk").exists()
    assert len([line for line in skipped if "not a regular file" in line]) == 2


def test_hard_links_inside_the_tree_work_and_into_git_are_left_out(checkout: Path) -> None:
    skipped: list[str] = []
    unpack_workspace(
        archive(
            regular("workspace/.git/objects/x", b"object"),
            regular("workspace/a", b"shared"),
            special("workspace/b", tarfile.LNKTYPE, linkname="workspace/a"),
            special("workspace/c", tarfile.LNKTYPE, linkname="workspace/.git/objects/x"),
        ),
        checkout,
        limit=1024,
        on_skip=skipped.append,
    )
    assert (checkout / "b").read_bytes() == b"shared"
    assert not (checkout / "c").exists()
    assert any("left out c" in line for line in skipped)


@pytest.mark.parametrize("target", ["ABSOLUTE", "../outside", "sub/../../outside"])
def test_a_symlink_out_of_the_checkout_is_refused(
    checkout: Path, outside: Path, target: str
) -> None:
    linkname = str(outside) if target == "ABSOLUTE" else target
    with pytest.raises(AgentFailed, match="points outside the checkout") as failure:
        unpack_workspace(
            archive(
                special("workspace/sub", tarfile.DIRTYPE),
                special("workspace/escape", tarfile.SYMTYPE, linkname=linkname),
                regular("workspace/escape/planted.txt", b"planted"),
            ),
            checkout,
            limit=1024,
        )
    assert "escape" in failure.value.message
    assert list(outside.iterdir()) == []
    assert unchanged(checkout)


def test_a_symlink_that_came_with_the_repository_is_kept_but_never_written_through(
    checkout: Path, outside: Path
) -> None:
    (checkout / "system").symlink_to(outside)
    unpack_workspace(
        archive(special("workspace/system", tarfile.SYMTYPE, linkname=str(outside))),
        checkout,
        limit=1024,
    )
    assert os.readlink(checkout / "system") == str(outside)

    with pytest.raises(AgentFailed, match="outside the checkout"):
        unpack_workspace(
            archive(
                special("workspace/system", tarfile.SYMTYPE, linkname=str(outside)),
                regular("workspace/system/planted.txt", b"planted"),
            ),
            checkout,
            limit=1024,
        )
    assert list(outside.iterdir()) == []


def test_relative_symlinks_inside_the_checkout_are_kept(checkout: Path) -> None:
    unpack_workspace(
        archive(
            special("workspace/docs", tarfile.DIRTYPE),
            regular("workspace/docs/a.md", b"a"),
            special("workspace/docs/b.md", tarfile.SYMTYPE, linkname="a.md"),
            special("workspace/top", tarfile.SYMTYPE, linkname="docs/../docs/a.md"),
        ),
        checkout,
        limit=1024,
    )
    assert (checkout / "docs" / "b.md").read_bytes() == b"a"
    assert (checkout / "top").read_bytes() == b"a"


@pytest.mark.parametrize("name", ["workspace/../escape.txt", "workspace/a/../../escape.txt"])
def test_names_that_climb_out_are_refused(checkout: Path, name: str) -> None:
    with pytest.raises(AgentFailed, match="outside the checkout"):
        unpack_workspace(archive(regular(name, b"x")), checkout, limit=1024)
    assert not (checkout.parent / "escape.txt").exists()
    assert unchanged(checkout)


def test_members_outside_the_root_are_left_out(checkout: Path) -> None:
    skipped: list[str] = []
    unpack_workspace(
        archive(regular("/etc/passwd", b"x"), regular("workspace/a", b"a")),
        checkout,
        limit=1024,
        on_skip=skipped.append,
    )
    assert sorted(p.name for p in checkout.iterdir()) == [".git", "a"]
    assert any("/etc/passwd" in line for line in skipped)


def test_the_size_cap_stops_the_stream_before_the_checkout_changes(checkout: Path) -> None:
    big = b"x" * 600
    with pytest.raises(WorkspaceTooLarge, match="1 KiB"):
        unpack_workspace(
            archive(regular("workspace/a", big), regular("workspace/b", big)),
            checkout,
            limit=1024,
        )
    assert unchanged(checkout)


def test_the_git_directory_does_not_count_against_the_cap(checkout: Path) -> None:
    unpack_workspace(
        archive(regular("workspace/.git/pack", b"x" * 4096), regular("workspace/a", b"a")),
        checkout,
        limit=1024,
    )
    assert (checkout / "a").read_bytes() == b"a"


def test_pack_puts_everything_under_the_root_owned_by_the_sandbox_user(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / ".git").mkdir(parents=True)
    (source / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (source / "blob.bin").write_bytes(BLOB)
    (source / "link").symlink_to("blob.bin")
    out = io.BytesIO()
    pack_workspace(source, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"workspace", "workspace/.git", "workspace/.git/HEAD",
                                "workspace/blob.bin", "workspace/link"}
        assert {(m.uid, m.gid) for m in members.values()} == {(1000, 1000)}
        assert members["workspace/link"].issym()
        assert members["workspace/link"].linkname == "blob.bin"
        blob = tar.extractfile("workspace/blob.bin")
        assert blob is not None and blob.read() == BLOB
