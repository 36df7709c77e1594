"""Read-only fast path for the default SQLite backend, using only the stdlib ``sqlite3``.

Importing SQLAlchemy/SQLModel costs ~0.3-0.6 s, which would dominate hot commands
(``genreg resolve``, ``genreg corpus status``) and the API's pinned-prompt lookups. Versions
are immutable, so reading them with plain SQL is safe. The queries mirror
:meth:`genreg.store.repo.Repo.resolve`; ``tests/test_fastread.py`` checks the two agree on
every form of reference. Writes always go through SQLModel.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from genreg.core.refs import Ref
from genreg.core.types import VersionInfo
from genreg.errors import AmbiguousRef, NotFound
from genreg.store.migrations import HEAD

_COLS = "v.number, v.digest, v.object_digest, v.created_at, v.author, v.message, v.tags, v.parent, v.summary"


class FastReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    @classmethod
    def open(cls, database_url: str) -> FastReader | None:
        """A reader when the URL is a migrated SQLite file at the current schema, else None."""
        if not database_url.startswith("sqlite:///"):
            return None
        path = Path(database_url[len("sqlite:///") :])
        if not path.exists():
            return None
        reader = cls(path)
        try:
            row = reader._conn().execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            return None
        return reader if row and row[0] == HEAD else None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, timeout=30, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: changes when another connection commits, so a
        cache keyed on it never serves a stale alias."""
        return int(self._conn().execute("PRAGMA data_version").fetchone()[0])

    def ping(self) -> str | None:
        """The schema revision (raises sqlite3.Error when the database is unreadable)."""
        row = self._conn().execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None

    def _artifact_id(self, kind: str, name: str) -> int:
        row = (
            self._conn()
            .execute("SELECT id FROM artifact WHERE kind=? AND name=?", (kind, name))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"{kind}:{name} not found")
        return int(row[0])

    def resolve(self, ref: Ref) -> VersionInfo:
        c = self._conn()
        aid = self._artifact_id(ref.kind, ref.name)
        base = f"SELECT {_COLS} FROM version v WHERE v.artifact_id=?"
        if ref.version is not None:
            rows = c.execute(base + " AND v.number=?", (aid, ref.version)).fetchall()
            if not rows:
                raise NotFound(f"{ref.artifact}@v{ref.version} not found")
        elif ref.digest_prefix is not None:
            like = "sha256:" + ref.digest_prefix + "%"
            rows = c.execute(
                base + " AND v.digest LIKE ? ORDER BY v.number LIMIT 2", (aid, like)
            ).fetchall()
            if not rows:
                raise NotFound(f"{ref.artifact}@sha256:{ref.digest_prefix} matches no version")
            if len(rows) > 1:
                raise AmbiguousRef(
                    f"{ref.artifact}@sha256:{ref.digest_prefix} is ambiguous: matches "
                    f"v{rows[0][0]} and v{rows[1][0]}; give more digits"
                )
        elif ref.alias is not None:
            rows = c.execute(
                f"SELECT {_COLS} FROM alias a JOIN version v ON v.artifact_id=a.artifact_id "
                "AND v.number=a.version WHERE a.artifact_id=? AND a.name=?",
                (aid, ref.alias),
            ).fetchall()
            if not rows:
                raise NotFound(f"{ref.artifact} has no alias {ref.alias!r}")
        else:
            rows = c.execute(base + " ORDER BY v.number DESC LIMIT 1", (aid,)).fetchall()
            if not rows:
                raise NotFound(f"{ref.artifact} has no versions")
        n, digest, obj, created, author, message, tags, parent, summary = rows[0]
        aliases = tuple(
            r[0]
            for r in c.execute(
                "SELECT name FROM alias WHERE artifact_id=? AND version=? ORDER BY name", (aid, n)
            ).fetchall()
        )
        return VersionInfo(
            ref.kind,
            ref.name,
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

    # ---- corpus snapshot hot path (genreg.service.corpus) --------------------------------
    def version_by_digest(self, kind: str, name: str, digest: str) -> VersionInfo | None:
        """The version of ``kind:name`` with exactly ``digest``, or None (also when the
        artifact does not exist yet)."""
        try:
            aid = self._artifact_id(kind, name)
        except NotFound:
            return None
        row = (
            self._conn()
            .execute("SELECT number FROM version WHERE artifact_id=? AND digest=?", (aid, digest))
            .fetchone()
        )
        return None if row is None else self.resolve(Ref(kind, name, version=int(row[0])))

    def derived_objects(self, kind: str) -> list[tuple[str, str, dict]]:
        """``(key, object_digest, meta)`` of every derived row of ``kind``, oldest first."""
        rows = (
            self._conn()
            .execute(
                "SELECT key, object_digest, meta FROM derived WHERE kind=? ORDER BY id", (kind,)
            )
            .fetchall()
        )
        return [(k, o, json.loads(m) if m else {}) for k, o, m in rows]
