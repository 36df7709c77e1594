"""Plain-text and JSON output shared by the typer CLI and the fast entry point
(:mod:`genreg.fastcli`): stdlib only, so both print byte-identical output."""

from __future__ import annotations

import json
import sys
from typing import Any


def echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table (no colour codes, so output is stable in logs and tests)."""
    if not rows:
        echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        echo("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


LIST_COLUMNS = ["ref", "latest", "versions", "aliases"]
HISTORY_COLUMNS = ["version", "digest", "created", "author", "aliases", "message"]


def list_rows(arts: list[Any]) -> list[dict[str, Any]]:
    """``genreg list`` rows from ArtifactInfo objects."""
    return [
        {
            "ref": f"{a.kind}:{a.name}",
            "latest": f"v{a.latest}" if a.latest else "-",
            "versions": a.versions,
            "aliases": ", ".join(f"{k}=v{v}" for k, v in sorted(a.aliases.items())),
        }
        for a in arts
    ]


def history_rows(versions: list[Any]) -> list[dict[str, Any]]:
    """``genreg history`` rows from VersionInfo objects."""
    return [
        {
            "version": f"v{v.version}",
            "digest": v.digest[:19],
            "created": v.created_at[:19],
            "author": v.author,
            "aliases": ", ".join(v.aliases),
            "message": v.message,
        }
        for v in versions
    ]


def resolve_json(v: Any) -> dict[str, Any]:
    return {
        "kind": v.kind,
        "name": v.name,
        "version": v.version,
        "digest": v.digest,
        "ref": v.ref,
        "aliases": list(v.aliases),
    }


def snapshot_lines(res: Any) -> None:
    """``genreg corpus snapshot`` text output from a SnapshotResult."""
    for s in res.stats.skipped:
        echo(f"skipped    {s}")
    v, st = res.version, res.stats
    status = "created" if res.created else "unchanged"
    echo(
        f"{status:9}  {v.ref}  {v.digest[:19]}  {st.docs} docs, {st.bytes} bytes "
        f"(hashed {st.hashed_files} files, stored {st.new_bytes} new bytes"
        f"{f', skipped {len(st.skipped)}' if st.skipped else ''})"
    )
