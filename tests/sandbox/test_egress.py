"""The network allowlist on the real engine: only allowed names, methods and ports get out.

The "outside" is a network these tests make, with busybox web servers under made-up names;
nothing here talks to any address the tests did not start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatops.core.errors import AgentFailed, SandboxError
from chatops.core.network import NetworkPolicy
from sandbox.docker_runner import DockerSandbox
from sandbox.egress import parse_denials, squid_config
from tests.egress_rig import Outside
from tests.sandbox.helpers import Recorder, environment, run

pytestmark = pytest.mark.docker

@pytest.fixture
def egress_sandbox(docker_client: Any, instance: str, outside: Outside) -> DockerSandbox:
    return DockerSandbox(docker_client, instance=instance, egress_network=outside.network)


POLICY = NetworkPolicy(mode="allowlist", allow=("allowed.test", "*.wild.test"))

PROBES = """
proxy=${http_proxy#http://}
try() {
    name=$1; shift
    if "$@" > /tmp/out 2>/tmp/err; then echo "$name ok $(head -c 60 /tmp/out)"
    else echo "$name refused"; fi >> results.txt
}
# A request written by hand to the proxy; prints the status line of the answer.
ask() {
    printf "$1"'\\r\\n\\r\\n' | nc -w 2 "${proxy%:*}" "${proxy#*:}" | head -n 1 | tr -d '\\r'
}
try allowed wget -q -O - http://allowed.test/
try wildcard wget -q -O - http://api.wild.test/
try other_host wget -q -O - http://blocked.test/
try raw_ip wget -q -O - "http://$BLOCKED_IP/"
try raw_ip_direct wget -Y off -q -T 3 -O - "http://$BLOCKED_IP/"
try name_direct wget -Y off -q -T 3 -O - http://allowed.test/
try dns nslookup allowed.test
try dns_direct nslookup allowed.test "$ALLOWED_IP"
post='POST http://allowed.test/ HTTP/1.1\\r\\nHost: allowed.test\\r\\nContent-Length: 0'
echo "post $(ask "$post")" >> results.txt
echo "tunnel_allowed $(ask 'CONNECT allowed.test:443 HTTP/1.1')" >> results.txt
echo "tunnel_port $(ask 'CONNECT allowed.test:22 HTTP/1.1')" >> results.txt
echo "tunnel_other $(ask 'CONNECT blocked.test:443 HTTP/1.1')" >> results.txt
"""


def _results(workspace: Path) -> dict[str, str]:
    lines = (workspace / "results.txt").read_text().splitlines()
    return {name: rest for name, _, rest in (line.partition(" ") for line in lines)}


def test_only_allowed_names_methods_and_ports_get_out_and_refusals_are_recorded(
    egress_sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path,
    outside: Outside,
) -> None:
    env = environment(sandbox_image, network=POLICY, env={
        "BLOCKED_IP": outside.addresses["blocked"], "ALLOWED_IP": outside.addresses["allowed"]})
    events = Recorder()
    run(egress_sandbox, task_id, workspace, env, PROBES, events, attempt=2)
    results = _results(workspace)

    assert results["allowed"] == "ok body of allowed"
    assert results["wildcard"] == "ok body of wild"
    for refused in ("other_host", "raw_ip", "raw_ip_direct", "name_direct", "dns",
                    "dns_direct"):
        assert results[refused] == "refused", refused
    assert results["post"].startswith("HTTP/1.1 403")
    assert results["tunnel_allowed"] == "HTTP/1.1 200 Connection established"
    assert results["tunnel_port"].startswith("HTTP/1.1 403")
    assert results["tunnel_other"].startswith("HTTP/1.1 403")

    refused = [(r.method, r.host, r.reason, r.attempt) for r in events.refused]
    assert refused == [
        ("GET", "blocked.test", "host", 2),
        ("GET", outside.addresses["blocked"], "host", 2),
        ("POST", "allowed.test", "method", 2),
        ("CONNECT", "allowed.test", "port", 2),
        ("CONNECT", "blocked.test", "host", 2),
    ]
    assert events.refused[0].url == "http://blocked.test/"
    assert "network: blocked" not in events.text()  # the sandbox reports; the service logs


def test_refusals_are_reported_when_the_agent_fails(
    egress_sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path,
) -> None:
    env = environment(sandbox_image, network=POLICY)
    events = Recorder()
    with pytest.raises(AgentFailed):
        run(egress_sandbox, task_id, workspace, env,
            "wget -q -O install.sh http://blocked.test/install.sh && sh install.sh", events)
    assert [(r.method, r.url) for r in events.refused] == [
        ("GET", "http://blocked.test/install.sh")]


def test_squid_config_denies_unlisted_names_before_anything_else() -> None:
    policy = NetworkPolicy(mode="allowlist",
                           allow=("pypi.org", "*.github.com", "api.github.com", "github.com"))
    config = squid_config(policy).splitlines()
    # squid refuses a list in which one entry covers another: *.github.com covers the rest.
    assert "acl allowed_hosts dstdomain -n .github.com pypi.org" in config
    assert "acl allowed_methods method GET HEAD" in config
    rules = [line for line in config if line.startswith("http_access")]
    assert rules[0] == "http_access deny !allowed_hosts"
    assert rules[-1] == "http_access deny all"


def test_parse_denials_reads_refusals_only_and_redacts_urls() -> None:
    log = "\n".join([
        "1763780000.250 GET http://pypi.org/simple/ 200 TCP_MISS",
        "1763780001.500 GET http://evil.test/?key=s3cret 403 TCP_DENIED",
        "1763780002.000 CONNECT pypi.org:8443 403 TCP_DENIED",
        "garbage line",
        "notatime GET http://x.test/ 403 TCP_DENIED",
    ])
    policy = NetworkPolicy(mode="allowlist", allow=("pypi.org",))
    denied = parse_denials(log, policy, attempt=0,
                           redact=lambda text: text.replace("s3cret", "[redacted]"))
    assert [(d.method, d.host, d.reason, d.url) for d in denied] == [
        ("GET", "evil.test", "host", "http://evil.test/?key=[redacted]"),
        ("CONNECT", "pypi.org", "port", "pypi.org:8443"),
    ]
    assert denied[0].at.timestamp() == pytest.approx(1763780001.5)


def test_a_missing_outbound_network_fails_before_setup_with_the_setting_to_fix(
    docker_client: Any, instance: str, sandbox_image: str, task_id: str, workspace: Path,
) -> None:
    sandbox = DockerSandbox(docker_client, instance=instance,
                            egress_network=f"chatops-missing-{task_id}")
    events = Recorder()
    with pytest.raises(SandboxError) as failed:
        run(sandbox, task_id, workspace, environment(sandbox_image, network=POLICY,
                                                     setup="echo setup ran"), "true", events)
    assert "does not exist" in failed.value.message
    assert "CHATOPS_EGRESS_NETWORK" in failed.value.hint
    assert "setup ran" not in events.text()
