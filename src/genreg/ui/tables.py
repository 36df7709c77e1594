"""Tables as data: the same rows render as HTML and download as CSV or JSON.

A page builds :class:`Table` objects; ``?table=NAME&format=csv|json`` on the page's URL
returns that table whole (every row, not one page of it).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Col:
    key: str
    label: str
    num: bool = False
    sort: str | None = None  # the value of the page's sort parameter for this column
    fmt: str = ""  # "f4" (4 decimals), "ms", "usd", "pct", "" (as is)


@dataclass
class Table:
    name: str
    cols: list[Col]
    rows: list[dict[str, Any]]
    links: dict[str, str] = field(default_factory=dict)  # column -> row key holding its href
    total: int | None = None  # rows in all, when ``rows`` is one page of them

    def export_rows(self) -> list[dict[str, Any]]:
        keys = [c.key for c in self.cols]
        return [{k: r.get(k) for k in keys} for r in self.rows]


def fmt(v: Any, how: str = "") -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if how == "f4" and isinstance(v, (int, float)):
        return f"{v:.4f}"
    if how == "ms" and isinstance(v, (int, float)):
        return f"{v:.1f} ms"
    if how == "usd" and isinstance(v, (int, float)):
        return f"${v:.4f}" if v < 1 else f"${v:.2f}"
    if how == "pct" and isinstance(v, (int, float)):
        return f"{v * 100:.1f}%"
    if how == "delta" and isinstance(v, (int, float)):
        return f"{v:+.4f}"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([c.key for c in t.cols])
    for r in t.export_rows():
        w.writerow(
            [
                "" if v is None else json.dumps(v) if isinstance(v, (dict, list)) else v
                for v in r.values()
            ]
        )
    return buf.getvalue()


def to_json(t: Table) -> str:
    return json.dumps({"table": t.name, "rows": t.export_rows()}, indent=1, default=str)
