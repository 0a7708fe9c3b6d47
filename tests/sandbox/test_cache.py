"""The setup cache on the real engine: hits, misses and why, expiry, eviction, secrets, the CLI.

Each test runs under an instance of its own, so eviction and listings only ever see the
entries it made; the ``rig`` fixture removes them (and asserts no run still holds one).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from chatops.core.environment import Environment
from chatops.core.ports import Phase
from sandbox.cache import DEFAULT_CAP_BYTES, SetupCache
from sandbox.docker_runner import DockerSandbox
from sandbox.naming import INSTANCE, RunNames
from tests.sandbox.helpers import MiB, Recorder, environment, git, leftovers, run

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]

# Stands for a dependency install: outputs in the checkout (gitignored) and elsewhere.
SETUP = """
echo "setup ran"
mkdir -p .deps /opt/deps
echo dep > .deps/marker
echo tool > /opt/deps/tool
"""
HOUR = 3600


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Rig:
    client: Any
    instance: str
    image: str
    clock: Clock = field(default_factory=Clock)

    @property
    def cache(self) -> SetupCache:
        return SetupCache(self.client, instance=self.instance, clock=self.clock)

    def run(
        self,
        workspace: Path,
        env: Environment,
        instruction: str = "true",
        *,
        cap: int = DEFAULT_CAP_BYTES,
        events: Recorder | None = None,
        client: Any = None,
        **job: Any,
    ) -> Recorder:
        """One task on a fresh sandbox; the host checkout is reset to its HEAD first."""
        reset(workspace)
        task = f"t-{uuid.uuid4().hex[:12]}"
        events = events or Recorder()
        sandbox = DockerSandbox(client or self.client, instance=self.instance,
                                cache_cap_bytes=cap, clock=self.clock)
        try:
            run(sandbox, task, workspace, env, instruction, events, **job)
        finally:
            assert leftovers(self.client, task, self.instance) == []
        return events

    def environments(self) -> list[str]:
        return sorted(e.environment for e in self.cache.entries(usage=False))


def reset(workspace: Path) -> None:
    """Back to the committed tree: what a fresh clone for the next task would hold."""
    git(workspace, "checkout", "-q", "--", ".")
    git(workspace, "clean", "-q", "-fdx")


@pytest.fixture
def rig(docker_client: Any, instance: str, sandbox_image: str) -> Iterator[Rig]:
    rig = Rig(docker_client, f"{instance}-c{uuid.uuid4().hex[:6]}", sandbox_image)
    yield rig
    removal = rig.cache.clear()
    assert removal.in_use == []
    assert docker_client.images.list(filters={"label": f"{INSTANCE}={rig.instance}"}) == []


@pytest.fixture
def repo(workspace: Path) -> Path:
    """The checkout with a .gitignore for the setup's .deps/, as a real project has."""
    (workspace / ".gitignore").write_text(".deps/\n")
    git(workspace, "add", ".gitignore")
    git(workspace, "commit", "-q", "-m", "ignore .deps")
    return workspace


def test_a_second_run_reuses_the_setup_and_skips_its_script(rig: Rig, repo: Path) -> None:
    env = environment(rig.image, setup=SETUP)
    agent = "cat .deps/marker /opt/deps/tool > seen.txt"

    first = rig.run(repo, env, agent)
    setup_log = first.text(Phase.SETUP)
    assert "setup cache miss (no entry yet): running the setup script" in setup_log
    assert "setup ran" in setup_log
    assert "setup cached as entry" in setup_log
    assert (repo / "seen.txt").read_text() == "dep\ntool\n"

    second = rig.run(repo, env, agent)
    setup_log = second.text(Phase.SETUP)
    assert "setup cache hit (entry " in setup_log
    assert "the setup script is skipped" in setup_log
    assert "setup ran" not in setup_log
    assert "no maintenance script" in setup_log
    assert (repo / "seen.txt").read_text() == "dep\ntool\n"
    assert second.phases == [Phase.SETUP, Phase.AGENT, Phase.COLLECT]
    assert rig.environments() == ["test"]


