"""Which objects the metadata references, and by whom (for ``genreg verify`` and ``gc``).

Every reference is a :class:`ObjectRef`: the bare sha256 of an object plus a human name for
the row that holds it (``prompt:qa@v3``, ``derived faiss-index 9f2c1e0a7b3d``,
``run 01HX... results``), so problems can be reported by name.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy import select as sa_select  # sqlmodel's select() types at most 4 columns
from sqlmodel import col, select

from genreg.store.db import read_session
from genreg.store.metadata import ObjectRef
from genreg.store.models import ArtifactRow, DerivedRow, RunRow, VersionRow


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
        rows = s.execute(
            sa_select(
                col(ArtifactRow.kind),
                col(ArtifactRow.name),
                col(VersionRow.number),
                col(VersionRow.object_digest),
                col(VersionRow.digest),
                col(VersionRow.summary),
            )
            .join(VersionRow, col(VersionRow.artifact_id) == col(ArtifactRow.id))
            .order_by(col(ArtifactRow.kind), col(ArtifactRow.name), col(VersionRow.number))
        ).all()
        for kind, name, number, obj, digest, summary in rows:
            owner = f"{kind}:{name}@v{number}"
            out.append(ObjectRef(obj, owner, "version", kind, digest))
            layout = _hex((summary or {}).get("layout")) if kind == "corpus" else None
            if layout:
                out.append(ObjectRef(layout, f"{owner} layout", "layout"))
        for d in s.exec(select(DerivedRow).order_by(col(DerivedRow.id))).all():
            owner = f"derived {d.kind} {d.key[:24]}"
            out.append(
                ObjectRef(d.object_digest, owner, "derived", meta=d.meta, derived_kind=d.kind)
            )
            index = _hex((d.meta or {}).get("index"))
            if index:
                out.append(ObjectRef(index, f"{owner} index", "derived-index", derived_kind=d.kind))
        for run_id, obj in s.exec(
            select(RunRow.id, RunRow.results_object).where(col(RunRow.results_object).is_not(None))
        ).all():
            out.append(ObjectRef(obj, f"run {run_id} results", "run"))
    return out
