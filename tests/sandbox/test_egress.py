"""The network allowlist on the real engine: only allowed names, methods and ports get out.

The "outside" is a network these tests make, with busybox web servers under made-up names;
nothing here talks to any address the tests did not start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatops.core.errors import AgentFailed, SandboxError, TaskCancelled
from chatops.core.network import NetworkPolicy
from sandbox.docker_runner import DockerSandbox
from sandbox.egress import parse_denials, squid_config
from tests.egress_rig import SECURE_BODY, Outside
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
# A request written by hand to the proxy; prints the answer on one line.
ask() {
    printf "$1"'\\r\\n\\r\\n' | nc -w 2 "${proxy%:*}" "${proxy#*:}" | tr -d '\\r' | tr '\\n' ' '
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
# Plain HTTP inside a tunnel: only TLS may pass, and only to port 443 of an allowed name.
inside='\\r\\n\\r\\nGET / HTTP/1.0\\r\\nHost: x'
echo "tunnel_allowed $(ask "CONNECT allowed.test:443 HTTP/1.1$inside")" >> results.txt
echo "tunnel_port $(ask "CONNECT allowed.test:22 HTTP/1.1$inside")" >> results.txt
echo "tunnel_other $(ask "CONNECT blocked.test:443 HTTP/1.1$inside")" >> results.txt
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
    for tunnel in ("tunnel_allowed", "tunnel_port", "tunnel_other"):
        assert "body of" not in results[tunnel], tunnel

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


def test_an_allowed_name_that_resolves_to_loopback_is_refused(
    egress_sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path,
) -> None:
    policy = NetworkPolicy(mode="allowlist", allow=("localhost",))
    events = Recorder()
    run(egress_sandbox, task_id, workspace, environment(sandbox_image, network=policy),
        "wget -q -O - http://localhost:3128/ > got.txt || echo refused > got.txt", events)
    assert (workspace / "got.txt").read_text() == "refused\n"
    assert [(r.host, r.reason) for r in events.refused] == [("localhost", "address")]


def test_squid_config_denies_unlisted_names_before_anything_else() -> None:
    policy = NetworkPolicy(mode="allowlist",
                           allow=("pypi.org", "*.github.com", "api.github.com", "github.com"))
    config = squid_config(policy).splitlines()
    # squid refuses a list in which one entry covers another: *.github.com covers the rest.
    assert "acl allowed_hosts dstdomain -n .github.com pypi.org" in config
    assert "acl allowed_methods method GET HEAD" in config
    rules = [line for line in config if line.startswith("http_access")]
    assert rules == [
        "http_access deny !allowed_hosts",
        "http_access deny tunnel !tls_port",
        "http_access deny !tunnel !allowed_methods",
        "http_access deny to_loopback",
        "http_access allow all",
    ]


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


TLS_PROBES = """
proxy=${http_proxy#http://}
# openssl finds the task's authority through $SSL_CERT_FILE, as other tools do.
tls() {
    printf "$1"'\\r\\n\\r\\n' | openssl s_client -quiet -proxy "$proxy" -connect "$2:443" \\
        -servername "$2" -verify_return_error -verify_hostname "$2" 2>> tls-errors.txt
}
tls 'GET /hello.txt HTTP/1.0\\r\\nHost: secure.test' secure.test > get.txt
tls 'POST /hello.txt HTTP/1.0\\r\\nHost: secure.test\\r\\nContent-Length: 0' secure.test > post.txt
tls 'GET / HTTP/1.0\\r\\nHost: blocked.test' blocked.test > other.txt
openssl s_client -proxy "$proxy" -connect secure.test:443 -servername secure.test \\
    < /dev/null 2>/dev/null | openssl x509 -noout -issuer > issuer.txt
"""


def test_https_is_opened_so_methods_hold_there_too(
    docker_client: Any, instance: str, tls_image: str, task_id: str, workspace: Path,
    outside: Outside,
) -> None:
    sandbox = DockerSandbox(docker_client, instance=instance, egress_network=outside.network,
                            egress_ca=outside.origin_ca)
    policy = NetworkPolicy(mode="allowlist", allow=("secure.test",))
    events = Recorder()
    run(sandbox, task_id, workspace, environment(tls_image, network=policy), TLS_PROBES, events)

    assert SECURE_BODY in (workspace / "get.txt").read_text()
    post = (workspace / "post.txt").read_text()
    assert post.startswith("HTTP/1.1 403") and SECURE_BODY not in post
    assert "body of" not in (workspace / "other.txt").read_text()
    # What the agent is shown is minted by this task's authority, for the name it asked for.
    assert f"CN = chatops egress {task_id}" in (workspace / "issuer.txt").read_text()
    assert [(r.method, r.url, r.reason) for r in events.refused] == [
        ("POST", "https://secure.test/hello.txt", "method"),
        ("CONNECT", "blocked.test:443", "host"),
    ]


def test_the_proxy_refuses_an_origin_whose_certificate_it_cannot_verify(
    egress_sandbox: DockerSandbox, tls_image: str, task_id: str, workspace: Path,
) -> None:
    # egress_sandbox does not trust the test authority that signed secure.test.
    policy = NetworkPolicy(mode="allowlist", allow=("secure.test",))
    run(egress_sandbox, task_id, workspace, environment(tls_image, network=policy),
        TLS_PROBES)
    get = (workspace / "get.txt").read_text()
    assert SECURE_BODY not in get
    assert get.startswith("HTTP/1.1 503")


def test_refusals_are_reported_while_the_agent_runs_and_once_each(
    egress_sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path,
) -> None:
    # The agent never ends by itself: only a refusal reported while it runs can cancel it.
    # The task_id fixture then checks that the proxy, its network and volume went with it.
    events = Recorder(cancel_when=lambda r: bool(r.refused))
    env = environment(sandbox_image, network=POLICY, timeout=60)
    with pytest.raises(TaskCancelled, match="agent phase"):
        run(egress_sandbox, task_id, workspace, env,
            "wget -q http://blocked.test/ || sleep 1000", events)
    assert [(r.method, r.host) for r in events.refused] == [("GET", "blocked.test")]
