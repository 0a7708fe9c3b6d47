"""The `deployment` fixture: real Redis, real worker processes, real Docker, real git.

The CLI and the worker run as subprocesses with their own environment, exactly as a user runs
them; the test reads results back through the CLI's --json output and the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chatops.app.settings import Settings
from chatops.app.wiring import Runtime

CANARY = "canary-7f3c9e1b5d"
ROOT = Path(__file__).resolve().parents[1]

BASE_ENVIRONMENTS = """
[environments.ok]
repository = "{repo}"
queue = "{queue}"
timeout = "60s"
setup_timeout = "60s"
secrets = ["CANARY_SECRET"]
setup = '''
echo "setup sees $CANARY_SECRET"
mkdir -p .deps && echo cached > .deps/marker
'''
[environments.ok.resources]
memory = "128m"
pids = 64
"""


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def make_repository(root: Path) -> Path:
    """A bare repository with a main branch holding a small project."""
    seed = root / "seed"
    seed.mkdir()
    (seed / "retry.py").write_text("def retry(op, attempts=3):\n    return op()\n")
    (seed / "README.md").write_text("# demo\n")
    (seed / ".gitignore").write_text(".deps/\n")
    git("-c", "init.defaultBranch=main", "init", "-q", cwd=seed)
    git("add", "-A", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "init",
        cwd=seed)
    bare = root / "project.git"
    git("clone", "-q", "--bare", str(seed), str(bare), cwd=root)
    return bare


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and every process under it, as a crashed machine would.

    RQ's work horse leaves its parent's process group (setsid), so killing the group alone
    would leave the horse running the task.
    """
    doomed = {proc.pid}
    for _ in range(3):  # children, grandchildren, ...
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) in doomed:
                doomed.add(int(stat.parent.name))
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


@dataclass
class Deployment:
    root: Path
    repo: Path
    queue: str
    environ: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def runtime(self) -> Runtime:
        return Runtime(Settings.from_env(self.environ))

    def write_environments(self, extra: str = "", replace: str | None = None) -> None:
        text = replace if replace is not None else BASE_ENVIRONMENTS + extra
        path = Path(self.environ["CHATOPS_ENVIRONMENTS"])
        path.write_text(text.replace("{repo}", str(self.repo)).replace("{queue}", self.queue))

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 180,
            env: dict[str, str] | None = None, cwd: Path | None = None,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chatops.app.cli", *args], input=stdin, text=True,
            capture_output=True, env={**self.environ, **(env or {})}, timeout=timeout,
            cwd=cwd or self.root,
        )

    def json(self, *args: str) -> object:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def work(self) -> subprocess.CompletedProcess[str]:
        """Run a worker until the queue is empty."""
        result = self.cli("worker", "--burst", self.queue)
        assert result.returncode == 0, result.stderr
        return result

    def start_worker(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatops.app.cli", "worker", self.queue],
            env={**self.environ, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def wait_for(self, task_id: str, states: set[str], timeout: float = 60) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.runtime.store.get(task_id)
            if view.state.value in states:
                return {"state": view.state.value, "reason": view.reason}
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} never reached {states}")

    def submit(self, instruction: str, env: str = "ok") -> str:
        result = self.cli("exec", "--env", env, "--detach", instruction)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


@pytest.fixture
def deployment(tmp_path, redis_url, redis_conn, sandbox_image, docker_client):
    repo = make_repository(tmp_path)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    environ = {
        **os.environ,
        # The CLI subprocesses import this checkout even when it is not installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "CHATOPS_HOME": str(tmp_path / "state"),
        "CHATOPS_REDIS_URL": redis_url,
        "CHATOPS_ENVIRONMENTS": str(tmp_path / "environments.toml"),
        "CANARY_SECRET": CANARY,
        # Its own instance: this deployment's reaper and cache never touch another's.
        "CHATOPS_INSTANCE": f"test-{queue}",
    }
    deployment = Deployment(tmp_path, repo, queue, environ)
    deployment.write_environments()
    yield deployment
    for proc in deployment.workers:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    from sandbox.cache import SetupCache
    from sandbox.reaper import reap

    reap(docker_client, instance=environ["CHATOPS_INSTANCE"])
    SetupCache(docker_client, instance=environ["CHATOPS_INSTANCE"]).clear()
