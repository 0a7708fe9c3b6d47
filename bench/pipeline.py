"""Time a real task against a bare container start, measured side by side in one run.

    python bench/pipeline.py [--runs N]

For each run: the time from `chatops exec` being started to the agent's first instruction
running (read from /proc/uptime, which containers share with the host), and to the pull
request existing (the task's `succeeded` transition), next to `docker run --rm IMAGE true`.
Uses the same embedded defaults as the demo: SQLite, a private Redis, the local Docker engine,
a bare repository on disk, the script agent. Run by hand; CI never runs it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatops.app.local_redis import LocalRedis  # noqa: E402
from chatops.app.settings import Settings  # noqa: E402
from chatops.app.wiring import Runtime  # noqa: E402
from chatops.core.lifecycle import TaskState  # noqa: E402

IMAGE = "chatops/sandbox:busybox"
ENVIRONMENTS = """
[environments.bench]
repository = "{repo}"
queue = "bench"
setup = "true"
"""
INSTRUCTION = 'cut -d" " -f1 /proc/uptime > .agent-started\necho change >> README.md\n'


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def make_repo(root: Path) -> Path:
    seed = root / "seed"
    seed.mkdir()
    (seed / "README.md").write_text("bench\n")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "-c", "init.defaultBranch=main", "init", "-q"], cwd=seed, check=True)
    subprocess.run([*git, "add", "-A"], cwd=seed, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=seed, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(root / "repo.git")], check=True)
    return root / "repo.git"


def bare_docker_run() -> float:
    start = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", IMAGE, "true"], check=True)
    return time.perf_counter() - start


def one_task(environ: dict[str, str], runtime: Runtime) -> tuple[float, float]:
    start_uptime, start_wall = uptime(), time.time()
    done = subprocess.run([sys.executable, "-m", "chatops.app.cli", "exec", "--env", "bench",
                           "--quiet", INSTRUCTION], env=environ, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"task failed:\n{done.stdout}\n{done.stderr}")
    [task] = runtime.store.recent(limit=1)
    patch = (runtime.store.patch(task.id) or b"").decode()
    started = next(float(line[1:]) for line in patch.splitlines()
                   if line.startswith("+") and line[1:2].isdigit())
    succeeded = next(t.at for t in runtime.store.transitions(task.id)
                     if t.to_state is TaskState.SUCCEEDED)
    return started - start_uptime, succeeded.timestamp() - start_wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="chatops-bench-") as scratch:
        root = Path(scratch)
        repo = make_repo(root)
        (root / "environments.toml").write_text(ENVIRONMENTS.replace("{repo}", str(repo)))
        with LocalRedis(root / "redis") as redis_server:
            instance = f"bench-{root.name}"  # its own label: its cache entries go with it
            environ = {**os.environ, "PYTHONPATH": str(ROOT), "CHATOPS_HOME": str(root / "state"),
                       "CHATOPS_INSTANCE": instance,
                       "CHATOPS_REDIS_URL": redis_server.url,
                       "CHATOPS_ENVIRONMENTS": str(root / "environments.toml")}
            runtime = Runtime(Settings.from_env(environ))
            from sandbox.images import ensure_image

            ensure_image(runtime.docker, IMAGE)
            worker = subprocess.Popen([sys.executable, "-m", "chatops.app.cli", "worker", "bench"],
                                      env=environ, stderr=subprocess.DEVNULL)
            try:
                bare_docker_run()  # warm the engine's caches before measuring either side
                bare, to_agent, to_pr = [], [], []
                for _ in range(runs):  # interleaved, so drift hits both sides alike
                    bare.append(bare_docker_run())
                    agent_s, pr_s = one_task(environ, runtime)
                    to_agent.append(agent_s)
                    to_pr.append(pr_s)
            finally:
                worker.terminate()
                worker.wait(timeout=30)
                from sandbox.cache import SetupCache

                SetupCache(runtime.docker, instance=instance).clear()
    base = statistics.median(bare)
    print(f"runs: {runs} (medians)")
    print(f"bare `docker run --rm {IMAGE} true`   {base:6.2f} s   1.0x")
    for label, values in (("exec -> agent process starts", to_agent),
                          ("exec -> pull request exists", to_pr)):
        median = statistics.median(values)
        print(f"{label:<36} {median:6.2f} s  {median / base:4.1f}x")


if __name__ == "__main__":
    main()
