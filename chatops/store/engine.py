"""Opening the database: SQLite by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, create_engine

from chatops.store import tables  # noqa: F401  (registers the tables on the metadata)

# Seconds a writer waits for SQLite's lock: the worker, the web app and the CLI share one file.
SQLITE_BUSY_TIMEOUT_S = 30


def open_engine(url: str) -> Engine:
    """An engine with the schema created; SQLite in WAL mode so readers never block writers."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
