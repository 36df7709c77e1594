"""``genreg alias set|rm|history`` and ``genreg route explain``."""

from __future__ import annotations

import typer

from genreg.cli._common import JsonOpt, echo, emit_json, open_registry, table

app = typer.Typer(no_args_is_help=True)
route_app = typer.Typer(no_args_is_help=True)


@app.command("set")
def alias_set(
    ref: str = typer.Argument(..., help="The version to point at, e.g. prompt:qa@v3"),
    alias: str = typer.Argument(..., help="Alias name, e.g. production"),
    reason: str = typer.Option("", "--reason", help="Why (kept in the journal)."),
    author: str = typer.Option(None, "--author"),
    json_out: bool = JsonOpt,
) -> None:
    """Point ALIAS at the version REF names (journaled)."""
    ev = open_registry().set_alias(ref, alias, reason=reason, actor=author)
    if json_out:
        emit_json(ev.to_dict())
    elif ev.action == "unchanged":
        echo(f"unchanged: {ev.kind}:{ev.name}@{ev.alias} already -> v{ev.to_version}")
    elif ev.action == "move":
        echo(f"moved {ev.kind}:{ev.name}@{ev.alias}: v{ev.from_version} -> v{ev.to_version}")
    else:
        echo(f"set {ev.kind}:{ev.name}@{ev.alias} -> v{ev.to_version}")


@app.command("rm")
def alias_rm(
    artifact: str = typer.Argument(..., help="KIND:NAME"),
    alias: str = typer.Argument(...),
    reason: str = typer.Option("", "--reason"),
    author: str = typer.Option(None, "--author"),
    json_out: bool = JsonOpt,
) -> None:
    """Remove ALIAS from KIND:NAME (journaled)."""
    ev = open_registry().remove_alias(artifact, alias, reason=reason, actor=author)
    if json_out:
        emit_json(ev.to_dict())
    else:
        echo(f"removed {ev.kind}:{ev.name}@{ev.alias} (was v{ev.from_version})")


@app.command("history")
def alias_history(
    artifact: str = typer.Argument(..., help="KIND:NAME"),
    alias: str = typer.Option(None, "--alias", help="Only this alias."),
    json_out: bool = JsonOpt,
) -> None:
    """The alias journal: who moved what, when, from where to where, and why."""
    events = open_registry().alias_history(artifact, alias)
    if json_out:
        emit_json([e.to_dict() for e in events])
        return
    table(
        [
            {
                "when": e.created_at[:19],
                "alias": e.alias,
                "action": e.action,
                "from": f"v{e.from_version}" if e.from_version else "-",
                "to": f"v{e.to_version}" if e.to_version else "-",
                "who": e.actor,
                "reason": e.reason + (f" (run {e.run_id})" if e.run_id else ""),
            }
            for e in events
        ],
        ["when", "alias", "action", "from", "to", "who", "reason"],
    )


@route_app.command("explain")
def route_explain(
    ref: str = typer.Argument(..., help="routing:NAME[@...]"),
    query: str = typer.Argument(..., help="Query text."),
    tag: list[str] = typer.Option(None, "--tag", help="Query tag (repeatable)."),
    json_out: bool = JsonOpt,
) -> None:
    """Which route a query takes, and why."""
    reg = open_registry()
    info = reg.resolve(ref, "routing")
    d = reg.explain_route(info.ref, query, list(tag or []))
    if json_out:
        emit_json({"routing": info.ref, "digest": info.digest, **d.to_dict()})
        return
    echo(f"{info.ref}: route '{d.route}' -> {d.target['model']}")
    for why in d.reasons:
        echo(f"  because {why}")
    for r, w in d.rejected:
        echo(f"  skipped '{r}': {w}")
    echo(f"  query length: {d.query_tokens} tokens ({d.token_counter})")