def test_a_hit_has_the_new_commits_files_and_keeps_what_setup_made(
    rig: Rig, repo: Path
) -> None:
    env = environment(rig.image, setup=SETUP + "echo 'setup was here' >> README.md\n")
    first = rig.run(repo, env, "cat README.md > readme-seen.txt")
    # Even on the run that made the entry, tracked files are the commit's, not setup's.
    assert (repo / "readme-seen.txt").read_text() == "# demo\n"
    assert "setup ran" in first.text(Phase.SETUP)

    reset(repo)
    (repo / "src" / "app.py").write_text("print('new')\n")
    (repo / "new").mkdir()
    (repo / "new" / "file.txt").write_text("added\n")
    git(repo, "rm", "-q", "src/old.txt")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "next")
    head = git(repo, "rev-parse", "HEAD").strip()

    agent = """
        find . -path ./.git -prune -o -type f -print | sort > files.txt
        cat .git/refs/heads/main > head-seen.txt
        cat src/app.py > app-seen.txt
        echo agent >> .deps/marker && echo appended-dep > dep.txt
        echo more >> src/app.py
        test "$(stat -c %u README.md):$(stat -c %u .deps)" = 1000:1000 && echo owned > owner.txt
    """
    second = rig.run(repo, env, agent)
    assert "setup cache hit" in second.text(Phase.SETUP)
    files = (repo / "files.txt").read_text().split()
    assert "./.deps/marker" in files
    assert "./new/file.txt" in files
    assert "./src/app.py" in files
    assert "./src/old.txt" not in files
    assert (repo / "head-seen.txt").read_text().strip() == head
    assert (repo / "app-seen.txt").read_text() == "print('new')\n"
    assert (repo / "dep.txt").read_text() == "appended-dep\n"
    assert (repo / "owner.txt").read_text() == "owned\n"
    assert (repo / ".deps" / "marker").read_text() == "dep\nagent\n"
    status = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert " M src/app.py" in status
    assert not [line for line in status if "old.txt" in line or "README" in line]


@pytest.fixture
def rebuildable(rig: Rig) -> Iterator[Any]:
    """A tag that ``build()`` points at a new image each time, as a rebuild does."""
    tag = f"chatops-test-cache:{uuid.uuid4().hex[:8]}"
    built: list[str] = []

    class Image:
        name = tag

        @staticmethod
        def build() -> None:
            container = rig.client.containers.create(rig.image, ["true"])
            try:
                image = container.commit(*tag.split(":"),
                                         conf={"Labels": {"build": uuid.uuid4().hex}})
            finally:
                container.remove()
            built.append(str(image.id))

    Image.build()
    yield Image
    rig.cache.clear()  # the entries are children of these images
    for image_id in built:
        # An untagged one went already, with the last entry made from it.
        with contextlib.suppress(docker.errors.ImageNotFound):
            rig.client.images.remove(image_id)


CHANGES = {
    "setup script": {"setup": SETUP + "echo one more step\n"},
    "maintenance script": {"maintenance": "echo maintained again"},
    "env vars": {"env": {"MODE": "b"}},
    "secrets": {"secrets": {"TOKEN": "token-value-two"}},
    "image": {},
}


@pytest.mark.parametrize("part", list(CHANGES))
def test_any_change_to_the_key_is_a_miss_that_names_it(
    rig: Rig, repo: Path, rebuildable: Any, part: str
) -> None:
    base: dict[str, Any] = {"setup": SETUP, "maintenance": "echo maintained",
                            "env": {"MODE": "a"}, "secrets": {"TOKEN": "token-value-one"}}

    def go(settings: dict[str, Any]) -> str:
        env = environment(rebuildable.name, setup=settings["setup"],
                          maintenance=settings["maintenance"], env=settings["env"])
        return rig.run(repo, env, secrets=settings["secrets"]).text(Phase.SETUP)

    assert "setup cache miss (no entry yet)" in go(base)
    assert "setup cache hit" in go(base)
    if part == "image":
        rebuildable.build()
    changed = go({**base, **CHANGES[part]})
    assert f"setup cache miss (key changed: {part}): running the setup script" in changed
    assert "setup ran" in changed
    assert "maintained" not in changed  # maintenance is for hits only
    assert "token-value" not in changed  # secret values stay masked


def test_an_entry_expires_after_the_default_ttl(rig: Rig, repo: Path) -> None:
    env = environment(rig.image, setup=SETUP)
    rig.run(repo, env)
    rig.clock.advance(11 * HOUR)
    assert "setup cache hit" in rig.run(repo, env).text(Phase.SETUP)
    rig.clock.advance(1 * HOUR)
    late = rig.run(repo, env).text(Phase.SETUP)
    assert "setup cache miss (the entry expired: 12h old, the TTL is 12h)" in late
    assert "setup ran" in late
    # The expired entry made way for the new one.
    assert "setup cache: removed 1 older entries" in late
    assert rig.environments() == ["test"]


