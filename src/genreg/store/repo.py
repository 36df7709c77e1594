"""SQL operations on artifacts, versions and aliases. Returns domain objects only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from genreg.core.refs import Ref
from genreg.core.timestamps import now
from genreg.core.types import AliasEvent, ArtifactInfo, VersionInfo
from genreg.store.db import read_session, with_retry, write_session
from genreg.store.metadata import (
    alias_not_found,
    artifact_not_found,
    digest_ambiguous,
    digest_not_found,
    no_versions,
    version_not_found,
)
from genreg.store.models import AliasEventRow, AliasRow, ArtifactRow, VersionRow


def _info(art: ArtifactRow, v: VersionRow, aliases: tuple[str, ...] = ()) -> VersionInfo:
    return VersionInfo(
        kind=art.kind,
        name=art.name,
        version=v.number,
        digest=v.digest,
        object_digest=v.object_digest,
        created_at=v.created_at,
        author=v.author,
        message=v.message,
        tags=dict(v.tags or {}),
        parent=v.parent,
        summary=dict(v.summary or {}),
        aliases=aliases,
    )


def _artifact(s: Session, kind: str, name: str) -> ArtifactRow | None:
    return s.exec(
        select(ArtifactRow).where(ArtifactRow.kind == kind, ArtifactRow.name == name)
    ).first()


def _require_artifact(s: Session, kind: str, name: str) -> ArtifactRow:
    art = _artifact(s, kind, name)
    if art is None:
        raise artifact_not_found(kind, name)
    return art


def _aliases_by_version(s: Session, artifact_id: int) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for a in s.exec(
        select(AliasRow).where(AliasRow.artifact_id == artifact_id).order_by(AliasRow.name)
    ):
        out.setdefault(a.version, []).append(a.name)
    return out


class Repo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- versions -------------------------------------------------------------------
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
        """Insert the next version unless ``digest`` exists; numbering happens in the same
        transaction as the insert, under the artifact lock, with a bounded retry."""

        def tx() -> tuple[VersionInfo, bool]:
            with write_session(self.engine) as s:
                art = _artifact(s, kind, name)
                if art is None:
                    art = ArtifactRow(kind=kind, name=name, created_at=now())
                    s.add(art)
                    s.flush()
                elif self.engine.dialect.name != "sqlite":
                    s.exec(
                        select(ArtifactRow).where(ArtifactRow.id == art.id).with_for_update()
                    ).one()
                existing = s.exec(
                    select(VersionRow).where(
                        VersionRow.artifact_id == art.id, VersionRow.digest == digest
                    )
                ).first()
                if existing is not None:
                    aliases = tuple(_aliases_by_version(s, art.id).get(existing.number, []))  # type: ignore[arg-type]  # a stored row's id is set
                    return _info(art, existing, aliases), False
                top = s.exec(
                    select(func.max(VersionRow.number)).where(VersionRow.artifact_id == art.id)
                ).one()
                row = VersionRow(
                    artifact_id=art.id,
                    number=(top or 0) + 1,
                    digest=digest,
                    object_digest=object_digest,
                    created_at=now(),
                    author=author,
                    message=message,
                    tags=tags,
                    parent=top,
                    summary=summary,
                )
                s.add(row)
                s.flush()
                return _info(art, row), True

        return with_retry(tx)

    def resolve(self, ref: Ref) -> VersionInfo:
        with read_session(self.engine) as s:
            art = _require_artifact(s, ref.kind, ref.name)
            q = select(VersionRow).where(VersionRow.artifact_id == art.id)
            if ref.version is not None:
                row = s.exec(q.where(VersionRow.number == ref.version)).first()
                if row is None:
                    raise version_not_found(ref.kind, ref.name, ref.version)
            elif ref.digest_prefix is not None:
                rows = s.exec(
                    q.where(col(VersionRow.digest).startswith("sha256:" + ref.digest_prefix))
                    .order_by(VersionRow.number)
                    .limit(2)
                ).all()
                if not rows:
                    raise digest_not_found(ref)
                if len(rows) > 1:
                    raise digest_ambiguous(ref, rows[0].number, rows[1].number)
                row = rows[0]
            elif ref.alias is not None:
                al = s.exec(
                    select(AliasRow).where(
                        AliasRow.artifact_id == art.id, AliasRow.name == ref.alias
                    )
                ).first()
                if al is None:
                    raise alias_not_found(ref.kind, ref.name, ref.alias)
                row = s.exec(q.where(VersionRow.number == al.version)).one()
            else:
                row = s.exec(q.order_by(col(VersionRow.number).desc()).limit(1)).first()
                if row is None:
                    raise no_versions(ref)
            aliases = tuple(_aliases_by_version(s, art.id).get(row.number, []))  # type: ignore[arg-type]  # a stored row's id is set
            return _info(art, row, aliases)

    def history(self, kind: str, name: str) -> list[VersionInfo]:
        with read_session(self.engine) as s:
            art = _require_artifact(s, kind, name)
            by_v = _aliases_by_version(s, art.id)  # type: ignore[arg-type]  # a stored row's id is set
            rows = s.exec(
                select(VersionRow)
                .where(VersionRow.artifact_id == art.id)
                .order_by(VersionRow.number)
            ).all()
            return [_info(art, r, tuple(by_v.get(r.number, []))) for r in rows]

    def list_artifacts(self, kind: str | None = None) -> list[ArtifactInfo]:
        with read_session(self.engine) as s:
            q = select(ArtifactRow).order_by(ArtifactRow.kind, ArtifactRow.name)
            if kind:
                q = q.where(ArtifactRow.kind == kind)
            arts = s.exec(q).all()
            stats = {
                aid: (mx, n)
                for aid, mx, n in s.exec(
                    select(
                        VersionRow.artifact_id, func.max(VersionRow.number), func.count()
                    ).group_by(col(VersionRow.artifact_id))
                ).all()
            }
            aliases: dict[int, dict[str, int]] = {}
            for al in s.exec(select(AliasRow)).all():
                aliases.setdefault(al.artifact_id, {})[al.name] = al.version
            out = []
            for a in arts:
                aid = a.id or 0  # rows read back always have an id
                mx, n = stats.get(aid, (None, 0))
                out.append(ArtifactInfo(a.kind, a.name, a.created_at, mx, n, aliases.get(aid, {})))
            return out

    # ---- aliases --------------------------------------------------------------------
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
        def tx() -> AliasEvent:
            with write_session(self.engine) as s:
                art = _require_artifact(s, kind, name)
                if self.engine.dialect.name != "sqlite":
                    s.exec(
                        select(ArtifactRow).where(ArtifactRow.id == art.id).with_for_update()
                    ).one()
                if (
                    s.exec(
                        select(VersionRow.id).where(
                            VersionRow.artifact_id == art.id, VersionRow.number == version
                        )
                    ).first()
                    is None
                ):
                    raise version_not_found(kind, name, version)
                cur = s.exec(
                    select(AliasRow).where(AliasRow.artifact_id == art.id, AliasRow.name == alias)
                ).first()
                ts = now()
                if cur is None:
                    s.add(
                        AliasRow(
                            artifact_id=art.id,
                            name=alias,
                            version=version,
                            updated_at=ts,
                            updated_by=actor,
                        )
                    )
                    action, prev = "set", None
                elif cur.version == version:  # already there: nothing moves, nothing journaled
                    return AliasEvent(
                        kind, name, alias, "unchanged", version, version,
                        cur.updated_by, "", None, cur.updated_at,
                    )  # fmt: skip
                else:
                    action, prev = "move", cur.version
                    cur.version, cur.updated_at, cur.updated_by = version, ts, actor
                    s.add(cur)
                ev = AliasEventRow(
                    artifact_id=art.id,
                    alias=alias,
                    action=action,
                    from_version=prev,
                    to_version=version,
                    actor=actor,
                    reason=reason,
                    run_id=run_id,
                    created_at=ts,
                )
                s.add(ev)
                s.flush()
                return self._event(kind, name, ev)

        return with_retry(tx)

    def remove_alias(
        self, kind: str, name: str, alias: str, *, actor: str, reason: str
    ) -> AliasEvent:
        def tx() -> AliasEvent:
            with write_session(self.engine) as s:
                art = _require_artifact(s, kind, name)
                if self.engine.dialect.name != "sqlite":  # serialise with set_alias
                    s.exec(
                        select(ArtifactRow).where(ArtifactRow.id == art.id).with_for_update()
                    ).one()
                cur = s.exec(
                    select(AliasRow).where(AliasRow.artifact_id == art.id, AliasRow.name == alias)
                ).first()
                if cur is None:
                    raise alias_not_found(kind, name, alias)
                ev = AliasEventRow(
                    artifact_id=art.id,
                    alias=alias,
                    action="delete",
                    from_version=cur.version,
                    to_version=None,
                    actor=actor,
                    reason=reason,
                    run_id=None,
                    created_at=now(),
                )
                s.delete(cur)
                s.add(ev)
                s.flush()
                return self._event(kind, name, ev)

        return with_retry(tx)

    def alias_history(self, kind: str, name: str, alias: str | None = None) -> list[AliasEvent]:
        with read_session(self.engine) as s:
            art = _require_artifact(s, kind, name)
            q = select(AliasEventRow).where(AliasEventRow.artifact_id == art.id)
            if alias:
                q = q.where(AliasEventRow.alias == alias)
            rows = s.exec(q.order_by(col(AliasEventRow.id))).all()
            return [self._event(kind, name, r) for r in rows]

    @staticmethod
    def _event(kind: str, name: str, r: AliasEventRow) -> AliasEvent:
        return AliasEvent(
            kind,
            name,
            r.alias,
            r.action,
            r.from_version,
            r.to_version,
            r.actor,
            r.reason,
            r.run_id,
            r.created_at,
        )
