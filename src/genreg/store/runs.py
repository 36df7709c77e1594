"""SQL operations on eval runs, their lineage edges and metrics. Returns domain objects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from genreg.core.lineage import Lineage
from genreg.core.runinfo import RunInfo, RunInput
from genreg.errors import AmbiguousRef, NotFound
from genreg.store.db import read_session, with_retry, write_session
from genreg.store.models import RunInputRow, RunMetricRow, RunParamRow, RunRow, RunTagRow

_Labels = dict[str, dict[str, str]]


def _info(r: RunRow, inputs: list[RunInputRow], tags: _Labels, params: _Labels) -> RunInfo:
    return RunInfo(
        id=r.id,
        name=r.name,
        source=r.source,
        status=r.status,
        passed=r.passed,
        fingerprint=r.fingerprint,
        started_at=r.started_at,
        ended_at=r.ended_at,
        author=r.author,
        config=dict(r.config or {}),
        lineage=Lineage.from_dict(r.lineage or {}),
        metrics=dict(r.metrics or {}),
        report=dict(r.report or {}),
        results_object=r.results_object,
        inputs=[RunInput(i.role, i.kind, i.name, i.version, i.digest, i.split) for i in inputs],
        run_name=r.run_name,
        tags=tags.get(r.id, {}),
        params=params.get(r.id, {}),
    )


class RunRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, run: RunInfo) -> RunInfo:
        """Insert the run, its lineage edges and its metrics in one transaction."""

        def tx() -> None:
            with write_session(self.engine) as s:
                s.add(
                    RunRow(
                        id=run.id,
                        name=run.name,
                        source=run.source,
                        status=run.status,
                        passed=run.passed,
                        fingerprint=run.fingerprint,
                        started_at=run.started_at,
                        ended_at=run.ended_at,
                        author=run.author,
                        config=run.config,
                        lineage=run.lineage.to_dict(),
                        metrics=run.metrics,
                        report=run.report,
                        results_object=run.results_object,
                        run_name=run.run_name,
                    )
                )
                s.flush()
                for i in run.inputs:
                    s.add(
                        RunInputRow(
                            run_id=run.id,
                            role=i.role,
                            kind=i.kind,
                            name=i.name,
                            version=i.version,
                            digest=i.digest,
                            split=i.split,
                        )
                    )
                for name, value in run.metrics.items():
                    s.add(RunMetricRow(run_id=run.id, name=name, value=float(value)))
                for key, tag in run.tags.items():
                    s.add(RunTagRow(run_id=run.id, key=key, value=tag))
                for key, param in run.params.items():
                    s.add(RunParamRow(run_id=run.id, key=key, value=param))

        with_retry(tx)
        return run

    def _load(self, s: Session, rows: list[RunRow]) -> list[RunInfo]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        edges: dict[str, list[RunInputRow]] = {}
        for e in s.exec(
            select(RunInputRow)
            .where(col(RunInputRow.run_id).in_(ids))
            .order_by(col(RunInputRow.id))
        ):
            edges.setdefault(e.run_id, []).append(e)
        labels: list[_Labels] = []
        for table in (RunTagRow, RunParamRow):
            found: _Labels = {}
            for t in s.exec(select(table).where(col(table.run_id).in_(ids)).order_by(table.id)):
                found.setdefault(t.run_id, {})[t.key] = t.value
            labels.append(found)
        return [_info(r, edges.get(r.id, []), *labels) for r in rows]

    def get(self, run_id: str) -> RunInfo:
        """A run by id or unique id prefix (at least 4 characters)."""
        with read_session(self.engine) as s:
            row = s.get(RunRow, run_id)
            if row is None:
                if len(run_id) < 4:
                    raise NotFound(f"run {run_id!r} not found (give at least 4 characters)")
                rows = s.exec(
                    select(RunRow).where(col(RunRow.id).startswith(run_id)).limit(2)
                ).all()
                if not rows:
                    raise NotFound(f"run {run_id!r} not found")
                if len(rows) > 1:
                    raise AmbiguousRef(f"run prefix {run_id!r} is ambiguous; give more characters")
                row = rows[0]
            return self._load(s, [row])[0]

    def list(
        self,
        *,
        name: str | None = None,
        used: tuple[str, str, int | None] | None = None,
        fingerprint: str | None = None,
        limit: int | None = None,
        tags: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> list[RunInfo]:
        """Runs, newest first, filtered by eval name, an input used, fingerprint, and tags /
        parameters (a run must carry every given ``key=value``)."""
        with read_session(self.engine) as s:
            q = select(RunRow)
            if name:
                q = q.where(RunRow.name == name)
            if fingerprint:
                q = q.where(RunRow.fingerprint == fingerprint)
            if used is not None:
                q = where_used(q, used)
            for table, want in ((RunTagRow, tags), (RunParamRow, params)):
                for key, value in (want or {}).items():
                    has = select(table.run_id).where(table.key == key, table.value == value)
                    q = q.where(col(RunRow.id).in_(has))
            q = q.order_by(col(RunRow.started_at).desc(), col(RunRow.id).desc())
            if limit:
                q = q.limit(limit)
            return self._load(s, list(s.exec(q).all()))


def where_used(q: Any, used: tuple[str, str, int | None]) -> Any:
    """``q`` narrowed to the runs with input ``(kind, name, version)`` (any version if None)."""
    kind, aname, version = used
    sub = select(RunInputRow.run_id).where(RunInputRow.kind == kind, RunInputRow.name == aname)
    if version is not None:
        sub = sub.where(RunInputRow.version == version)
    return q.where(col(RunRow.id).in_(sub))
