"""The metadata interface: artifacts, versions, aliases (+ journal), derived rows, runs, tokens.

:class:`Metadata` is what the services call; :func:`open_metadata` picks the implementation
once, when the registry opens:

- :class:`genreg.store.sql_metadata.SqlMetadata` -- SQLModel on any database (SQLite,
  PostgreSQL); migrates on first use.
- :class:`genreg.store.sqlite_metadata.SqliteMetadata` -- the default SQLite file. Answers the
  hot operations (resolve, version by digest, add a version, history, list, derived rows,
  data_version, ping) with the stdlib ``sqlite3`` -- importing SQLAlchemy costs ~0.3-0.6 s,
  which would dominate ``genreg resolve``, ``genreg corpus snapshot`` and the API's pinned
  reads -- and hands every other operation to a :class:`SqlMetadata` it opens lazily.

Both give the same values, error types and messages (``tests/test_metadata_contract.py`` runs
one suite over both). The messages live here, once (:func:`artifact_not_found` ...). This
module imports neither SQLAlchemy nor ``sqlite3``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from genreg.core.refs import Ref
from genreg.errors import AmbiguousRef, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from genreg.core.types import AliasEvent, ArtifactInfo, VersionInfo
    from genreg.store.runs import RunRepo
    from genreg.store.tokens import TokenRepo


@dataclass(frozen=True)
class Derived:
    """A derived object (pack, embedding-cache shard, FAISS index): ``key`` is a digest of
    everything it depends on, so it is built once and reused; ``scope`` groups rows."""

    kind: str
    scope: str
    key: str
    object_digest: str
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""


@dataclass(frozen=True)
class ObjectRef:
    """One object a row names (for ``verify`` and ``gc``)."""

    digest: str  # bare sha256 hex
    owner: str  # who references it, e.g. "prompt:qa@v3"
    kind: str  # version | layout | derived | derived-index | run
    artifact_kind: str = ""  # for versions: prompt | evalset | corpus | routing
    content_digest: str = ""  # for versions: the version's "sha256:..." digest
    meta: object = None  # for derived rows: their meta map (may name further objects)
    derived_kind: str = ""  # for derived rows and their indexes: the row's kind (pack, lease...)


class DerivedStore(Protocol):
    """Derived rows (packs, embedding-cache shards, FAISS indexes, response caches)."""

    def get(self, key: str) -> Derived | None: ...

    def put(
        self,
        kind: str,
        scope: str,
        key: str,
        object_digest: str,
        meta: dict[str, Any] | None = None,
    ) -> Derived:
        """Record a derived object (its bytes must already be durable). Idempotent on
        ``key``: when it exists (e.g. a concurrent builder won) the stored row is returned."""
        ...

    def put_many(self, rows: list[tuple[str, str, str, str, dict[str, Any]]]) -> int:
        """Record many ``(kind, scope, key, object_digest, meta)`` rows in one transaction;
        keys that exist are skipped. Returns the number of rows added."""
        ...

    def list(self, kind: str, scope: str | None = None) -> list[Derived]:
        """Rows of ``kind`` (and ``scope``), oldest first."""
        ...

    def delete(self, key: str) -> None:
        """Remove the row ``key`` (absent: nothing happens). Only for rows that are not
        derived objects but references with a lifetime: a build's lease
        (:mod:`genreg.service.leases`)."""
        ...


class Metadata(Protocol):
    """The registry's metadata store. Timestamps are :func:`genreg.core.timestamps.now`."""

    url: str

    def ensure_schema(self) -> None:
        """Create or migrate the schema to the code's head (idempotent, cheap when current)."""
        ...

    # ---- versions ---------------------------------------------------------------------
    def resolve(self, ref: Ref) -> VersionInfo:
        """The version ``ref`` names; NotFound / AmbiguousRef (messages below) otherwise."""
        ...

    def version_by_digest(self, kind: str, name: str, digest: str) -> VersionInfo | None:
        """The version of ``kind:name`` with exactly ``digest`` (None, also when the artifact
        does not exist)."""
        ...

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
        """``(version, created)``: the next version, or the existing one with ``digest``.
        Numbering is serialised with every other writer (contiguous under concurrency)."""
        ...

    def history(self, kind: str, name: str) -> list[VersionInfo]:
        """Every version of ``kind:name``, oldest first, with its aliases."""
        ...

    def list_artifacts(self, kind: str | None = None) -> list[ArtifactInfo]:
        """Every artifact (of ``kind``) by kind and name, with latest version and aliases."""
        ...

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
        """Point ``alias`` at ``version`` and journal the move, in one transaction."""
        ...

    def remove_alias(
        self, kind: str, name: str, alias: str, *, actor: str, reason: str
    ) -> AliasEvent: ...

    def alias_history(self, kind: str, name: str, alias: str | None = None) -> list[AliasEvent]:
        """The journal, oldest first."""
        ...

    # ---- derived rows, runs, tokens, inventory ------------------------------------------
    @property
    def derived(self) -> DerivedStore: ...

    @property
    def runs(self) -> RunRepo:
        """Eval runs, their lineage edges and metrics (SQLModel on every backend)."""
        ...

    @property
    def tokens(self) -> TokenRepo:
        """API tokens (salted hashes only; SQLModel on every backend)."""
        ...

    def object_references(self) -> list[ObjectRef]:
        """Every object a row names, with the row's human name (for verify and gc)."""
        ...

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine on the same database, opened (and migrated) on first use:
        for tests and benchmarks that inspect rows; services never use it."""
        ...

    # ---- liveness ---------------------------------------------------------------------
    def data_version(self) -> int | None:
        """A counter that changes whenever another connection commits, or None when the
        backend has no cheap one (then callers must not cache resolutions)."""
        ...

    def ping(self) -> str | None:
        """The schema revision; raises when the database does not answer."""
        ...

    def close(self) -> None: ...


def open_metadata(database_url: str) -> Metadata:
    """The implementation for ``database_url``, chosen once (nothing is connected yet)."""
    if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        from genreg.store.sqlite_metadata import SqliteMetadata

        return SqliteMetadata(database_url)
    from genreg.store.sql_metadata import SqlMetadata

    return SqlMetadata(database_url)


# ---- the messages every metadata reader raises ------------------------------------------
def artifact_not_found(kind: str, name: str) -> NotFound:
    return NotFound(f"{kind}:{name} not found")


def version_not_found(kind: str, name: str, version: int) -> NotFound:
    return NotFound(f"{kind}:{name}@v{version} not found")


def digest_not_found(ref: Ref) -> NotFound:
    return NotFound(f"{ref.artifact}@sha256:{ref.digest_prefix} matches no version")


def digest_ambiguous(ref: Ref, a: int, b: int) -> AmbiguousRef:
    return AmbiguousRef(
        f"{ref.artifact}@sha256:{ref.digest_prefix} is ambiguous: matches v{a} and v{b}; "
        "give more digits"
    )


def alias_not_found(kind: str, name: str, alias: str) -> NotFound:
    return NotFound(f"{kind}:{name} has no alias {alias!r}")


def no_versions(ref: Ref) -> NotFound:
    return NotFound(f"{ref.artifact} has no versions")