def test_cache_ttl_overrides_the_default_and_zero_turns_the_cache_off(
    rig: Rig, repo: Path
) -> None:
    short = environment(rig.image, setup=SETUP, cache_ttl="60s")
    rig.run(repo, short)
    rig.clock.advance(30)
    assert "setup cache hit" in rig.run(repo, short).text(Phase.SETUP)
    rig.clock.advance(31)
    assert "the entry expired: 1m old, the TTL is 1m" in rig.run(repo, short).text(Phase.SETUP)

    rig.cache.clear()
    off = environment(rig.image, setup=SETUP, cache_ttl=0, name="off")
    for _ in range(2):
        setup_log = rig.run(repo, off, "cat .deps/marker > seen.txt").text(Phase.SETUP)
        assert "setup cache off for this environment (cache_ttl = 0)" in setup_log
        assert "setup ran" in setup_log
        assert (repo / "seen.txt").read_text() == "dep\n"
    assert rig.environments() == []


def test_the_least_recently_used_entry_goes_when_over_the_cap(rig: Rig, repo: Path) -> None:
    def env(name: str) -> Environment:
        # Each entry's own layer is a little over 1 MiB.
        return environment(rig.image, name=name, setup=f"""
            echo {name}; mkdir -p /opt/deps
            head -c {MiB} /dev/urandom > /opt/deps/blob
        """)

    cap = 5 * MiB // 2  # two entries fit, three do not
    rig.run(repo, env("a"), cap=cap)
    rig.run(repo, env("b"), cap=cap)
    assert "setup cache hit" in rig.run(repo, env("a"), cap=cap).text(Phase.SETUP)  # a is used
    third = rig.run(repo, env("c"), cap=cap).text(Phase.SETUP)
    assert "setup cache: removed 1 older entries" in third
    assert rig.environments() == ["a", "c"]


def test_an_entry_held_by_a_run_or_used_by_a_container_is_never_removed(
    rig: Rig, repo: Path
) -> None:
    rig.run(repo, environment(rig.image, setup=SETUP))
    [entry] = rig.cache.entries()
    squeezed = SetupCache(rig.client, instance=rig.instance, cap_bytes=1)

    hold = RunNames("t-another-run", rig.instance).cache_use
    assert rig.cache.touch(entry, hold)
    removal = squeezed.evict()
    assert (removal.removed, [e.image_id for e in removal.in_use]) == ([], [entry.image_id])
    assert rig.cache.clear().in_use != []
    rig.client.images.remove(hold)

    container = rig.client.containers.create(entry.image_id, ["true"])
    try:
        assert squeezed.evict().removed == []
    finally:
        container.remove()

    assert [e.image_id for e in squeezed.evict().removed] == [entry.image_id]
    # A run that looked it up just before finds it gone and sets up from scratch.
    assert not rig.cache.touch(entry, hold)


def test_maintenance_runs_on_a_hit_and_not_on_a_miss(rig: Rig, repo: Path) -> None:
    token = f"token-{secrets.token_hex(8)}"
    env = environment(rig.image, setup=SETUP, maintenance="""
        echo "maintenance sees $TOKEN"
        echo fresh > .deps/maintained
        echo again > /opt/deps/maintained
    """)
    agent = ("cat .deps/maintained /opt/deps/maintained > seen.txt 2>/dev/null || :\n"
             "echo x >> .deps/maintained")

    first = rig.run(repo, env, agent, secrets={"TOKEN": token})
    assert "maintenance" not in first.text(Phase.SETUP)
    assert not (repo / "seen.txt").read_text()

    second = rig.run(repo, env, agent, secrets={"TOKEN": token})
    setup_log = second.text(Phase.SETUP)
    assert "running the maintenance script" in setup_log
    assert "maintenance sees ***" in setup_log
    assert "setup ran" not in setup_log
    assert "changed /opt and 2 more outside /workspace: keeping a snapshot" in setup_log
    assert token not in second.text()
    # In the workspace (through the volume) and outside it (through the task's snapshot),
    # owned by the agent.
    assert (repo / "seen.txt").read_text() == "fresh\nagain\n"
    assert (repo / ".deps" / "maintained").read_text() == "fresh\nx\n"


