""":class:`SqlMetadata`: the :class:`~genreg.store.metadata.Metadata` interface over SQLModel,
for any database SQLAlchemy speaks (SQLite, PostgreSQL). The engine is created -- and the
schema migrated -- on first use. The SQL itself lives in :mod:`genreg.store.repo` (artifacts,
versions, aliases), :mod:`genreg.store.derived`, :mod:`genreg.store.runs`,
:mod:`genreg.store.tokens` and :mod:`genreg.store.inventory`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy import Engine, text

from genreg.core.refs import Ref
from genreg.core.types import AliasEvent, ArtifactInfo, VersionInfo
from genreg.errors import NotFound
from genreg.store.derived import DerivedRepo
from genreg.store.metadata import ObjectRef
from genreg.store.repo import Repo
from genreg.store.runs import RunRepo
from genreg.store.tokens import TokenRepo


class SqlMetadata:
    def __init__(self, url: str) -> None:
        self.url = url

    @cached_property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, migrated on first use."""
        from genreg.store.db import ensure_schema, make_engine

        engine = make_engine(self.url)
        ensure_schema(engine)
        return engine

    def ensure_schema(self) -> None:
        _ = self.engine

    @cached_property
    def _repo(self) -> Repo:
        return Repo(self.engine)

    @cached_property
    def derived(self) -> DerivedRepo:
        return DerivedRepo(self.engine)

    @cached_property
    def runs(self) -> RunRepo:
        return RunRepo(self.engine)

    @cached_property
    def tokens(self) -> TokenRepo:
        return TokenRepo(self.engine)

    # ---- versions ---------------------------------------------------------------------
    def resolve(self, ref: Ref) -> VersionInfo:
        return self._repo.resolve(ref)

    def version_by_digest(self, kind: str, name: str, digest: str) -> VersionInfo | None:
        try:
            return self._repo.resolve(Ref(kind, name, digest_prefix=digest.removeprefix("sha256:")))
        except NotFound:
            return None

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
        return self._repo.add_version(
            kind,
            name,
            digest=digest,
            object_digest=object_digest,
            author=author,
            message=message,
            tags=tags,
            summary=summary,
        )

    def history(self, kind: str, name: str) -> list[VersionInfo]:
        return self._repo.history(kind, name)

    def list_artifacts(self, kind: str | None = None) -> list[ArtifactInfo]:
        return self._repo.list_artifacts(kind)

    # ---- aliases ----------------------------------------------------------------------
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
        return self._repo.set_alias(
            kind, name, alias, version, actor=actor, reason=reason, run_id=run_id
        )

    def remove_alias(
        self, kind: str, name: str, alias: str, *, actor: str, reason: str
    ) -> AliasEvent:
        return self._repo.remove_alias(kind, name, alias, actor=actor, reason=reason)

    def alias_history(self, kind: str, name: str, alias: str | None = None) -> list[AliasEvent]:
        return self._repo.alias_history(kind, name, alias)

    # ---- inventory / liveness ---------------------------------------------------------
    def object_references(self) -> list[ObjectRef]:
        from genreg.store.inventory import object_references

        return object_references(self.engine)

    def data_version(self) -> int | None:
        return None  # no cheap cross-connection change counter: callers resolve every time

    def ping(self) -> str | None:
        with self.engine.connect() as c:
            row = c.execute(text("SELECT version_num FROM alembic_version")).first()
        return str(row[0]) if row else None

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
