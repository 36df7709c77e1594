"""init, push, register, list, show, history, diff, resolve, render, export, import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from genreg.cli._common import JsonOpt, echo, emit_json, load_vars, open_registry, parse_kv, table


def register_commands(app: typer.Typer) -> None:
    for fn in (init, push, register, list_, show, history, diff, resolve, render, export, import_):
        name = fn.__name__.rstrip("_").replace("_", "-")
        app.command(name=name)(fn)


def init(
    path: Path = typer.Argument(
        None, help="Where to create the registry home (default: $GENREG_HOME, else ./.genreg)."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Create a registry home (SQLite metadata + object store); safe to run twice.

    PATH wins over $GENREG_HOME, which wins over ./.genreg; the home used is printed."""
    import os

    from genreg.service import Registry

    home = path or Path(os.environ.get("GENREG_HOME") or Path.cwd() / ".genreg")
    existed = (home / "registry.db").exists()
    reg = Registry.init(home)
    if json_out:
        emit_json(
            {
                "home": str(reg.home),
                "database": reg.settings.database_url,
                "objects": reg.settings.objects_url,
            }
        )
    else:
        verb = "Reinitialized existing" if existed else "Initialized"
        echo(f"{verb} genreg registry in {reg.home}")


def push(
    paths: list[Path] = typer.Argument(
        None, help="Files or folders (default: registry/ and evals/)."
    ),
    message: str = typer.Option("", "-m", "--message", help="Message for new versions."),
    author: str = typer.Option(
        None, "--author", help="Author (default: $GENREG_AUTHOR or git user.name)."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Register every prompt, routing config and eval set whose content changed."""
    results = open_registry().push(list(paths) if paths else None, message=message, author=author)
    if json_out:
        emit_json([r.to_dict() for r in results])
        return
    for r in results:
        status = "created" if r.created else "unchanged"
        echo(f"{status:9}  {r.kind}:{r.name}@v{r.version}  {r.digest[:19]}  {r.path}")
    new = sum(r.created for r in results)
    echo(f"{new} new version(s), {len(results) - new} unchanged")


def register(
    kind: str = typer.Argument(..., help="prompt | evalset | routing"),
    name: str = typer.Argument(
        ..., help="Artifact name: lowercase letters, digits, '.', '_', '-' (up to 100)."
    ),
    file: Path = typer.Argument(..., help="Content file (an eval set may be a BEIR directory)."),
    message: str = typer.Option("", "-m", "--message"),
    tag: list[str] = typer.Option(
        None, "--tag", metavar="KEY=VALUE", help="key=value (repeatable)."
    ),
    author: str = typer.Option(None, "--author"),
    json_out: bool = JsonOpt,
) -> None:
    """Register FILE as a new version of KIND:NAME (nothing new if the content is identical)."""
    res = open_registry().register(
        kind, name, file, message=message, tags=parse_kv(tag), author=author
    )
    if json_out:
        emit_json(res.to_dict())
        return
    v = res.version
    if res.created:
        echo(f"created {v.ref}  {v.digest}")
    else:
        echo(f"unchanged: identical to {v.ref}  {v.digest}")


def list_(
    kind: str = typer.Argument(None, help="Only this kind."),
    json_out: bool = JsonOpt,
) -> None:
    """List artifacts with their latest version and aliases."""
    from genreg.textout import LIST_COLUMNS, list_rows

    arts = open_registry().list(kind)
    if json_out:
        emit_json([a.to_dict() for a in arts])
        return
    table(list_rows(arts), LIST_COLUMNS)


def show(
    ref: str = typer.Argument(..., help="KIND:NAME[@ALIAS|@vN|@sha256:HEX]"),
    json_out: bool = JsonOpt,
) -> None:
    """Show a version's metadata and content."""
    from genreg.core.artifacts import pretty

    reg = open_registry()
    info, content = reg.show(ref)
    if json_out:
        emit_json({**info.to_dict(), "content": content})
        return
    echo(f"{info.ref}  {info.digest}")
    echo(f"created  {info.created_at} by {info.author}")
    if info.message:
        echo(f"message  {info.message}")
    if info.aliases:
        echo(f"aliases  {', '.join(info.aliases)}")
    if info.tags:
        echo(f"tags     {', '.join(f'{k}={v}' for k, v in sorted(info.tags.items()))}")
    echo("")
    echo(pretty(info.kind, reg.content(info)).rstrip("\n"))


def history(ref: str = typer.Argument(..., help="KIND:NAME"), json_out: bool = JsonOpt) -> None:
    """Versions of an artifact with digest, author, message and aliases."""
    from genreg.textout import HISTORY_COLUMNS, history_rows

    versions = open_registry().history(ref)
    if json_out:
        emit_json([v.to_dict() for v in versions])
        return
    table(history_rows(versions), HISTORY_COLUMNS)


def diff(
    a: str = typer.Argument(...), b: str = typer.Argument(...), json_out: bool = JsonOpt
) -> None:
    """Unified diff for prompts/routing; added/removed/changed rows for eval sets."""
    d = open_registry().diff(a, b)
    if json_out:
        emit_json(d)
        return
    if d["identical"]:
        echo(f"{d['a']} and {d['b']} are identical ({d['a_digest'][:19]})")
        return
    if "rows" in d:
        rows = d["rows"]
        echo(f"--- {d['a']}\n+++ {d['b']}")
        for label, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
            for rid in rows[label]:
                echo(f"{sign} {rid}")
        echo(
            f"{len(rows['added'])} added, {len(rows['removed'])} removed, {len(rows['changed'])} changed"
        )
    else:
        echo(d["unified"].rstrip("\n"))


def resolve(ref: str = typer.Argument(...), json_out: bool = JsonOpt) -> None:
    """Print the exact version and digest a reference names."""
    from genreg.textout import resolve_json

    v = open_registry().resolve(ref)
    if json_out:
        emit_json(resolve_json(v))
    else:
        echo(f"{v.ref}  {v.digest}")


def render(
    ref: str = typer.Argument(..., help="prompt:NAME[@...]"),
    var: list[str] = typer.Option(None, "--var", help="name=value (repeatable)."),
    vars_file: list[Path] = typer.Option(None, "--vars", help="JSON file of variables."),
    request: bool = typer.Option(
        False,
        "--request",
        help="Print the ready OpenAI request body {model, temperature, max_tokens, ..., messages} (JSON).",
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Render a prompt after validating its variables."""
    if request:
        emit_json(open_registry().render_request(ref, load_vars(var, vars_file)))
        return
    out: Any = open_registry().render(ref, load_vars(var, vars_file))
    if json_out:
        emit_json(out)
    elif isinstance(out, str):
        echo(out.rstrip("\n"))
    else:
        for m in out:
            echo(f"[{m['role']}]")
            echo(m["content"].rstrip("\n"))


def export(
    ref: str = typer.Argument(...),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle file to write."),
) -> None:
    """Write one version as a self-contained, digest-checked bundle."""
    bundle = open_registry().export(ref)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
    tmp.replace(output)
    echo(f"exported {bundle['kind']}:{bundle['name']}@v{bundle['version']} to {output}")


def import_(
    file: Path = typer.Argument(..., help="A bundle written by 'genreg export'."),
    name: str = typer.Option(None, "--name", help="Register under another name."),
    json_out: bool = JsonOpt,
) -> None:
    """Register the version held in an export bundle (digest verified)."""
    res = open_registry().import_bundle(file, name=name)
    if json_out:
        emit_json(res.to_dict())
    else:
        echo(f"{'created' if res.created else 'unchanged'} {res.version.ref}  {res.version.digest}")
