"""The network allowlist: an agent whose only way out is a filtering proxy it cannot touch.

For an environment with ``network.mode = "allowlist"`` a run adds, next to its containers:

    network  a per-task Docker network with ``internal=True`` (nothing is forwarded off it)
             and no address for the host on it: its members reach each other and nothing
             else (no raw IPs, no other containers, no service on the host)
    proxy    squid (``sandbox.proxy_image``), a member of that network and of the outbound
             network (``bridge`` unless configured), as an unprivileged user with a read-only
             root, serving the internal network's addresses only. Its rules come from the
             policy: the host name as written in the request must be on the allowlist
             (``dstdomain -n``: no lookup, so a refused name is never resolved), tunnels
             (HTTPS) go to port 443 of an allowed host only, other requests are http(s) to
             ports 80 and 443, and every request, plain or inside a tunnel, may use the
             allowed methods only. To see inside a tunnel squid opens it with a certificate
             minted by the task's own authority (``sandbox.egress_tls``) and verifies the
             origin's certificate itself; anything in a tunnel that is not TLS is refused.
    agent    on the internal network only, with HTTP(S)_PROXY set to the proxy, the task's
             authority as the one it trusts (SSL_CERT_FILE and the like), and its DNS server
             set to the proxy's address, where nothing answers DNS. Docker's resolver in the
             container forwards there, from the container, instead of to the host's
             resolvers: the agent cannot resolve any name itself, so DNS queries cannot carry
             data out. The proxy resolves allowed names for it.

Each refusal is a line of squid's access log (its stdout), followed while the agent runs; when
the agent phase ends, however it ends, the proxy is stopped and the rest of its log read. They
become ``BlockedRequest``s for the task's log and its result.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
from docker.models.containers import Container

from chatops.core.errors import SandboxError
from chatops.core.network import BlockedRequest, BlockReason, NetworkPolicy
from sandbox.egress_tls import (
    CA_FILE_NAME,
    CA_VARIABLES,
    Authority,
    add_certificate_db,
    add_file,
    make_authority,
)
from sandbox.engine import kill
from sandbox.logstream import LogPump
from sandbox.naming import RunNames
from sandbox.proxy_image import CA_BUNDLE, CERTGEN, PROXY_UID, SQUID_CONF, ensure_proxy_image
from sandbox.taskfiles import CHATOPS_DIR
from sandbox.watch import LOG_DRAIN_S

log = logging.getLogger(__name__)

PROXY_PORT = 3128
# The engine's default network; deployments that want the proxy elsewhere name their own.
DEFAULT_OUTBOUND = "bridge"
# Seconds squid gets to start listening; it takes well under one on a 2-core machine.
READY_TIMEOUT_S = 20.0
# "Accepting SSL bumped HTTP Socket connections at ...", once squid listens.
READY_LINE = b"HTTP Socket connections at"
# The proxy's own limits: it relays bytes and keeps no cache.
PROXY_MEMORY = 256 * 1024**2
PROXY_PIDS = 64
# Logged URLs are cut to this many characters: enough to recognise, not a data channel.
URL_LIMIT = 200
_TLS_PORT = "443"
_WEB_PORTS = ("80", "443")
# squid's own pages (its cache manager), whatever host they are asked of.
_MANAGER_PATH = "/squid-internal-mgr/"
# What a host name may hold as shown to people; anything else the agent wrote is masked.
_HOST_CHARS = re.compile(r"[^A-Za-z0-9.:_\[\]-]")

_CONFIG_DIR = SQUID_CONF.rsplit("/", 1)[0]
# In the proxy's config volume: the task's authority, the minted certificates' store, and
# the deployment's extra upstream authorities (CHATOPS_EGRESS_CA_FILE), if any.
_CA_CERT, _CA_KEY, _CERT_DB, _UPSTREAM_CA = "ca.pem", "ca.key", "ssl_db", "upstream-ca.pem"
_SQUID_WRITABLE = ("/tmp", "/var/run/squid", "/var/log/squid", "/var/spool/squid")


def squid_config(policy: NetworkPolicy, agent_subnet: str,
                 extra_upstream_ca: bool = False) -> str:
    """squid.conf for ``policy``: allowlisted hosts, allowed methods, HTTPS opened (bumped)
    with the task's authority so the methods hold there too, tunnels to port 443 only.
    Only ``agent_subnet`` (the task's internal network) may use it, and only its requests
    are logged."""
    domains = " ".join(_squid_domains(policy.allow))
    upstream_cas = [CA_BUNDLE] + ([f"{_CONFIG_DIR}/{_UPSTREAM_CA}"] if extra_upstream_ca else [])
    lines = [
        f"http_port {PROXY_PORT} ssl-bump tls-cert={_CONFIG_DIR}/{_CA_CERT} "
        f"tls-key={_CONFIG_DIR}/{_CA_KEY} generate-host-certificates=on "
        "dynamic_cert_mem_cache_size=4MB",
        f"sslcrtd_program {CERTGEN} -s {_CONFIG_DIR}/{_CERT_DB} -M 4MB",
        "sslcrtd_children 4 startup=1 idle=1",
        # Every tunnel squid lets through (an allowed host, port 443) is opened at once, so
        # each request inside meets the same rules as plain HTTP; what is not TLS is refused.
        "ssl_bump bump all",
        # The origin's certificate is checked as a client would; a failure is an error page.
        "tls_outgoing_options " + " ".join(f"cafile={path}" for path in upstream_cas),
        "visible_hostname chatops-egress",
        # The ICMP pinger needs raw sockets, which the proxy's container does not get.
        "pinger_enable off",
        "pid_filename none",
        "coredump_dir none",
        "cache deny all",
        "cache_mem 0 MB",
        "shutdown_lifetime 0 seconds",
        "logfile_rotate 0",
        "cache_log stdio:/dev/stderr",
        # epoch.millis method URL status squid-result: what parse_denials reads.
        "logformat chatops %ts.%03tu %rm %ru %>Hs %Ss",
        f"acl agent src {agent_subnet}",
        "access_log stdio:/dev/stdout logformat=chatops agent",
        # The agent's address and the proxy's name stay out of requests.
        "forwarded_for delete",
        "via off",
        f"acl allowed_hosts dstdomain -n {domains}",
        f"acl allowed_methods method {' '.join(policy.methods)}",
        "acl tunnel method CONNECT",
        f"acl tls_port port {_TLS_PORT}",
        "acl web proto HTTP HTTPS",
        f"acl web_ports port {' '.join(_WEB_PORTS)}",
        # An allowed name that resolves to the proxy's own loopback, a link-local address
        # (cloud metadata) or the agent's own network would reach what it must not.
        f"acl no_go dst 127.0.0.0/8 ::1 0.0.0.0/32 169.254.0.0/16 fe80::/10 {agent_subnet}",
        # Anyone else on the outbound network is turned away unlogged; then refusals only,
        # in the order _reason names them; whatever passes them all may go.
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
    return "\n".join(lines) + "\n"


def _squid_domains(allow: tuple[str, ...]) -> list[str]:
    """The allowlist in squid's terms: ".example.com" matches example.com and every name
    under it, as "*." promises. squid refuses a list where one entry covers another, so
    names under a wildcard are left out."""
    wildcards = {entry[2:] for entry in allow if entry.startswith("*.")}

    def covered(name: str, itself: bool) -> bool:
        parts = name.split(".")
        under = {".".join(parts[i:]) for i in range(1, len(parts))}
        return bool(wildcards & (under | ({name} if itself else set())))

    result = [f".{entry[2:]}" for entry in allow
              if entry.startswith("*.") and not covered(entry[2:], itself=False)]
    result += [entry for entry in allow
               if not entry.startswith("*.") and not covered(entry, itself=True)]
    return sorted(dict.fromkeys(result))


def parse_denials(
    log_text: str, policy: NetworkPolicy, attempt: int = 0,
    redact: Callable[[str], str] = lambda text: text,
) -> list[BlockedRequest]:
    """The refused requests in squid's access log (as written: unredacted), in order; other
    lines are skipped. Everything in them came from the agent, so each field shown to
    people is redacted, and the host is cut to the characters a host name has."""
    blocked = []
    for line in log_text.splitlines():
        fields = line.split()
        if len(fields) != 5 or not fields[4].startswith("TCP_DENIED"):
            continue
        stamp, method, target = fields[0], fields[1], fields[2]
        try:
            at = datetime.fromtimestamp(float(stamp), UTC)
        except ValueError:
            continue
        request = _Request.parse(method, target)
        host = _HOST_CHARS.sub("?", redact(request.host))[:253]
        blocked.append(BlockedRequest(
            at=at, method=_HOST_CHARS.sub("?", redact(method))[:16], host=host,
            url=redact(target)[:URL_LIMIT], reason=request.reason(policy), attempt=attempt,
        ))
    return blocked


@dataclass(frozen=True)
class _Request:
    method: str
    host: str
    port: str
    scheme: str
    path: str

    @classmethod
    def parse(cls, method: str, target: str) -> _Request:
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            return cls(method, host.strip("[]").lower(), port, "", "")
        # Split off the scheme by hand: urlsplit leaves names like cache_object unsplit.
        scheme, separator, rest = target.partition("://")
        if not separator:
            return cls(method, target.lower(), "", "", "")
        parts = urlsplit("//" + rest)
        try:
            port = str(parts.port or "")
        except ValueError:
            port = ""
        return cls(method, (parts.hostname or rest).lower(), port, scheme.lower(), parts.path)

    def reason(self, policy: NetworkPolicy) -> BlockReason:
        """Which rule of ``squid_config`` refused it, in the order squid applies them."""
        if not policy.allows_host(self.host):
            return "host"
        if self.method == "CONNECT":
            return "port" if self.port != _TLS_PORT else "address"
        if self.scheme not in {"http", "https"} or self.path.startswith(_MANAGER_PATH):
            return "scheme"
        if self.port and self.port not in _WEB_PORTS:
            return "port"
        return "method" if self.method not in policy.methods else "address"


class Egress:
    """One run's internal network and proxy; everything carries the task's labels, so the
    per-task sweep (``sandbox.reaper.remove_task``) removes it with the rest."""

    def __init__(
        self,
        client: docker.DockerClient,
        names: RunNames,
        policy: NetworkPolicy,
        outbound: str = DEFAULT_OUTBOUND,
        upstream_ca: bytes = b"",
    ) -> None:
        self.client = client
        self.names = names
        self.policy = policy
        self.outbound = outbound
        self.upstream_ca = upstream_ca
        self.authority: Authority | None = None
        self.network_name = names.network("egress")
        self.proxy: Container | None = None
        self._address = ""
        self._starting: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._pump: LogPump | None = None

    def start(self) -> None:
        """Bring the network and the proxy up in the background, while setup runs;
        ``address`` waits for them. A missing outbound network fails at once."""
        try:
            self.client.networks.get(self.outbound)
        except docker.errors.NotFound:
            raise SandboxError(
                f"the egress network {self.outbound!r} does not exist on the Docker engine",
                "create it, or set CHATOPS_EGRESS_NETWORK to an existing network",
            ) from None
        self._starting = threading.Thread(
            target=self._bring_up_or_keep_error, name=f"egress-{self.names.task_id}", daemon=True)
        self._starting.start()

    def settle(self) -> None:
        """Wait for the background start to end: nothing it makes may appear after a sweep."""
        if self._starting is not None:
            self._starting.join()

    def _bring_up_or_keep_error(self) -> None:
        try:
            self._bring_up()
        except BaseException as exc:  # handed to the run's thread by address()
            log.info("the egress proxy of %s did not come up: %s", self.names.task_id, exc)
            self._failure = exc

    def _bring_up(self) -> None:
        image = ensure_proxy_image(self.client)
        labels = self.names.labels("egress")
        # internal: nothing is forwarded off the network. inhibit_ipv4: the host gets no
        # address on it either, else the agent could reach any service listening on the host.
        internal = self.client.networks.create(
            self.network_name, driver="bridge", internal=True, labels=labels,
            options={"com.docker.network.bridge.inhibit_ipv4": "true"})
        subnet = str(internal.attrs["IPAM"]["Config"][0]["Subnet"])
        # The engine copies files into a read-only container only onto a volume.
        config = self.client.volumes.create(self.names.volume("egress"), labels=labels)
        proxy = self.client.containers.create(
            image,
            name=self.names.container("proxy"),
            labels=labels,
            user=f"{PROXY_UID}:{PROXY_UID}",
            network=self.outbound,
            read_only=True,
            volumes={str(config.name): {"bind": _CONFIG_DIR, "mode": "rw"}},
            tmpfs={path: "rw,noexec,nosuid,nodev,size=16m" for path in _SQUID_WRITABLE},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=PROXY_MEMORY,
            memswap_limit=PROXY_MEMORY,
            pids_limit=PROXY_PIDS,
        )
        self.proxy = proxy
        internal.connect(proxy)
        self.authority = make_authority(self.names.task_id)
        conf = squid_config(self.policy, subnet, extra_upstream_ca=bool(self.upstream_ca))
        proxy.put_archive(_CONFIG_DIR, _config_archive(conf, self.authority, self.upstream_ca))
        proxy.start()

    def address(self) -> str:
        """The proxy's address on the internal network, once squid accepts connections."""
        if self._address:
            return self._address
        self.settle()
        if self._failure is not None:
            raise self._failure
        proxy = self._proxy()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            proxy.reload()
            if proxy.status not in {"created", "running"}:
                raise self._not_ready(f"the egress proxy stopped ({proxy.status})")
            if READY_LINE in proxy.logs(stdout=False, stderr=True):
                break
            if time.monotonic() > deadline:
                raise self._not_ready(f"the egress proxy did not start in {READY_TIMEOUT_S:g} s")
            time.sleep(0.05)
        networks = proxy.attrs["NetworkSettings"]["Networks"]
        self._address = str(networks[self.network_name]["IPAddress"])
        return self._address

    def agent_options(self) -> dict[str, Any]:
        """Container options that put the agent behind the proxy."""
        return {"network_mode": self.network_name, "dns": [self.address()]}

    def agent_env(self) -> dict[str, str]:
        """The proxy variables, in both spellings (tools read one or the other), and the
        variables that make common tools trust the task's authority."""
        url = f"http://{self.address()}:{PROXY_PORT}"
        values = {"http_proxy": url, "https_proxy": url, "no_proxy": "localhost,127.0.0.1,::1"}
        trust = dict.fromkeys(CA_VARIABLES, f"{CHATOPS_DIR}/{CA_FILE_NAME}")
        return {**values, **{name.upper(): value for name, value in values.items()}, **trust}

    def agent_files(self) -> dict[str, bytes]:
        """Files for the agent's /chatops: the authority's certificate (never its key)."""
        self.address()
        assert self.authority is not None
        return {CA_FILE_NAME: self.authority.certificate_pem}

    def follow(self, pump: Callable[[Any, str, bool], LogPump]) -> None:
        """Read squid's access log as it is written, through ``pump`` (``Watcher.pump``),
        unredacted: ``parse_denials`` needs the lines whole and redacts what it keeps."""
        stream = self._proxy().logs(stream=True, follow=True, stdout=True, stderr=False)
        self._pump = pump(stream, "egress", False)

    def new_refusals(self, attempt: int, redact: Callable[[str], str]) -> list[BlockedRequest]:
        """Refusals logged since the last call, while the agent runs; may lag a little."""
        if self._pump is None:
            return []
        return parse_denials("\n".join(self._pump.take(timeout=0)), self.policy, attempt,
                             redact)

    def remaining_refusals(self, attempt: int,
                           redact: Callable[[str], str]) -> list[BlockedRequest]:
        """The refusals not returned yet, once the agent is done: the proxy is stopped, so
        its log ends and every line in it is read. Empty if the agent never ran."""
        self.settle()
        if self._pump is None or self.proxy is None:
            return []
        kill(self.proxy)
        self._pump.wait(LOG_DRAIN_S)
        return self.new_refusals(attempt, redact)

    def _proxy(self) -> Container:
        if self.proxy is None:
            raise RuntimeError("Egress.start() was not called")
        return self.proxy

    def _not_ready(self, message: str) -> SandboxError:
        log = self._proxy().logs(stdout=False, stderr=True, tail=20)
        tail = log.decode("utf-8", "replace").strip()
        return SandboxError(
            f"{message}: {tail[-600:]}" if tail else message,
            "check that `chatops image build` made the proxy image on this engine",
        )


def _config_archive(config: str, authority: Authority, upstream_ca: bytes) -> bytes:
    """What goes into the proxy's config volume; only squid's user may read the key."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        add_file(tar, SQUID_CONF.rsplit("/", 1)[-1], config.encode())
        add_file(tar, _CA_CERT, authority.certificate_pem)
        add_file(tar, _CA_KEY, authority.key_pem, 0o400, PROXY_UID, PROXY_UID)
        add_certificate_db(tar, _CERT_DB, PROXY_UID, PROXY_UID)
        if upstream_ca:
            add_file(tar, _UPSTREAM_CA, upstream_ca)
    return buffer.getvalue()
