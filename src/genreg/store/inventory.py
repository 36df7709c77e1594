"""Which objects the metadata references, and by whom (for ``genreg verify`` and ``gc``).

Every reference is a :class:`ObjectRef`: the bare sha256 of an object plus a human name for
the row that holds it (``prompt:qa@v3``, ``derived faiss-index 9f2c1e0a7b3d``,
``run 01HX... results``), so problems can be reported by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import select

from genreg.store.db import read_session
from genreg.store.models import ArtifactRow, DerivedRow, RunRow, VersionRow


@dataclass(frozen=True)
class ObjectRef:
    digest: str  # bare sha256 hex
    owner: str  # who references it, e.g. "prompt:qa@v3"
    kind: str  # version | derived | run
    artifact_kind: str = ""  # for versions: prompt | evalset | corpus | routing
    content_digest: str = ""  # for versions: the version's "sha256:..." digest
    meta: object = None  # for derived rows: their meta map (may name further objects)


def _hex(value: object) -> str | None:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value
    return None


def object_references(engine: Engine) -> list[ObjectRef]:
    """Every object a row names, directly or through a documented field: a corpus version's
    ``summary.layout`` (its layout object) and a derived row's ``meta.index`` (e.g. a pack's
    index object)."""
    out: list[ObjectRef] = []
    with read_session(engine) as s:
        rows = s.exec(
            select(
                ArtifactRow.kind,
                ArtifactRow.name,
                VersionRow.number,
                VersionRow.object_digest,
                VersionRow.digest,
                VersionRow.summary,
            )
            .join(VersionRow, VersionRow.artifact_id == ArtifactRow.id)
            .order_by(ArtifactRow.kind, ArtifactRow.name, VersionRow.number)
        ).all()
        for kind, name, number, obj, digest, summary in rows:
            owner = f"{kind}:{name}@v{number}"
            out.append(ObjectRef(obj, owner, "version", kind, digest))
            layout = _hex((summary or {}).get("layout")) if kind == "corpus" else None
            if layout:
                out.append(ObjectRef(layout, f"{owner} layout", "layout"))
        for d in s.exec(select(DerivedRow).order_by(DerivedRow.id)).all():
            owner = f"derived {d.kind} {d.key[:24]}"
            out.append(ObjectRef(d.object_digest, owner, "derived", meta=d.meta))
            index = _hex((d.meta or {}).get("index"))
            if index:
                out.append(ObjectRef(index, f"{owner} index", "derived-index"))
        for run_id, obj in s.exec(
            select(RunRow.id, RunRow.results_object).where(RunRow.results_object.is_not(None))  # type: ignore[union-attr]
        ).all():
            out.append(ObjectRef(obj, f"run {run_id} results", "run"))
    return out
