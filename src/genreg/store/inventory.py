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


def object_references(engine: Engine) -> list[ObjectRef]:
    out: list[ObjectRef] = []
    with read_session(engine) as s:
        rows = s.exec(
            select(
                ArtifactRow.kind,
                ArtifactRow.name,
                VersionRow.number,
                VersionRow.object_digest,
                VersionRow.digest,
            )
            .join(VersionRow, VersionRow.artifact_id == ArtifactRow.id)
            .order_by(ArtifactRow.kind, ArtifactRow.name, VersionRow.number)
        ).all()
        for kind, name, number, obj, digest in rows:
            out.append(ObjectRef(obj, f"{kind}:{name}@v{number}", "version", kind, digest))
        for d in s.exec(select(DerivedRow).order_by(DerivedRow.id)).all():
            out.append(
                ObjectRef(d.object_digest, f"derived {d.kind} {d.key[:12]}", "derived", meta=d.meta)
            )
        for run_id, obj in s.exec(
            select(RunRow.id, RunRow.results_object).where(RunRow.results_object.is_not(None))  # type: ignore[union-attr]
        ).all():
            out.append(ObjectRef(obj, f"run {run_id} results", "run"))
    return out
