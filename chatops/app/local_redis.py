"""A private redis-server on a Unix socket, for the demo and single-machine installs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from chatops.core.errors import QueueUnavailable

# Seconds to wait for the server to accept connections; it usually takes a few ms.
START_TIMEOUT_S = 10.0


class LocalRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> LocalRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise QueueUnavailable("redis-server is not installed",
                                   "install it (apt-get install redis-server) or set "
                                   "CHATOPS_REDIS_URL to a running Redis")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(self.socket))
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise QueueUnavailable(f"redis-server did not start in {self.directory}")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
