"""Derived objects: packs, chunk lists, embedding-cache shards, FAISS indexes.

A derived object is keyed by a digest of everything it depends on (``key``), so it is built
once and reused. ``scope`` groups rows for lookups (e.g. all cache shards of one model).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy import delete as sa_delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from genreg.core.timestamps import now
from genreg.store.db import read_session, write_session
from genreg.store.metadata import Derived
from genreg.store.models import DerivedRow


def _d(r: DerivedRow) -> Derived:
    return Derived(r.kind, r.scope, r.key, r.object_digest, dict(r.meta or {}), r.created_at)


class DerivedRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> Derived | None:
        with read_session(self.engine) as s:
            r = s.exec(select(DerivedRow).where(DerivedRow.key == key)).first()
            return _d(r) if r else None

    def put(
        self,
        kind: str,
        scope: str,
        key: str,
        object_digest: str,
        meta: dict[str, Any] | None = None,
    ) -> Derived:
        """Record a derived object (its bytes must already be durable in the object store).
        Idempotent: when ``key`` exists (e.g. a concurrent builder won), returns that row."""
        try:
            with write_session(self.engine) as s:
                existing = s.exec(select(DerivedRow).where(DerivedRow.key == key)).first()
                if existing is not None:
                    return _d(existing)
                row = DerivedRow(
                    kind=kind,
                    scope=scope,
                    key=key,
                    object_digest=object_digest,
                    meta=meta or {},
                    created_at=now(),
                )
                s.add(row)
                s.flush()
                return _d(row)
        except IntegrityError:
            found = self.get(key)
            if found is None:
                raise
            return found

    def put_many(self, rows: list[tuple[str, str, str, str, dict[str, Any]]]) -> int:
        """Record many derived objects ``(kind, scope, key, object_digest, meta)`` in one
        transaction (the response cache flushes a run's entries this way); keys that exist
        are skipped. Returns the number of rows added."""
        if not rows:
            return 0
        uniq = {r[2]: r for r in rows}
        try:
            with write_session(self.engine) as s:
                have = set()
                keys = list(uniq)
                for i in range(0, len(keys), 500):
                    q = select(DerivedRow.key).where(col(DerivedRow.key).in_(keys[i : i + 500]))
                    have.update(s.exec(q).all())
                ts = now()
                new = [r for k, r in uniq.items() if k not in have]
                s.add_all(
                    DerivedRow(
                        kind=kind,
                        scope=scope,
                        key=key,
                        object_digest=d,
                        meta=meta or {},
                        created_at=ts,
                    )
                    for kind, scope, key, d, meta in new
                )
                return len(new)
        except IntegrityError:  # a concurrent writer added some: fall back to one by one
            for r in uniq.values():
                self.put(*r)
            return len(uniq)

    def delete(self, key: str) -> None:
        with write_session(self.engine) as s:
            s.execute(sa_delete(DerivedRow).where(col(DerivedRow.key) == key))

    def list(self, kind: str, scope: str | None = None) -> list[Derived]:
        with read_session(self.engine) as s:
            q = select(DerivedRow).where(DerivedRow.kind == kind)
            if scope is not None:
                q = q.where(DerivedRow.scope == scope)
            return [_d(r) for r in s.exec(q.order_by(col(DerivedRow.id))).all()]
