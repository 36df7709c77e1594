""":class:`SqliteMetadata`: the :class:`~genreg.store.metadata.Metadata` interface on the
default SQLite file, answering the hot operations with the stdlib ``sqlite3`` only.

Why: importing SQLAlchemy/SQLModel costs ~0.3-0.6 s, which would dominate ``genreg resolve``,
``genreg corpus snapshot`` / ``status`` and the API's pinned-prompt lookups (resolve p50
~0.02 ms here vs ~0.7 ms through the ORM; BENCHMARKS.md).

Native here: :meth:`resolve`, :meth:`version_by_digest`, :meth:`add_version`,
:meth:`history`, :meth:`list_artifacts`, the derived rows (:attr:`derived`),
:meth:`data_version` and :meth:`ping`. Everything else (aliases, runs, tokens, the inventory)
goes to a :class:`~genreg.store.sql_metadata.SqlMetadata` on the same file, opened on first
need -- and so does migration: a missing or old schema is migrated through it before the
first native statement. Writes use the same columns, JSON encoding, timestamps and ``BEGIN
IMMEDIATE`` locking as the SQLModel code, so numbering is serialised with every other writer.

Connections are per thread: a read-only one (``mode=ro``) for reads and ``PRAGMA
data_version``, and a read-write one opened on the first write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from genreg.core.refs import Ref
from genreg.core.timestamps import now
from genreg.core.types import AliasEvent, ArtifactInfo, VersionInfo
from genreg.store.metadata import (
    Derived,
    ObjectRef,
    alias_not_found,
    artifact_not_found,
    digest_ambiguous,
    digest_not_found,
    no_versions,
    version_not_found,
)
from genreg.store.migrations import HEAD

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Engine

    from genreg.store.runs import RunRepo
    from genreg.store.sql_metadata import SqlMetadata
    from genreg.store.tokens import TokenRepo

T = TypeVar("T")
_COLS = (
    "v.number, v.digest, v.object_digest, v.created_at, v.author, v.message, v.tags, v.parent,"
    " v.summary"
)
_BY_NUMBER = f"SELECT {_COLS} FROM version v WHERE v.artifact_id=? AND v.number=?"
_BY_PREFIX = (
    f"SELECT {_COLS} FROM version v WHERE v.artifact_id=? AND v.digest LIKE ?"
    " ORDER BY v.number LIMIT 2"
)
_BY_ALIAS = (
    f"SELECT {_COLS} FROM alias a JOIN version v ON v.artifact_id=a.artifact_id"
    " AND v.number=a.version WHERE a.artifact_id=? AND a.name=?"
)
_LATEST = f"SELECT {_COLS} FROM version v WHERE v.artifact_id=? ORDER BY v.number DESC LIMIT 1"
_ALL = f"SELECT {_COLS} FROM version v WHERE v.artifact_id=? ORDER BY v.number"
_ALIASES_OF = "SELECT name FROM alias WHERE artifact_id=? AND version=? ORDER BY name"
_ARTIFACT = "SELECT id FROM artifact WHERE kind=? AND name=?"
_NUMBER_BY_DIGEST = "SELECT number FROM version WHERE artifact_id=? AND digest=?"
_DERIVED_COLS = "kind, scope, key, object_digest, meta, created_at"


def _version(kind: str, name: str, row: tuple[Any, ...], aliases: tuple[str, ...]) -> VersionInfo:
    n, digest, obj, created, author, message, tags, parent, summary = row
    return VersionInfo(
        kind,
        name,
        n,
        digest,
        obj,
        created,
        author,
        message,
        json.loads(tags) if tags else {},
        parent,
        json.loads(summary) if summary else {},
        aliases,
    )


def _derived(row: tuple[Any, ...]) -> Derived:
    kind, scope, key, obj, meta, created = row
    return Derived(kind, scope, key, obj, json.loads(meta) if meta else {}, created)


class SqliteDerived:
    """:class:`~genreg.store.metadata.DerivedStore` over stdlib ``sqlite3``."""

    def __init__(self, md: SqliteMetadata) -> None:
        self._md = md

    def get(self, key: str) -> Derived | None:
        c = self._md._read()
        row = c.execute(f"SELECT {_DERIVED_COLS} FROM derived WHERE key=?", (key,)).fetchone()
        return None if row is None else _derived(row)

    def put(
        self,
        kind: str,
        scope: str,
        key: str,
        object_digest: str,
        meta: dict[str, Any] | None = None,
    ) -> Derived:
        def tx(c: sqlite3.Connection) -> Derived:
            c.execute(
                "INSERT OR IGNORE INTO derived (kind, scope, key, object_digest, meta, created_at)"
                " VALUES (?,?,?,?,?,?)",
                (kind, scope, key, object_digest, json.dumps(meta or {}), now()),
            )
            got = c.execute(f"SELECT {_DERIVED_COLS} FROM derived WHERE key=?", (key,))
            return _derived(got.fetchone())

        return self._md._write(tx)

    def put_many(self, rows: list[tuple[str, str, str, str, dict[str, Any]]]) -> int:
        if not rows:
            return 0
        uniq = {r[2]: r for r in rows}
        ts = now()

        def tx(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO derived (kind, scope, key, object_digest, meta, created_at)"
                " VALUES (?,?,?,?,?,?)",
                [(k, s, key, d, json.dumps(m or {}), ts) for k, s, key, d, m in uniq.values()],
            )
            return c.total_changes - before

        return self._md._write(tx)

    def delete(self, key: str) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM derived WHERE key=?", (key,))

        self._md._write(tx)

    def list(self, kind: str, scope: str | None = None) -> list[Derived]:
        q = f"SELECT {_DERIVED_COLS} FROM derived WHERE kind=?"
        args: tuple[str, ...] = (kind,)
        if scope is not None:
            q, args = q + " AND scope=?", (kind, scope)
        return [_derived(r) for r in self._md._read().execute(q + " ORDER BY id", args)]


def open_current(database_url: str) -> SqliteMetadata | None:
    """The SQLite metadata of an existing file already at the code's schema head, else None
    (for callers that must neither migrate nor import SQLAlchemy: :mod:`genreg.fastcli`)."""
    if not database_url.startswith("sqlite:///"):
        return None
    md = SqliteMetadata(database_url)
    return md if md.revision() == HEAD else None


class SqliteMetadata:
    def __init__(self, url: str) -> None:
        if not url.startswith("sqlite:///"):
            raise ValueError(f"not a SQLite file URL: {url!r}")
        self.url = url
        self.path = Path(url[len("sqlite:///") :])
        self._local = threading.local()
        self._ready = False
        self._lock = threading.Lock()
        self.derived = SqliteDerived(self)

    # ---- plumbing ---------------------------------------------------------------------
    @cached_property
    def sql(self) -> SqlMetadata:
        """The SQLModel implementation on the same file (imports SQLAlchemy: first need only)."""
        from genreg.store.sql_metadata import SqlMetadata

        return SqlMetadata(self.url)

    @property
    def sql_opened(self) -> bool:
        """Whether anything needed SQLAlchemy yet (the hot paths must not)."""
        return "sql" in self.__dict__

    def revision(self) -> str | None:
        """The file's schema revision (None when there is no readable schema); no migration."""
        if not self.path.exists():
            return None
        try:
            row = self._ro().execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            self._drop_ro()
            return None
        return str(row[0]) if row else None

    def ensure_schema(self) -> None:
        """Migrate through SQLModel when the file is missing or not at the code's head."""
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                if self.revision() != HEAD:
                    self._drop_ro()
                    self.sql.ensure_schema()
                self._ready = True

    def _ro(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "ro", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, timeout=30, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.ro = conn
        return conn

    def _drop_ro(self) -> None:
        conn = getattr(self._local, "ro", None)
        if conn is not None:
            conn.close()
            self._local.ro = None

    def _read(self) -> sqlite3.Connection:
        self.ensure_schema()
        return self._ro()

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a ``BEGIN IMMEDIATE`` transaction (the writers' lock), commit."""
        self.ensure_schema()
        c: sqlite3.Connection | None = getattr(self._local, "rw", None)
        if c is None:
            c = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            c.execute("PRAGMA busy_timeout=30000")
            c.execute("PRAGMA foreign_keys=ON")
            self._local.rw = c
        c.execute("BEGIN IMMEDIATE")
        try:
            out = fn(c)
            c.execute("COMMIT")
            return out
        except BaseException:
            c.execute("ROLLBACK")
            raise

    # ---- versions (native) ------------------------------------------------------------
    @staticmethod
    def _artifact_id(c: sqlite3.Connection, kind: str, name: str) -> int | None:
        row = c.execute(_ARTIFACT, (kind, name)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _info(
        c: sqlite3.Connection, kind: str, name: str, aid: int, row: tuple[Any, ...]
    ) -> VersionInfo:
        aliases = tuple(r[0] for r in c.execute(_ALIASES_OF, (aid, row[0])).fetchall())
        return _version(kind, name, row, aliases)

    def resolve(self, ref: Ref) -> VersionInfo:
        c = self._read()
        aid = self._artifact_id(c, ref.kind, ref.name)
        if aid is None:
            raise artifact_not_found(ref.kind, ref.name)
        if ref.version is not None:
            rows = c.execute(_BY_NUMBER, (aid, ref.version)).fetchall()
            if not rows:
                raise version_not_found(ref.kind, ref.name, ref.version)
        elif ref.digest_prefix is not None:
            rows = c.execute(_BY_PREFIX, (aid, f"sha256:{ref.digest_prefix}%")).fetchall()
            if not rows:
                raise digest_not_found(ref)
            if len(rows) > 1:
                raise digest_ambiguous(ref, rows[0][0], rows[1][0])
        elif ref.alias is not None:
            rows = c.execute(_BY_ALIAS, (aid, ref.alias)).fetchall()
            if not rows:
                raise alias_not_found(ref.kind, ref.name, ref.alias)
        else:
            rows = c.execute(_LATEST, (aid,)).fetchall()
            if not rows:
                raise no_versions(ref)
        return self._info(c, ref.kind, ref.name, aid, rows[0])

    def version_by_digest(self, kind: str, name: str, digest: str) -> VersionInfo | None:
        c = self._read()
        aid = self._artifact_id(c, kind, name)
        if aid is None:
            return None
        row = c.execute(_NUMBER_BY_DIGEST, (aid, digest)).fetchone()
        if row is None:
            return None
        return self._info(c, kind, name, aid, c.execute(_BY_NUMBER, (aid, row[0])).fetchone())

    def add_version(
        self,
        kind: str,
        name: str,
        *,
        digest: str,
        object_digest: str,
        author: str,
        message: str,
        tags: dict[str, Any],
        summary: dict[str, Any],
    ) -> tuple[VersionInfo, bool]:
        def tx(c: sqlite3.Connection) -> tuple[VersionInfo, bool]:
            aid = self._artifact_id(c, kind, name)
            if aid is None:
                cur = c.execute(
                    "INSERT INTO artifact (kind, name, created_at) VALUES (?, ?, ?)",
                    (kind, name, now()),
                )
                aid = int(cur.lastrowid or 0)
            same = c.execute(_NUMBER_BY_DIGEST, (aid, digest)).fetchone()
            if same is not None:
                row = c.execute(_BY_NUMBER, (aid, same[0])).fetchone()
                return self._info(c, kind, name, aid, row), False
            top_n = c.execute("SELECT max(number) FROM version WHERE artifact_id=?", (aid,))
            top = top_n.fetchone()[0]
            c.execute(
                "INSERT INTO version (artifact_id, number, digest, object_digest, created_at,"
                " author, message, tags, parent, summary) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    aid,
                    (top or 0) + 1,
                    digest,
                    object_digest,
                    now(),
                    author,
                    message,
                    json.dumps(tags),
                    top,
                    json.dumps(summary),
                ),
            )
            row = c.execute(_BY_NUMBER, (aid, (top or 0) + 1)).fetchone()
            return _version(kind, name, row, ()), True

        return self._write(tx)

    def history(self, kind: str, name: str) -> list[VersionInfo]:
        c = self._read()
        aid = self._artifact_id(c, kind, name)
        if aid is None:
            raise artifact_not_found(kind, name)
        by_v: dict[int, list[str]] = {}
        for alias, version in c.execute(
            "SELECT name, version FROM alias WHERE artifact_id=? ORDER BY name", (aid,)
        ):
            by_v.setdefault(version, []).append(alias)
        rows = c.execute(_ALL, (aid,)).fetchall()
        return [_version(kind, name, r, tuple(by_v.get(r[0], []))) for r in rows]

    def list_artifacts(self, kind: str | None = None) -> list[ArtifactInfo]:
        c = self._read()
        q = "SELECT id, kind, name, created_at FROM artifact"
        args: tuple[str, ...] = ()
        if kind:
            q, args = q + " WHERE kind=?", (kind,)
        arts = c.execute(q + " ORDER BY kind, name", args).fetchall()
        stats = {
            aid: (mx, n)
            for aid, mx, n in c.execute(
                "SELECT artifact_id, max(number), count(*) FROM version GROUP BY artifact_id"
            )
        }
        aliases: dict[int, dict[str, int]] = {}
        for aid, name, version in c.execute("SELECT artifact_id, name, version FROM alias"):
            aliases.setdefault(aid, {})[name] = version
        out = []
        for aid, k, name, created in arts:
            mx, n = stats.get(aid, (None, 0))
            out.append(ArtifactInfo(k, name, created, mx, n, aliases.get(aid, {})))
        return out

    # ---- liveness (native) ------------------------------------------------------------
    def data_version(self) -> int | None:
        """SQLite's ``PRAGMA data_version``: changes when another connection commits (this
        process's writer or another process), so a cache keyed on it never serves a stale
        alias."""
        return int(self._read().execute("PRAGMA data_version").fetchone()[0])

    def ping(self) -> str | None:
        """The schema revision (raises sqlite3.Error when the database is unreadable)."""
        row = self._read().execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row else None

    # ---- everything else: SQLModel ------------------------------------------------------
    def set_alias(
        self,
        kind: str,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        run_id: str | None,
    ) -> AliasEvent:
        return self.sql.set_alias(
            kind, name, alias, version, actor=actor, reason=reason, run_id=run_id
        )

    def remove_alias(
        self, kind: str, name: str, alias: str, *, actor: str, reason: str
    ) -> AliasEvent:
        return self.sql.remove_alias(kind, name, alias, actor=actor, reason=reason)

    def alias_history(self, kind: str, name: str, alias: str | None = None) -> list[AliasEvent]:
        return self.sql.alias_history(kind, name, alias)

    @property
    def runs(self) -> RunRepo:
        return self.sql.runs

    @property
    def tokens(self) -> TokenRepo:
        return self.sql.tokens

    def object_references(self) -> list[ObjectRef]:
        return self.sql.object_references()

    @property
    def engine(self) -> Engine:
        return self.sql.engine

    def close(self) -> None:
        for attr in ("ro", "rw"):
            conn = getattr(self._local, attr, None)
            if conn is not None:
                conn.close()
                setattr(self._local, attr, None)
        if self.sql_opened:
            self.sql.close()
