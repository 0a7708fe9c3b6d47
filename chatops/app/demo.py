"""`chatops demo`: one real task end to end on embedded defaults.

SQLite in a scratch directory, a private Redis on a Unix socket, the local Docker engine, a demo
repository (a bare git repository on disk, so the `local` forge opens the pull request), the
offline busybox sandbox image, a worker process and the `script` agent. Nothing is faked: the
worker is the same `chatops worker` a deployment runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from chatops.app import progress
from chatops.app.local_redis import LocalRedis
from chatops.app.settings import Settings
from chatops.app.wiring import Runtime
from chatops.core import texts
from chatops.core.lifecycle import TaskState
from chatops.core.task import CliOrigin, TaskRequest

DEMO_ENV = "demo"


def run_demo(keep: bool = False) -> int:
    home = Path(tempfile.mkdtemp(prefix="chatops-demo-"))
    data = resources.files("chatops.app") / "demo_data"
    print(f"chatops demo — scratch directory {home}")
    worker: subprocess.Popen[bytes] | None = None
    try:
        repository = _seed_repository(home, data)
        environments = home / "environments.toml"
        template = (data / "environments.toml").read_text()
        environments.write_text(template.replace("{repository}", str(repository)))
        with LocalRedis(home / "redis") as redis_server:
            environ = {
                **os.environ,
                "CHATOPS_HOME": str(home / "state"),
                "CHATOPS_REDIS_URL": redis_server.url,
                "CHATOPS_ENVIRONMENTS": str(environments),
                # The environment's one secret: the setup script sees it, the agent never does.
                "DEMO_PACKAGE_TOKEN": secrets.token_hex(16),
                # Its own label, so the demo's cache entry is removed with the demo.
                "CHATOPS_INSTANCE": f"demo-{home.name}",
            }
            runtime = Runtime(Settings.from_env(environ))
            _ensure_image(runtime)
            worker = subprocess.Popen(
                [sys.executable, "-m", "chatops.app.cli", "worker", "--burst",
                 runtime.catalogue.get(DEMO_ENV).queue],
                env=environ, stdout=subprocess.DEVNULL, stderr=(home / "worker.log").open("wb"),
            )
            task = runtime.service.submit(TaskRequest(
                origin=CliOrigin(user="demo"), requester="demo", environment=DEMO_ENV,
                instruction=(data / "instruction.sh").read_text(),
            ))
            print(f"task {task.id} — {task.reason}")
            task = progress.follow(runtime.store, task.id)
            print(texts.final_line(task))
            worker.wait(timeout=60)
            if task.state is not TaskState.SUCCEEDED or not task.pull_request:
                print(f"worker log: {home / 'worker.log'}", file=sys.stderr)
                keep = True
                return 1
            _show_pull_request(task.pull_request.number, repository)
            return 0
    finally:
        if worker and worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=30)
        if not keep:
            _forget_cache(f"demo-{home.name}")
        if keep:
            print(f"demo files kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def _forget_cache(instance: str) -> None:
    """The demo's repository is gone with its scratch directory: so is its setup cache."""
    try:
        import docker

        from sandbox.cache import SetupCache

        SetupCache(docker.from_env(), instance=instance).clear()
    except Exception as exc:  # the demo's outcome is already printed; say what is left
        print(f"could not remove the demo's cache entry: {exc}", file=sys.stderr)


def _seed_repository(home: Path, data: resources.abc.Traversable) -> Path:
    source = home / "seed"
    source.mkdir()
    for item in (data / "repo").iterdir():
        (source / item.name).write_bytes(item.read_bytes())
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@example.invalid",
           "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "A retry helper and its test"]):
        subprocess.run([*git, *args], cwd=source, check=True)
    bare = home / "demo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(bare)], check=True)
    shutil.rmtree(source)
    return bare


def _ensure_image(runtime: Runtime) -> None:
    from sandbox.images import ensure_image

    image = runtime.catalogue.get(DEMO_ENV).image
    print(f"sandbox image: {image} (built offline from busybox when missing)")
    ensure_image(runtime.docker, image)


def _show_pull_request(number: int, repository: Path) -> None:
    from integrations.git.local_forge import LocalForge

    forge = LocalForge()
    pr = forge.get_pull_request(str(repository), number)
    print()
    print(f"Pull request #{pr.number}: {pr.title}")
    print(f"  {pr.branch} -> {pr.base}   {pr.url}")
    print()
    print("".join(f"  {line}\n" for line in pr.body.splitlines()))
    sys.stdout.flush()
    sys.stdout.buffer.write(forge.pull_request_diff(str(repository), number))
    sys.stdout.flush()
