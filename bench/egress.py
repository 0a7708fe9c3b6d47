"""What the network allowlist costs: agent start and fetch time, next to the alternatives.

    python bench/egress.py [--runs N] [--fetches N]

Each round, in one run on one engine:
    bare       `docker run --rm IMAGE true`
    off        a task with the network off: from DockerSandbox.run to the agent's first
               instruction (read from /proc/uptime, which containers share with the host)
    allowlist  the same with an allowlist: the internal network and the squid proxy come up
    fetch      the agent downloads a 1 MiB file N times from a web server container, once with
               `network = "on"` (straight to its address) and once through the allowlist proxy
    https      the same over HTTPS, one `openssl s_client` connection per download: straight
               to the origin, and through the proxy, which opens each tunnel to check it

The web servers are a busybox httpd and an `openssl s_server` on a network the benchmark
makes (the test rig's HTTPS origin); nothing leaves the machine. Everything runs under an
instance of its own. Run by hand; CI never runs it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402
from benchkit import bare_docker_run, make_checkout  # noqa: E402

from chatops.core.environment import Environment  # noqa: E402
from chatops.core.network import BlockedRequest, NetworkPolicy  # noqa: E402
from chatops.core.ports import Phase, SandboxJob  # noqa: E402
from sandbox.docker_runner import DockerSandbox  # noqa: E402
from sandbox.egress_tls import make_authority  # noqa: E402
from sandbox.images import DEFAULT_TAG, ensure_image  # noqa: E402
from sandbox.proxy_image import ensure_proxy_image  # noqa: E402
from tests.egress_rig import build_tls_image, start_secure_origin  # noqa: E402

START = 'cut -d" " -f1 /proc/uptime > .agent-started\n'
FETCH = """
s=$(cut -d" " -f1 /proc/uptime)
i=0
while [ $i -lt {n} ]; do wget -q -O /dev/null http://{host}/blob || exit 1; i=$((i + 1)); done
e=$(cut -d" " -f1 /proc/uptime)
echo "$s $e" > .fetch
"""
TLS_FETCH = """
proxy=${{http_proxy:-}}
proxy=${{proxy#http://}}
s=$(cut -d" " -f1 /proc/uptime)
i=0
while [ $i -lt {n} ]; do
    printf 'GET /blob HTTP/1.0\\r\\nHost: secure.test\\r\\n\\r\\n' \\
        | openssl s_client -quiet {via} -connect {host}:443 -servername secure.test \\
            > /tmp/last 2>/dev/null || exit 1
    i=$((i + 1))
done
e=$(cut -d" " -f1 /proc/uptime)
wc -c < /tmp/last > .last-size
echo "$s $e" > .fetch
"""
SERVE = ("mkdir -p /www && head -c 1048576 /dev/zero > /www/blob && "
         "exec httpd -f -p 80 -h /www")
TARGET = "target.bench"
MIB = 1024 * 1024


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


def fetch_time(sandbox: DockerSandbox, env: Environment, checkout: Path, script: str) -> float:
    run(sandbox, env, checkout, script)
    marker = checkout / ".fetch"
    begin, end = (float(v) for v in marker.read_text().split())
    marker.unlink()
    last = checkout / ".last-size"
    if last.exists():
        if int(last.read_text()) < MIB:
            raise SystemExit("an HTTPS download came back short")
        last.unlink()
    return end - begin


def address(container: Any, network: str) -> str:
    container.reload()
    return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fetches", type=int, default=50, help="1 MiB downloads per task")
    args = parser.parse_args()

    client = docker.from_env()
    ensure_image(client, DEFAULT_TAG)
    ensure_proxy_image(client)
    tls_image = build_tls_image(client, DEFAULT_TAG)
    origin_ca = make_authority("bench origins")
    suffix = uuid.uuid4().hex[:8]
    network = client.networks.create(f"chatops-bench-out-{suffix}", driver="bridge")
    bridge = client.networks.get("bridge")
    server = client.containers.run(
        DEFAULT_TAG, ["sh", "-c", SERVE], detach=True, name=f"chatops-bench-target-{suffix}",
        network=network.name, networking_config={
            network.name: client.api.create_endpoint_config(aliases=[TARGET])})
    secure = start_secure_origin(client, tls_image, network, f"chatops-bench-secure-{suffix}",
                                 origin_ca, {"blob": bytes(MIB)})
    # Also on the default bridge, where a `network = "on"` agent reaches them by address.
    for container in (server, secure):
        bridge.connect(container)

    sandbox = DockerSandbox(client, instance=f"bench-{suffix}", egress_network=network.name,
                            egress_ca=origin_ca.certificate_pem)
    base = {"name": "bench", "repository": "/unused"}
    policy = NetworkPolicy(mode="allowlist", allow=(TARGET, "secure.test"))
    off = Environment(**base, image=DEFAULT_TAG)
    allowlist = Environment(**base, image=DEFAULT_TAG, network=policy)
    on = Environment(**base, image=DEFAULT_TAG, network=NetworkPolicy(mode="on"))
    tls_on = Environment(**base, image=tls_image, network=NetworkPolicy(mode="on"))
    tls_allowlist = Environment(**base, image=tls_image, network=policy)
    n = args.fetches
    scripts = {
        "on": FETCH.format(n=n, host=address(server, "bridge")),
        "proxy": FETCH.format(n=n, host=TARGET),
        "tls on": TLS_FETCH.format(n=n, via="", host=address(secure, "bridge")),
        "tls proxy": TLS_FETCH.format(n=n, via='-proxy "$proxy"', host="secure.test"),
    }
    kinds = ("bare", "off", "allowlist", "on", "proxy", "tls on", "tls proxy")
    rows: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        with tempfile.TemporaryDirectory(prefix="chatops-bench-") as tmp:
            checkout = make_checkout(Path(tmp))
            bare_docker_run()  # the first container start of a session pays for page-ins
            for _ in range(args.runs):
                rows["bare"].append(bare_docker_run())
                rows["off"].append(start_time(sandbox, off, checkout))
                rows["allowlist"].append(start_time(sandbox, allowlist, checkout))
                for kind, env in (("on", on), ("proxy", allowlist), ("tls on", tls_on),
                                  ("tls proxy", tls_allowlist)):
                    rows[kind].append(fetch_time(sandbox, env, checkout, scripts[kind]))
    finally:
        for container in (server, secure):
            container.remove(force=True)
        network.remove()
        client.images.remove(tls_image, force=True)
        client.close()

    m = {kind: statistics.median(values) for kind, values in rows.items()}
    print(f"medians of {args.runs} run(s)")
    print(f"bare docker run              {m['bare']:.3f} s")
    print(f"agent start, network off     {m['off']:.3f} s  ({m['off'] / m['bare']:.1f}x bare)")
    print(f"agent start, allowlist       {m['allowlist']:.3f} s  "
          f"({m['allowlist'] / m['bare']:.1f}x bare, {m['allowlist'] / m['off']:.2f}x off)")
    for scheme, direct, proxied in (("http ", "on", "proxy"), ("https", "tls on", "tls proxy")):
        print(f"{n} x 1 MiB {scheme}, network on  {m[direct]:.3f} s  ({n / m[direct]:.0f} MiB/s)")
        print(f"{n} x 1 MiB {scheme}, allowlist   {m[proxied]:.3f} s  "
              f"({n / m[proxied]:.0f} MiB/s, {m[proxied] / m[direct]:.2f}x on)")


if __name__ == "__main__":
    main()