def test_a_failing_maintenance_script_fails_the_run_and_says_how_to_start_over(
    rig: Rig, repo: Path
) -> None:
    from chatops.core.errors import SetupFailed

    env = environment(rig.image, setup=SETUP, maintenance="exit 4")
    rig.run(repo, env)
    with pytest.raises(SetupFailed, match="the maintenance script exited with status 4") as err:
        rig.run(repo, env)
    assert "chatops envs cache --clear test" in (err.value.hint or "")


def image_layers(client: Any, image: str, into: Path) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) for every file of every layer of ``image``, and every other member of
    its ``docker save`` archive (config, history, manifest)."""
    archive = into / f"{uuid.uuid4().hex}.tar"
    with archive.open("wb") as out:
        for chunk in client.images.get(image).save(named=False):
            out.write(chunk)
    with tarfile.open(archive) as saved:
        for member in saved:
            yield f"{member.name} (name)", member.name.encode()
            if not member.isfile():
                continue
            handle = saved.extractfile(member)
            assert handle is not None
            data = handle.read()
            if not _is_tar(data):
                yield member.name, data  # the config (with the history), manifest, ...
                continue
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as layer:
                for inner in layer:
                    where = f"{member.name}:{inner.name}"
                    yield f"{where} (name)", f"{inner.name} {inner.linkname}".encode()
                    if inner.isfile():
                        content = layer.extractfile(inner)
                        assert content is not None
                        yield where, content.read()


def _is_tar(data: bytes) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*"):
            return True
    except tarfile.ReadError:
        return False


def test_a_maintenance_script_that_only_touches_the_workspace_needs_no_snapshot(
    rig: Rig, repo: Path
) -> None:
    env = environment(rig.image, setup=SETUP, maintenance="""
        echo fresh > .deps/maintained
        mkdir -p /root/.cache && echo x > /root/.cache/index && echo y > /tmp/scratch
    """)
    rig.run(repo, env)
    second = rig.run(repo, env, "cat .deps/maintained > seen.txt")
    assert "changed nothing outside /workspace" in second.text(Phase.SETUP)
    assert (repo / "seen.txt").read_text() == "fresh\n"
    snapshots = rig.client.images.list(
        filters={"label": [f"{INSTANCE}={rig.instance}", "chatops.phase=snapshot"]})
    assert snapshots == []


def test_no_secret_is_in_any_layer_of_a_cached_or_maintained_snapshot(
    rig: Rig, repo: Path, tmp_path: Path
) -> None:
    canary = f"canary-{secrets.token_hex(16)}"
    proof = hashlib.sha256(canary.encode()).hexdigest()
    env = environment(rig.image, setup="""
        echo "setup sees $CANARY"
        mkdir -p /opt/deps .deps
        printf %s "$CANARY" | sha256sum | cut -d' ' -f1 > /opt/deps/setup-proof
        cp /opt/deps/setup-proof .deps/setup-proof
        SECOND_HAND="$CANARY" sh -c 'test -n "$SECOND_HAND"'
    """, maintenance="""
        echo "maintenance sees $CANARY"
        printf %s "$CANARY" | sha256sum | cut -d' ' -f1 > /opt/deps/maintenance-proof
    """)
    rig.run(repo, env, secrets={"CANARY": canary})
    [entry] = rig.cache.entries()

    saved: dict[str, list[tuple[str, bytes]]] = {}
    # The task's snapshot after maintenance exists only while the task runs.
    events = Recorder(on_phase=lambda phase: _save_task_snapshot(rig, phase, saved, tmp_path))
    second = rig.run(repo, env, secrets={"CANARY": canary}, events=events)
    assert "maintenance sees ***" in second.text(Phase.SETUP)

    saved["cached"] = list(image_layers(rig.client, entry.image_id, tmp_path))
    for which, members in saved.items():
        assert members, which
        assert [where for where, data in members if canary.encode() in data] == [], which
    # The walk does reach into the layers: setup's digest of the canary is found there.
    assert any(proof.encode() in data for _, data in saved["cached"])
    assert any(where.endswith("opt/deps/maintenance-proof") for where, _ in saved["maintained"])


def _save_task_snapshot(
    rig: Rig, phase: Phase, saved: dict[str, list[tuple[str, bytes]]], into: Path
) -> None:
    if phase != Phase.AGENT:
        return
    [snapshot] = rig.client.images.list(
        filters={"label": [f"{INSTANCE}={rig.instance}", "chatops.phase=snapshot"]})
    saved["maintained"] = list(image_layers(rig.client, str(snapshot.id), into))


def test_two_misses_at_once_both_build_and_the_newer_entry_wins(
    rig: Rig, repo: Path, tmp_path: Path
) -> None:
    env = environment(rig.image, setup=SETUP)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    logs: dict[str, str] = {}
    failures: list[BaseException] = []
    # Neither run goes on to its setup script before both have looked the key up and missed.
    both_missed = threading.Barrier(2, timeout=60)

    def wait_for_the_other(phase: Phase, text: str) -> None:
        if text.startswith("setup cache miss"):
            both_missed.wait()

    def one(workspace: Path) -> None:
        client = docker.from_env()
        try:
            events = Recorder(on_log=wait_for_the_other)
            rig.run(workspace, env, client=client, events=events)
            logs[str(workspace)] = events.text(Phase.SETUP)
        except BaseException as exc:
            failures.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(w,)) for w in (repo, clone)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert all("setup cache miss (no entry yet)" in text for text in logs.values())
    entries = rig.cache.entries()
    assert 1 <= len(entries) <= 2
    rig.cache.evict()  # neither run holds one any more
    [survivor] = rig.cache.entries()
    assert survivor.created == max(e.created for e in entries)
    assert f"setup cache hit (entry {survivor.short}" in rig.run(repo, env).text(Phase.SETUP)


def chatops(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "CHATOPS_HOME": str(home),
    }
    return subprocess.run([sys.executable, "-m", "chatops.app.cli", *args], env=environ,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_cli_lists_and_clears_the_entries(rig: Rig, repo: Path, tmp_path: Path) -> None:
    for name in ("web", "api"):
        # Different scripts: environments with the same setup on one repository share entries.
        rig.run(repo, environment(rig.image, setup=f"{SETUP}echo {name}\n", name=name))
    where = ("--instance", rig.instance)

    listed = chatops("envs", "cache", "--json", *where, home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert sorted(e["environment"] for e in entries) == ["api", "web"]
    for entry in entries:
        assert len(entry["key"]) == 64 and entry["size"] > 0 and not entry["expired"]
        assert entry["ttl"] == 12 * HOUR and entry["last_used"] is not None

    table = chatops("envs", "cache", *where, home=tmp_path)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ENVIRONMENT", "KEY", "AGE", "LAST", "USED", "SIZE"]
    assert sorted(row.split()[0] for row in rows) == ["api", "web"]
    assert {row.split()[1] for row in rows} == {e["key"][:12] for e in entries}

    one = chatops("envs", "cache", "--clear", "web", *where, home=tmp_path)
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("removed 1 setup cache entries of web")
    assert rig.environments() == ["api"]

    rest = chatops("envs", "cache", *where, "--clear", home=tmp_path)
    assert rest.returncode == 0, rest.stderr
    assert rest.stdout.startswith("removed 1 setup cache entries")
    assert chatops("envs", "cache", *where, home=tmp_path).stdout == "the setup cache is empty\n"


def test_a_checkout_with_many_files_is_taken_out_of_the_entry_completely(
    rig: Rig, repo: Path
) -> None:
    # More paths than one `rm` line of the strip script holds, with awkward names.
    tree = repo / "many"
    for i in range(450):
        (tree / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (tree / f"d{i % 7}" / f"f {i}'\"$x-{i}.txt").write_text(str(i))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "many")
    rig.run(repo, environment(rig.image, setup=SETUP))
    [entry] = rig.cache.entries()
    with tempfile.TemporaryDirectory() as scratch:
        paths = {where.rsplit(":", 1)[1] for where, _ in
                 image_layers(rig.client, entry.image_id, Path(scratch)) if ":" in where}
    inside = {p.removesuffix(" (name)") for p in paths if p.startswith("workspace/")}
    assert "workspace/.deps/marker" in inside
    # Only the setup's own outputs were committed: no tracked file, no .git.
    assert {p for p in inside if not p.startswith(("workspace/.deps", "workspace/.wh."))
            and p not in ("workspace/", "workspace")} == set()
