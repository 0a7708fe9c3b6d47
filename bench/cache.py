"""Time a cold setup against a warm setup cache hit, each next to a bare container start.

    python bench/cache.py [--runs N] [--files N] [--sleep S] [--maintenance] [--deps-in-workspace]

Each round clears the cache, then runs one task that misses (the setup script runs: it sleeps
and writes a few thousand files, standing for a dependency install) and one that hits (the
script is skipped), each right after a bare `docker run --rm IMAGE true`. Reported per task:
the setup phase (from the sandbox's SETUP event to its AGENT event), and the start, from
calling DockerSandbox.run to the agent's first instruction running (read from /proc/uptime,
which containers share with the host). Uses the sandbox directly on the busybox image, under
an instance of its own whose entries it removes at the end. Run by hand; CI never runs it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402
from benchkit import bare_docker_run, make_checkout  # noqa: E402

from chatops.core.environment import Environment  # noqa: E402
from chatops.core.network import BlockedRequest  # noqa: E402
from chatops.core.ports import Phase, SandboxJob  # noqa: E402
from sandbox.cache import SetupCache  # noqa: E402
from sandbox.docker_runner import DockerSandbox  # noqa: E402
from sandbox.images import DEFAULT_TAG, ensure_image  # noqa: E402

INSTRUCTION = 'cut -d" " -f1 /proc/uptime > .agent-started\n'
SETUP = """
sleep {sleep}
mkdir -p {deps} .deps
i=0
while [ $i -lt {files} ]; do echo "$i" > {deps}/f$i; i=$((i + 1)); done
echo ok > .deps/marker
"""


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


@dataclass
class Clocked:
    """SandboxEvents that time the phases."""

    at: dict[Phase, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def phase(self, phase: Phase) -> None:
        self.at[phase] = time.perf_counter()

    def log(self, phase: Phase, text: str) -> None:
        self.lines.append(text)

    def blocked(self, requests: Sequence[BlockedRequest]) -> None:
        pass  # the benchmark's environments keep the network off

    def cancelled(self) -> bool:
        return False


def one_task(sandbox: DockerSandbox, env: Environment, checkout: Path) -> tuple[float, float, str]:
    """(setup phase s, start s, the setup log's cache line) of one task."""
    events = Clocked()
    start_uptime = uptime()
    sandbox.run(SandboxJob(task_id=f"bench-{uuid.uuid4().hex[:10]}", environment=env,
                           workspace=checkout, instruction=INSTRUCTION), events)
    started = float((checkout / ".agent-started").read_text())
    (checkout / ".agent-started").unlink()
    setup = events.at[Phase.AGENT] - events.at[Phase.SETUP]
    line = next((t for t in events.lines if t.startswith("setup cache")), "")
    return setup, started - start_uptime, line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=3000, help="files the setup writes")
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds the setup sleeps")
    parser.add_argument("--maintenance", action="store_true",
                        help="give the environment a (trivial) maintenance script")
    parser.add_argument("--deps-in-workspace", action="store_true",
                        help="write the files to the checkout's .deps/ instead of /opt/deps")
    args = parser.parse_args()

    client = docker.from_env()
    ensure_image(client, DEFAULT_TAG)
    instance = f"bench-{uuid.uuid4().hex[:8]}"
    sandbox = DockerSandbox(client, instance=instance)
    deps = ".deps" if args.deps_in_workspace else "/opt/deps"
    env = Environment(
        name="bench", repository="/unused", image=DEFAULT_TAG,
        setup=SETUP.format(sleep=args.sleep, deps=deps, files=args.files),
        maintenance="true" if args.maintenance else "", setup_timeout=600,
    )
    rows: dict[str, list[tuple[float, float, float]]] = {"cold": [], "warm": []}
    try:
        with tempfile.TemporaryDirectory(prefix="chatops-bench-") as tmp:
            checkout = make_checkout(Path(tmp), (".deps/", ".agent-started"))
            bare_docker_run()  # the first container start of a session pays for page-ins
            for _ in range(args.runs):
                SetupCache(client, instance=instance).clear()
                for kind in ("cold", "warm"):
                    bare = bare_docker_run()
                    setup, start, line = one_task(sandbox, env, checkout)
                    expected = "miss" if kind == "cold" else "hit"
                    if expected not in line:
                        raise SystemExit(f"expected a cache {expected}, got: {line!r}")
                    rows[kind].append((setup, start, bare))
    finally:
        SetupCache(client, instance=instance).clear()
        client.close()

    def median(kind: str, column: int) -> float:
        return statistics.median(row[column] for row in rows[kind])

    where = ".deps/ in the checkout" if args.deps_in_workspace else "/opt/deps"
    print(f"setup: sleep {args.sleep:g} s + {args.files} files in {where}; "
          f"maintenance: {'yes' if args.maintenance else 'none'}; medians of {args.runs} run(s)")
    print(f"{'':6} {'setup phase':>12} {'agent start':>12} {'bare run':>10} {'start/bare':>11}")
    for kind in ("cold", "warm"):
        setup, start, bare = (median(kind, c) for c in range(3))
        print(f"{kind:6} {setup:>11.3f}s {start:>11.3f}s {bare:>9.3f}s {start / bare:>10.1f}x")
    setup_ratio = median("warm", 0) / median("cold", 0)
    start_ratio = median("warm", 1) / median("cold", 1)
    print(f"warm/cold setup phase: {setup_ratio:.1%} (aim < 5%); "
          f"warm/cold agent start: {start_ratio:.1%}")


if __name__ == "__main__":
    main()
