"""SQL for browsing runs: one filtered, sorted page plus its total count, and the eval names.

Used by :class:`genreg.service.run_queries.RunQueries`; returns domain objects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from genreg.core.runinfo import RunInfo
from genreg.store.db import read_session
from genreg.store.models import RunMetricRow, RunParamRow, RunRow, RunTagRow
from genreg.store.runs import RunRepo, where_used

_COLUMNS = {
    "started_at": RunRow.started_at,
    "name": RunRow.name,
    "status": RunRow.status,
    "passed": RunRow.passed,
    "author": RunRow.author,
}


class RunPages(RunRepo):
    def _filtered(
        self,
        q: Any,
        name: str | None,
        used: Any,
        status: str | None,
        label: tuple[str, str] | None = None,
    ) -> Any:
        if label is not None:  # a tag or a parameter key=value
            key, value = label
            has = [
                select(t.run_id).where(t.key == key, t.value == value)
                for t in (RunTagRow, RunParamRow)
            ]
            q = q.where(col(RunRow.id).in_(has[0]) | col(RunRow.id).in_(has[1]))
        if name:
            q = q.where(RunRow.name == name)
        if used is not None:
            q = where_used(q, used)
        if status == "passed":
            q = q.where(col(RunRow.passed).is_(True))
        elif status == "failed":
            q = q.where(col(RunRow.passed).is_(False))
        elif status == "no-gates":
            q = q.where(col(RunRow.passed).is_(None))
        elif status:
            q = q.where(RunRow.status == status)
        return q

    def page(
        self,
        *,
        name: str | None = None,
        used: tuple[str, str, int | None] | None = None,
        status: str | None = None,
        label: tuple[str, str] | None = None,
        sort: str = "started_at",
        desc: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[RunInfo], int]:
        """Runs matching the filters (``label``: a tag or parameter ``(key, value)``), ordered by ``sort`` (a column or ``metric:NAME``; ties
        newest first), and how many match in all."""
        with read_session(self.engine) as s:
            count = self._filtered(
                select(func.count()).select_from(RunRow), name, used, status, label
            )
            total = int(s.exec(count).one())
            # Order and page over ids only (the sort then never carries the JSON columns),
            # then load the page's rows.
            q = self._filtered(select(RunRow.id), name, used, status, label)
            if sort.startswith("metric:"):
                m = sort.split(":", 1)[1]
                q = q.outerjoin(
                    RunMetricRow,
                    (col(RunMetricRow.run_id) == col(RunRow.id)) & (RunMetricRow.name == m),
                )
                key: Any = col(RunMetricRow.value)
            else:
                key = col(_COLUMNS.get(sort, RunRow.started_at))
            q = q.order_by(
                key.is_(None),
                key.desc() if desc else key.asc(),
                col(RunRow.started_at).desc(),
                col(RunRow.id).desc(),
            )
            ids = list(s.exec(q.offset(offset).limit(limit)).all())
            by_id = {r.id: r for r in s.exec(select(RunRow).where(col(RunRow.id).in_(ids)))}
            return self._load(s, [by_id[i] for i in ids if i in by_id]), total

    def names(self) -> list[str]:
        """Every eval name that has runs, alphabetically."""
        with read_session(self.engine) as s:
            return sorted(s.exec(select(RunRow.name).distinct()).all())
