"""SQLModel table models. They never leave ``genreg.store``: the service gets domain objects.

Timestamps are ISO-8601 UTC strings (``2026-11-28T04:21:26.123456Z``): portable across
SQLite and PostgreSQL and sortable as text. JSON columns use SQLAlchemy's portable JSON type.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class ArtifactRow(SQLModel, table=True):
    __tablename__ = "artifact"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_artifact_kind_name"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    name: str = Field(max_length=100)
    created_at: str = Field(max_length=32)


class VersionRow(SQLModel, table=True):
    __tablename__ = "version"
    __table_args__ = (
        UniqueConstraint("artifact_id", "number", name="uq_version_number"),
        UniqueConstraint("artifact_id", "digest", name="uq_version_digest"),
        Index("ix_version_digest", "digest"),
    )

    id: int | None = Field(default=None, primary_key=True)
    artifact_id: int = Field(foreign_key="artifact.id")
    number: int
    digest: str = Field(max_length=71)  # "sha256:" + 64 hex
    object_digest: str = Field(max_length=64)  # object holding the canonical content
    created_at: str = Field(max_length=32)
    author: str = Field(default="", max_length=200)
    message: str = Field(default="", sa_column=Column(Text, nullable=False))
    tags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    parent: int | None = Field(default=None)  # number of the previous version
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AliasRow(SQLModel, table=True):
    __tablename__ = "alias"
    __table_args__ = (UniqueConstraint("artifact_id", "name", name="uq_alias_name"),)

    id: int | None = Field(default=None, primary_key=True)
    artifact_id: int = Field(foreign_key="artifact.id")
    name: str = Field(max_length=100)
    version: int
    updated_at: str = Field(max_length=32)
    updated_by: str = Field(default="", max_length=200)


class AliasEventRow(SQLModel, table=True):
    """Append-only journal of alias set / move / delete. Never updated or deleted."""

    __tablename__ = "alias_event"
    __table_args__ = (
        Index("ix_alias_event_artifact", "artifact_id", "alias"),
        Index("ix_alias_event_run", "run_id"),  # migration 0002
    )

    id: int | None = Field(default=None, primary_key=True)
    artifact_id: int = Field(foreign_key="artifact.id")
    alias: str = Field(max_length=100)
    action: str = Field(max_length=16)  # set | move | delete
    from_version: int | None = None
    to_version: int | None = None
    actor: str = Field(default="", max_length=200)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    run_id: str | None = Field(default=None, max_length=64)
    created_at: str = Field(max_length=32)


class RunRow(SQLModel, table=True):
    __tablename__ = "run"
    __table_args__ = (
        Index("ix_run_fingerprint", "fingerprint"),
        Index("ix_run_name", "name"),
        Index("ix_run_started_at", "started_at"),  # migration 0002
    )

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)  # the eval's name
    source: str = Field(default="eval", max_length=16)  # eval | score
    status: str = Field(default="running", max_length=16)  # running | done | failed
    passed: bool | None = None  # gate outcome; None when no gate ran
    fingerprint: str = Field(default="", max_length=71)
    started_at: str = Field(max_length=32)
    ended_at: str | None = Field(default=None, max_length=32)
    author: str = Field(default="", max_length=200)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    lineage: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    results_object: str | None = Field(default=None, max_length=64)
    run_name: str | None = Field(default=None, max_length=200)  # --run-name (migration 0003)


class RunTagRow(SQLModel, table=True):
    """``--tag key=value`` on a run (one row per key)."""

    __tablename__ = "run_tag"
    __table_args__ = (
        UniqueConstraint("run_id", "key", name="uq_run_tag_run_key"),
        Index("ix_run_tag_key_value", "key", "value"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", max_length=64)
    key: str = Field(max_length=200)
    value: str = Field(max_length=1000)


class RunParamRow(SQLModel, table=True):
    """A run parameter: one ``--set key=value`` override, the value as given."""

    __tablename__ = "run_param"
    __table_args__ = (
        UniqueConstraint("run_id", "key", name="uq_run_param_run_key"),
        Index("ix_run_param_key_value", "key", "value"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", max_length=64)
    key: str = Field(max_length=200)
    value: str = Field(max_length=1000)


class RunInputRow(SQLModel, table=True):
    """One lineage edge: a run used this exact version (for reverse lineage queries)."""

    __tablename__ = "run_input"
    __table_args__ = (
        Index("ix_run_input_version", "kind", "name", "version"),
        Index("ix_run_input_run", "run_id"),
        Index("ix_run_input_digest", "digest"),  # migration 0002
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", max_length=64)
    role: str = Field(max_length=32)  # prompt | evalset | corpus | routing
    kind: str = Field(max_length=16)
    name: str = Field(max_length=100)
    version: int
    digest: str = Field(max_length=71)
    split: str | None = Field(default=None, max_length=100)


class RunMetricRow(SQLModel, table=True):
    __tablename__ = "run_metric"
    __table_args__ = (
        Index("ix_run_metric_run", "run_id"),
        Index("ix_run_metric_name_value", "name", "value"),  # migration 0002
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", max_length=64)
    name: str = Field(max_length=64)
    value: float


class TokenRow(SQLModel, table=True):
    """API tokens. Only a salted hash is stored; the token is shown once at creation."""

    __tablename__ = "api_token"
    __table_args__ = (UniqueConstraint("token_id", name="uq_token_id"),)

    id: int | None = Field(default=None, primary_key=True)
    token_id: str = Field(max_length=32)  # public part, used to find the row
    name: str = Field(max_length=100)
    scopes: str = Field(max_length=200)  # space-separated
    salt: str = Field(max_length=64)
    hash: str = Field(max_length=128)
    created_at: str = Field(max_length=32)
    revoked_at: str | None = Field(default=None, max_length=32)


class DerivedRow(SQLModel, table=True):
    """Derived objects (chunk lists, embedding-cache shards, FAISS indexes, doc packs).

    ``key`` is a digest of everything the object depends on, so it is built once and reused.
    ``scope`` groups rows for lookups (e.g. the embedding-model digest of a cache shard).
    """

    __tablename__ = "derived"
    __table_args__ = (
        UniqueConstraint("key", name="uq_derived_key"),
        Index("ix_derived_kind_scope", "kind", "scope"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    scope: str = Field(default="", max_length=128)
    key: str = Field(max_length=128)
    object_digest: str = Field(max_length=64)
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: str = Field(max_length=32)
