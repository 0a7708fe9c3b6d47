"""The `outside` fixture: a network standing in for the internet, for the egress tests.

On a bridge network the tests make, under made-up names:
    allowed.test, api.wild.test, blocked.test   busybox web servers, plain HTTP on 80 and 443
    secure.test                                 an HTTPS origin (`openssl s_server -WWW`) whose
                                                certificate a test authority signed
Nothing here is an outside address. `tls_image` is the busybox sandbox image plus the host's
openssl, so that an agent can make real TLS connections and check what it is shown.
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox.egress_tls import Authority, add_file, make_authority
from sandbox.proxy_image import host_files, write_members

SERVE = ("mkdir -p /www && echo \"body of $(hostname)\" > /www/index.html && "
         "httpd -p 443 -h /www && exec httpd -f -p 80 -h /www")
SECURE_BODY = "secret-free body of secure.test"
# On everything the rig starts, so an interrupted session's leftovers can be found.
RIG_LABELS = {"chatops.test": "egress-rig"}


@dataclass(frozen=True)
class Outside:
    network: str
    addresses: dict[str, str]  # container name -> its address on the network
    gateway: str  # the host's address on the network
    # The authority that signed secure.test's certificate: the proxy must be told to trust it.
    origin_ca: bytes


def build_tls_image(docker_client: Any, base: str) -> str:
    """``base`` with the host's openssl added (a committed container); returns the image id."""
    buffer = io.BytesIO()
    write_members(host_files(["/usr/bin/openssl"], hint="install openssl"), buffer)
    container = docker_client.containers.create(base, ["true"])
    try:
        container.put_archive("/", buffer.getvalue())
        image = container.commit(repository="chatops-test/busybox-openssl",
                                 tag=uuid.uuid4().hex[:8])
    finally:
        container.remove(force=True)
    return str(image.id)


@pytest.fixture(scope="session")
def tls_image(docker_client: Any, sandbox_image: str) -> Iterator[str]:
    image = build_tls_image(docker_client, sandbox_image)
    yield image
    docker_client.images.remove(image, force=True)


def _leaf(authority: Authority, name: str) -> tuple[bytes, bytes]:
    """A server certificate for ``name`` signed by ``authority``: (certificate, key) PEM."""
    ca_key = serialization.load_pem_private_key(authority.key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(authority.certificate_pem)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def start_secure_origin(docker_client: Any, tls_image: str, network: Any, name: str,
                        authority: Authority, files: dict[str, bytes] | None = None) -> Any:
    """`openssl s_server -WWW` as secure.test on ``network``, serving ``files`` (default:
    hello.txt) under a certificate ``authority`` signed."""
    certificate, key = _leaf(authority, "secure.test")
    served = files if files is not None else {"hello.txt": SECURE_BODY.encode()}
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        add_file(tar, "cert.pem", certificate)
        add_file(tar, "key.pem", key, 0o600)
        for file_name, data in served.items():
            add_file(tar, file_name, data)
    container = docker_client.containers.create(
        tls_image, ["openssl", "s_server", "-quiet", "-WWW", "-accept", "443",
                    "-cert", "/srv/cert.pem", "-key", "/srv/key.pem"],
        name=name, working_dir="/srv", network=network.name, labels=RIG_LABELS,
        networking_config={network.name: docker_client.api.create_endpoint_config(
            aliases=["secure.test"])})
    container.put_archive("/srv", archive.getvalue())
    container.start()
    return container


@pytest.fixture(scope="session")
def outside(docker_client: Any, sandbox_image: str, tls_image: str) -> Iterator[Outside]:
    suffix = uuid.uuid4().hex[:8]
    network = docker_client.networks.create(f"chatops-test-out-{suffix}", driver="bridge",
                                            labels=RIG_LABELS)
    authority = make_authority("test origins")
    containers = []
    try:
        for name, alias in (("allowed", "allowed.test"), ("wild", "api.wild.test"),
                            ("blocked", "blocked.test")):
            containers.append(docker_client.containers.run(
                sandbox_image, ["sh", "-c", SERVE], name=f"chatops-test-{name}-{suffix}",
                hostname=name, detach=True, network=network.name, labels=RIG_LABELS,
                networking_config={network.name: docker_client.api.create_endpoint_config(
                    aliases=[alias])}))
        containers.append(start_secure_origin(docker_client, tls_image, network,
                                              f"chatops-test-secure-{suffix}", authority))
        addresses = {}
        for container in containers:
            container.reload()
            settings = container.attrs["NetworkSettings"]["Networks"][network.name]
            addresses[container.name.split("-")[2]] = settings["IPAddress"]
        network.reload()
        gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
        yield Outside(network.name, addresses, gateway, authority.certificate_pem)
    finally:
        for container in containers:
            container.remove(force=True)
        network.remove()
