"""The per-task certificate authority that lets the egress proxy see inside HTTPS.

Methods and paths travel inside TLS, so to hold an allowlist's methods for HTTPS the proxy
terminates each tunnel to an allowed host with a certificate it mints for that host, checks
the request, and forwards it over a new TLS connection that it verifies itself. The agent
trusts the minting authority, and only it: every TLS connection it can make goes through the
proxy. The authority is made for one task and dies with it; its key is written only into the
proxy's config volume, never into the agent's container.
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

# A day: longer than any task's timeouts, short enough that a leaked certificate is stale soon.
VALIDITY = dt.timedelta(days=1)
# Where the agent finds the authority's certificate, and the variables that point tools at it.
CA_FILE_NAME = "egress-ca.pem"
CA_VARIABLES = (
    "SSL_CERT_FILE",        # OpenSSL, Go, Python's ssl, rustls-native-certs
    "REQUESTS_CA_BUNDLE",   # requests, and pip through it
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "CARGO_HTTP_CAINFO",
)


@dataclass(frozen=True)
class Authority:
    certificate_pem: bytes
    key_pem: bytes


def make_authority(task_id: str, now: dt.datetime | None = None) -> Authority:
    """A fresh CA for one task: RSA 2048 (what squid's certificate generator signs with)."""
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chatops egress"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"chatops egress {task_id}"[:64]),
    ])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate a little clock skew
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
    )


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644,
             uid: int = 0, gid: int = 0) -> None:
    member = tarfile.TarInfo(name)
    member.size, member.mode, member.uid, member.gid = len(data), mode, uid, gid
    tar.addfile(member, io.BytesIO(data))


def add_directory(tar: tarfile.TarFile, name: str, uid: int, gid: int) -> None:
    member = tarfile.TarInfo(name)
    member.type, member.mode, member.uid, member.gid = tarfile.DIRTYPE, 0o750, uid, gid
    tar.addfile(member)


def add_certificate_db(tar: tarfile.TarFile, name: str, uid: int, gid: int) -> None:
    """The empty store squid's certificate generator keeps minted certificates in, as
    ``security_file_certgen -c`` makes it: certs/, an empty index.txt, and a size of 0."""
    add_directory(tar, name, uid, gid)
    add_directory(tar, f"{name}/certs", uid, gid)
    add_file(tar, f"{name}/index.txt", b"", 0o640, uid, gid)
    add_file(tar, f"{name}/size", b"0", 0o640, uid, gid)
