"""Where the shared fixtures and specs are: ``../shared`` beside the repository, by default.

``CHATOPS_SHARED_DIR`` points elsewhere. The folder is not part of the repository: in CI
(``CI`` true) its absence fails the run; in a clone without it, these tests skip and the
rest of the suite, on payloads the project writes itself, still runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SHARED_DIR = ROOT.parent / "shared"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared folder (``fixtures/``, ``specs/``); skips, or fails in CI, when missing."""
    configured = os.environ.get("CHATOPS_SHARED_DIR", "").strip()
    path = Path(configured).expanduser() if configured else DEFAULT_SHARED_DIR
    if not (path / "fixtures").is_dir():
        reason = (f"the shared fixtures folder {path / 'fixtures'} is missing: set"
                  " CHATOPS_SHARED_DIR to the folder holding fixtures/ and specs/")
        if _in_ci():
            pytest.fail(f"{reason} (required in CI)", pytrace=False)
        pytest.skip(reason)
    return path
