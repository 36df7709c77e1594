"""``genreg verify``, ``genreg gc`` and ``genreg db upgrade|current``."""

from __future__ import annotations

import typer

from genreg.cli._common import JsonOpt, QuietOpt, echo, emit_json, open_registry, progress

db_app = typer.Typer(no_args_is_help=True)


def _size(n: int) -> str:
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if x < 1024 or unit == "GiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return str(x)


def verify(json_out: bool = JsonOpt, quiet: bool = QuietOpt) -> None:
    """Re-hash every object and check every referenced object exists (exit 1 if not)."""
    with progress(quiet) as cb:
        report = open_registry().verify(progress=cb)
    if json_out:
        emit_json(report.to_dict())
    else:
        for p in report.problems:
            typer.echo(f"BAD {p}", err=False)
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        echo(
            f"verified {report.objects_checked} objects, "
            f"{report.references_checked} references: {status}"
        )
    if not report.ok:
        raise typer.Exit(1)


def gc(
    dry_run: bool = typer.Option(
        True, "--dry-run/--delete", help="List only (default); --delete removes the objects."
    ),
    grace: float = typer.Option(
        3600.0, "--grace", help="Keep unreferenced objects younger than this many seconds."
    ),
    json_out: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """List objects nothing references, stale staging files (temp files of killed writes, work
    directories of killed index builds) and index cache copies (cache/ann in the registry home)
    of objects no longer referenced; --delete removes those older than --grace (a killed
    build's directory at any age), never an object a committed version names."""
    with progress(quiet) as cb:
        report = open_registry().gc(dry_run=dry_run, grace_seconds=grace, progress=cb)
    if json_out:
        emit_json(report.to_dict())
        return
    for o in report.unreferenced:
        state = (
            "deleted"
            if o["digest"] in report.deleted
            else ("recent, kept" if o["recent"] else "unreferenced")
        )
        echo(f"{o['digest']}  {_size(o['size']):>10}  {state}")
    for f in report.staging:
        state = "deleted" if f["deleted"] else ("recent, kept" if f["recent"] else "stale")
        echo(f"staging {f['path']}  {_size(f['size']):>10}  {state}")
    for c in report.caches:
        state = "deleted" if c["deleted"] else ("recent, kept" if c["recent"] else "stale")
        if c.get("linked"):  # freed with the stored object it links, counted there
            state += f" (+{_size(c['linked'])} linked to a stored object)"
        echo(f"cache {c['path']}  {_size(c['size']):>10}  {state}")
    for lease in report.leases:
        state = "deleted" if lease["deleted"] else ("expired" if lease["expired"] else "live")
        n = len(lease["objects"])
        echo(
            f"lease {lease['key']} ({lease['what']}, {lease['host']} pid {lease['pid']})"
            f"  {n} object(s)  {state}"
        )
    for d in report.restored:
        echo(f"{d}  restored (hidden by an interrupted gc, still referenced)")
    verb = "would reclaim" if dry_run else "reclaimed"
    echo(
        f"{len(report.unreferenced)} of {report.objects_total} objects unreferenced; "
        f"{verb} {_size(report.bytes_reclaimable)}"
    )
    if report.staging:
        stale = sum(1 for f in report.staging if not f["recent"])
        echo(
            f"{len(report.staging)} staging file(s), {stale} stale; "
            f"{verb} {_size(report.staging_bytes_reclaimable)}"
        )
    if report.caches:
        stale = sum(1 for c in report.caches if not c["recent"])
        n = len(report.caches)
        echo(
            f"{n} unneeded index cache entr{'y' if n == 1 else 'ies'}, {stale} stale (past the"
            f" grace period); {verb} {_size(report.cache_bytes_reclaimable)}"
        )


@db_app.command("upgrade")
def db_upgrade(json_out: bool = JsonOpt) -> None:
    """Migrate the metadata database to the newest schema (safe to run twice)."""
    out = open_registry().db_upgrade()
    if json_out:
        emit_json(out)
    elif out["changed"]:
        echo(f"upgraded {out['database']}: {out['before'] or '(empty)'} -> {out['after']}")
    else:
        echo(f"{out['database']} already at {out['after']}")


@db_app.command("current")
def db_current(json_out: bool = JsonOpt) -> None:
    """Show the database's schema revision and the newest one this genreg knows."""
    out = open_registry().db_current()
    if json_out:
        emit_json(out)
    else:
        state = "up to date" if out["current"] == out["head"] else "needs 'genreg db upgrade'"
        echo(
            f"{out['database']}: revision {out['current'] or '(empty)'} (head {out['head']}, {state})"
        )


def register_commands(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("gc")(gc)
    app.add_typer(db_app, name="db", help="Schema migrations of the metadata database.")
