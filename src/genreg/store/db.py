"""Engine creation, SQLite tuning, write transactions and migrations-on-open.

SQLite: WAL journal, a 30 s busy timeout, foreign keys on, and write transactions opened with
``BEGIN IMMEDIATE`` so concurrent writers queue on the lock instead of failing when a read
transaction is upgraded. PostgreSQL: writers lock the artifact row (``SELECT ... FOR UPDATE``).
Both: unique constraints on ``(artifact, number)`` and ``(artifact, digest)`` plus a bounded
retry in the service, so numbering stays contiguous under any interleaving.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from genreg.store.migrations import HEAD

T = TypeVar("T")
WRITE_OPTION = "genreg_write"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, poolclass=None
        )
        _tune_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextlib.contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the write lock (SQLite) and commits on success."""
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        # "rollback_only": session.commit() flushes; the outer conn.begin() commits.
        session = Session(bind=conn, expire_on_commit=False, join_transaction_mode="rollback_only")
        try:
            yield session
            session.commit()
        finally:
            session.close()


@contextlib.contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


_RETRYABLE = (IntegrityError, OperationalError)


def with_retry(fn: Callable[[], T], *, attempts: int = 12, base_delay: float = 0.01) -> T:
    """Run a write transaction, retrying on unique-constraint races and lock time-outs."""
    for i in range(attempts):
        try:
            return fn()
        except _RETRYABLE:
            if i == attempts - 1:
                raise
        except DBAPIError as exc:  # e.g. PostgreSQL serialization failures
            if i == attempts - 1 or "could not serialize" not in str(exc):
                raise
        time.sleep(base_delay * (2**i) * (0.5 + (time.monotonic_ns() % 1000) / 1000))
    raise AssertionError("unreachable")


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            return row[0] if row else None
    except (OperationalError, DBAPIError):
        return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` under a database-wide lock (idempotent)."""
    _migrate(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Run Alembic migrations down to ``revision`` (for tests and rollbacks)."""
    _migrate(engine, "downgrade", revision)


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    from pathlib import Path

    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7240517)"))
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


def ensure_schema(engine: Engine) -> None:
    """Migrate on open: one cheap query when the schema is current."""
    if current_revision(engine) == HEAD:
        return
    upgrade(engine)
