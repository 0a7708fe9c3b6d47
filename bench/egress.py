"""What the network allowlist costs: agent start and fetch time, next to the alternatives.

    python bench/egress.py [--runs N] [--fetches N]

Each round, in one run on one engine:
    bare       `docker run --rm IMAGE true`
    off        a task with the network off: from DockerSandbox.run to the agent's first
               instruction (read from /proc/uptime, which containers share with the host)
    allowlist  the same with an allowlist: the internal network and the squid proxy come up
    fetch      the agent downloads a 1 MiB file N times from a web server container, once with
               `network = "on"` (straight to its address) and once through the allowlist proxy

The web server is a busybox httpd on a network the benchmark makes; nothing leaves the
machine. Everything runs under an instance of its own. Run by hand; CI never runs it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from chatops.core.environment import Environment  # noqa: E402
from chatops.core.network import BlockedRequest, NetworkPolicy  # noqa: E402
from chatops.core.ports import Phase, SandboxJob  # noqa: E402
from sandbox.docker_runner import DockerSandbox  # noqa: E402
from sandbox.images import DEFAULT_TAG, ensure_image  # noqa: E402
from sandbox.proxy_image import ensure_proxy_image  # noqa: E402

START = 'cut -d" " -f1 /proc/uptime > .agent-started\n'
FETCH = """
s=$(cut -d" " -f1 /proc/uptime)
i=0
while [ $i -lt {n} ]; do wget -q -O /dev/null http://{host}/blob || exit 1; i=$((i + 1)); done
e=$(cut -d" " -f1 /proc/uptime)
echo "$s $e" > .fetch
"""
SERVE = ("mkdir -p /www && head -c 1048576 /dev/zero > /www/blob && "
         "exec httpd -f -p 80 -h /www")
TARGET = "target.bench"


class Quiet:
    """SandboxEvents that keep nothing."""

    def phase(self, phase: Phase) -> None:
        pass

    def log(self, phase: Phase, text: str) -> None:
        pass

    def blocked(self, requests: Sequence[BlockedRequest]) -> None:
        if requests:
            raise SystemExit(f"the proxy refused a benchmark request: {requests[0]}")

    def cancelled(self) -> bool:
        return False


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def bare_docker_run() -> float:
    start = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", DEFAULT_TAG, "true"], check=True)
    return time.perf_counter() - start


def make_checkout(root: Path) -> Path:
    checkout = root / "checkout"
    checkout.mkdir()
    (checkout / "README.md").write_text("bench\n")
    git = ["git", "-C", str(checkout), "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return checkout


def run(sandbox: DockerSandbox, env: Environment, checkout: Path, instruction: str) -> None:
    sandbox.run(SandboxJob(task_id=f"bench-{uuid.uuid4().hex[:10]}", environment=env,
                           workspace=checkout, instruction=instruction), Quiet())


def start_time(sandbox: DockerSandbox, env: Environment, checkout: Path) -> float:
    before = uptime()
    run(sandbox, env, checkout, START)
    marker = checkout / ".agent-started"
    started = float(marker.read_text())
    marker.unlink()
    return started - before


def fetch_time(sandbox: DockerSandbox, env: Environment, checkout: Path, host: str,
               fetches: int) -> float:
    run(sandbox, env, checkout, FETCH.format(n=fetches, host=host))
    marker = checkout / ".fetch"
    begin, end = (float(v) for v in marker.read_text().split())
    marker.unlink()
    return end - begin


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fetches", type=int, default=50, help="1 MiB downloads per task")
    args = parser.parse_args()

    client = docker.from_env()
    ensure_image(client, DEFAULT_TAG)
    ensure_proxy_image(client)
    suffix = uuid.uuid4().hex[:8]
    network = client.networks.create(f"chatops-bench-out-{suffix}", driver="bridge")
    server = client.containers.run(DEFAULT_TAG, ["sh", "-c", SERVE], detach=True,
                                   name=f"chatops-bench-target-{suffix}", network=network.name)
    network.disconnect(server)
    network.connect(server, aliases=[TARGET])
    # Also on the default bridge, where a `network = "on"` agent can reach it by address.
    client.networks.get("bridge").connect(server)
    server.reload()
    direct = server.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]

    sandbox = DockerSandbox(client, instance=f"bench-{suffix}", egress_network=network.name)
    base = {"name": "bench", "repository": "/unused", "image": DEFAULT_TAG}
    off = Environment(**base)
    allowlist = Environment(**base, network=NetworkPolicy(mode="allowlist", allow=(TARGET,)))
    on = Environment(**base, network=NetworkPolicy(mode="on"))
    rows: dict[str, list[float]] = {k: [] for k in ("bare", "off", "allowlist", "on", "proxy")}
    try:
        with tempfile.TemporaryDirectory(prefix="chatops-bench-") as tmp:
            checkout = make_checkout(Path(tmp))
            bare_docker_run()  # the first container start of a session pays for page-ins
            for _ in range(args.runs):
                rows["bare"].append(bare_docker_run())
                rows["off"].append(start_time(sandbox, off, checkout))
                rows["allowlist"].append(start_time(sandbox, allowlist, checkout))
                rows["on"].append(fetch_time(sandbox, on, checkout, direct, args.fetches))
                rows["proxy"].append(fetch_time(sandbox, allowlist, checkout, TARGET,
                                                args.fetches))
    finally:
        server.remove(force=True)
        network.remove()
        client.close()

    m = {kind: statistics.median(values) for kind, values in rows.items()}
    print(f"medians of {args.runs} run(s)")
    print(f"bare docker run            {m['bare']:.3f} s")
    print(f"agent start, network off   {m['off']:.3f} s  ({m['off'] / m['bare']:.1f}x bare)")
    print(f"agent start, allowlist     {m['allowlist']:.3f} s  "
          f"({m['allowlist'] / m['bare']:.1f}x bare, {m['allowlist'] / m['off']:.2f}x off)")
    mib = args.fetches
    print(f"{mib} x 1 MiB, network on   {m['on']:.3f} s  ({mib / m['on']:.0f} MiB/s)")
    print(f"{mib} x 1 MiB, via proxy    {m['proxy']:.3f} s  ({mib / m['proxy']:.0f} MiB/s, "
          f"{m['proxy'] / m['on']:.2f}x on)")


if __name__ == "__main__":
    main()
