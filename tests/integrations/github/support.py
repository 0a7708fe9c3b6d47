"""What the GitHub tests share beyond fixtures: names, a clock the tests move, an App key."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PAT = "ghp_TestOnlyPersonalToken0123456789abcdef"
APP_ID = "31337"
INSTALLATION = 4242
REPO = "octo/demo"
WEB = "https://github.example"


class FakeClock:
    """Epoch seconds that only move when a test says so; starts at the real time."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class AppKey:
    """A GitHub App's key pair: the PEM the forge signs with, the key GitHub verifies with."""

    pem: str
    public_key: Any


def make_app_key() -> AppKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return AppKey(pem=pem, public_key=key.public_key())
