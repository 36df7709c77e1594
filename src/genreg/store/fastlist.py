"""``list`` and ``history`` on the default SQLite file with the stdlib ``sqlite3`` only, for
the fast entry point (:mod:`genreg.fastcli`). The queries mirror
:meth:`genreg.store.repo.Repo.list_artifacts` / :meth:`~genreg.store.repo.Repo.history`
(same rows, same order); ``tests/test_fast_cli.py`` checks both give identical output."""

from __future__ import annotations

import json
import sqlite3

from genreg.core.types import ArtifactInfo, VersionInfo
from genreg.errors import NotFound


def list_artifacts(conn: sqlite3.Connection, kind: str | None = None) -> list[ArtifactInfo]:
    q = "SELECT id, kind, name, created_at FROM artifact"
    args: tuple[str, ...] = ()
    if kind:
        q += " WHERE kind=?"
        args = (kind,)
    arts = conn.execute(q + " ORDER BY kind, name", args).fetchall()
    stats = {
        aid: (mx, n)
        for aid, mx, n in conn.execute(
            "SELECT artifact_id, max(number), count(*) FROM version GROUP BY artifact_id"
        )
    }
    aliases: dict[int, dict[str, int]] = {}
    for aid, name, version in conn.execute("SELECT artifact_id, name, version FROM alias"):
        aliases.setdefault(aid, {})[name] = version
    out = []
    for aid, k, name, created in arts:
        mx, n = stats.get(aid, (None, 0))
        out.append(ArtifactInfo(k, name, created, mx, n, aliases.get(aid, {})))
    return out


def history(conn: sqlite3.Connection, kind: str, name: str) -> list[VersionInfo]:
    row = conn.execute("SELECT id FROM artifact WHERE kind=? AND name=?", (kind, name)).fetchone()
    if row is None:
        raise NotFound(f"{kind}:{name} not found")
    aid = row[0]
    by_v: dict[int, list[str]] = {}
    for alias, version in conn.execute(
        "SELECT name, version FROM alias WHERE artifact_id=? ORDER BY name", (aid,)
    ):
        by_v.setdefault(version, []).append(alias)
    rows = conn.execute(
        "SELECT number, digest, object_digest, created_at, author, message, tags, parent, summary"
        " FROM version WHERE artifact_id=? ORDER BY number",
        (aid,),
    ).fetchall()
    return [
        VersionInfo(
            kind,
            name,
            n,
            digest,
            obj,
            created,
            author,
            message,
            json.loads(tags) if tags else {},
            parent,
            json.loads(summary) if summary else {},
            tuple(by_v.get(n, [])),
        )  # fmt: skip
        for n, digest, obj, created, author, message, tags, parent, summary in rows
    ]
