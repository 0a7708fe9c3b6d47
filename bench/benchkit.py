"""What the benchmarks share: a scratch git checkout and the bare container start they are
measured against."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from sandbox.images import DEFAULT_TAG


def make_checkout(root: Path, ignored: tuple[str, ...] = ()) -> Path:
    """A one-commit repository in ``root``/checkout, with ``ignored`` in its .gitignore."""
    checkout = root / "checkout"
    checkout.mkdir()
    (checkout / "README.md").write_text("bench\n")
    if ignored:
        (checkout / ".gitignore").write_text("".join(f"{path}\n" for path in ignored))
    git = ["git", "-C", str(checkout), "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return checkout


def bare_docker_run() -> float:
    """Seconds for `docker run --rm IMAGE true`: the floor every start is compared with."""
    start = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", DEFAULT_TAG, "true"], check=True)
    return time.perf_counter() - start
