"""Stdlib-``sqlite3`` writes for the corpus snapshot path on the default SQLite backend.

A re-snapshot after a small change must finish in a fraction of ``dvc add``'s time, process
start-up included; importing SQLAlchemy alone costs ~0.3 s. These two writes mirror
:meth:`genreg.store.repo.Repo.add_version` and :meth:`genreg.store.derived.DerivedRepo.put`
exactly (same columns, JSON encoding, timestamp format, ``BEGIN IMMEDIATE`` so numbering is
serialised with every other writer); ``tests/test_corpus_fastwrite.py`` checks the SQLModel
side reads back what they wrote. Other databases use the SQLModel repos.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FastWriter:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        self.conn.close()

    def _tx(self, fn: Any) -> Any:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            out = fn(c)
            c.execute("COMMIT")
            return out
        except BaseException:
            c.execute("ROLLBACK")
            raise

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
    ) -> tuple[int, bool]:
        """(version number, created): the next version unless ``digest`` exists already."""

        def tx(c: sqlite3.Connection) -> tuple[int, bool]:
            row = c.execute("SELECT id FROM artifact WHERE kind=? AND name=?", (kind, name))
            found = row.fetchone()
            if found is None:
                cur = c.execute(
                    "INSERT INTO artifact (kind, name, created_at) VALUES (?, ?, ?)",
                    (kind, name, now()),
                )
                aid = cur.lastrowid
            else:
                aid = found[0]
            same = c.execute(
                "SELECT number FROM version WHERE artifact_id=? AND digest=?", (aid, digest)
            ).fetchone()
            if same is not None:
                return int(same[0]), False
            top = c.execute("SELECT max(number) FROM version WHERE artifact_id=?", (aid,))
            top_n = top.fetchone()[0]
            c.execute(
                "INSERT INTO version (artifact_id, number, digest, object_digest, created_at,"
                " author, message, tags, parent, summary) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    aid,
                    (top_n or 0) + 1,
                    digest,
                    object_digest,
                    now(),
                    author,
                    message,
                    json.dumps(tags),
                    top_n,
                    json.dumps(summary),
                ),
            )
            return (top_n or 0) + 1, True

        return self._tx(tx)

    def put_derived(
        self, kind: str, scope: str, key: str, object_digest: str, meta: dict[str, Any]
    ) -> None:
        """Record a derived object (idempotent on ``key``)."""
        self._tx(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO derived (kind, scope, key, object_digest, meta, created_at)"
                " VALUES (?,?,?,?,?,?)",
                (kind, scope, key, object_digest, json.dumps(meta), now()),
            )
        )
