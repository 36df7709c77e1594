"""``genreg serve``, ``genreg token create|list|revoke`` and ``genreg lock``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from genreg.cli._common import JsonOpt, echo, emit_json, open_registry, table

token_app = typer.Typer(no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8080, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    require_token: bool = typer.Option(
        False, "--require-token", help="Reads of prompts/routing also need a 'read' token."
    ),
    max_body: int = typer.Option(None, "--max-body", help="Request body limit in bytes (1 MiB)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the HTTP API (FastAPI on uvicorn; no access log, tokens never logged)."""
    import uvicorn

    from genreg.settings import resolve_settings

    settings = resolve_settings()  # fail fast, in this process, when there is no registry
    os.environ["GENREG_HOME"] = str(settings.home)  # workers open the same registry
    if require_token:
        os.environ["GENREG_API_REQUIRE_TOKEN"] = "1"
    if max_body is not None:
        os.environ["GENREG_API_MAX_BODY"] = str(max_body)
    uvicorn.run(
        "genreg.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level=log_level,
        server_header=False,
    )


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., "--name", help="Who uses it (recorded as the actor)."),
    scope: list[str] = typer.Option(
        ["read"], "--scope", help="read | write | admin | evalsets:read (repeatable)."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Create an API token. It is printed ONCE; only a salted hash is stored."""
    token, info = open_registry().create_token(name, scope)
    if json_out:
        emit_json({**info.to_dict(), "token": token})
        return
    echo(token)
    typer.echo(
        f"token {info.name!r} ({' '.join(info.scopes)}): store it now, it cannot be shown again",
        err=True,
    )


@token_app.command("list")
def token_list(json_out: bool = JsonOpt) -> None:
    """API tokens (names, scopes, state; never the secrets)."""
    infos = open_registry().list_tokens()
    if json_out:
        emit_json([i.to_dict() for i in infos])
        return
    table(
        [
            {
                "id": i.token_id,
                "name": i.name,
                "scopes": ",".join(i.scopes),
                "created": i.created_at[:19],
                "revoked": (i.revoked_at or "")[:19] or "-",
            }
            for i in infos
        ],
        ["id", "name", "scopes", "created", "revoked"],
    )


@token_app.command("revoke")
def token_revoke(
    name: str = typer.Argument(..., help="Token name or id."), json_out: bool = JsonOpt
) -> None:
    """Revoke a token (the API stops accepting it within 5 s)."""
    info = open_registry().revoke_token(name)
    if json_out:
        emit_json(info.to_dict())
    else:
        echo(f"revoked token {info.name!r} ({info.token_id})")


def lock(
    refs: list[str] = typer.Argument(..., help="Refs the app uses, e.g. prompt:qa@production"),
    output: Path = typer.Option(Path("genreg.lock"), "-o", "--output", help="Lock file to write."),
    url: str = typer.Option(None, "--url", help="Resolve through a genreg server instead."),
    token: str = typer.Option(None, "--token", envvar="GENREG_TOKEN", help="Token for --url."),
    sign: bool = typer.Option(
        False, "--sign", help="Add an HMAC-SHA256 signature with the key in $GENREG_LOCK_KEY."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Pin the exact digests and content of REFS in a lock file (offline fallback)."""
    from genreg.lockfile import build_lock, lock_key, sign_lock, write_lock

    key = lock_key(required=True) if sign else None

    if url:
        from genreg.client import Client

        data = build_lock(Client(url, token), list(refs), origin=url)
    else:
        reg = open_registry()
        data = build_lock(reg, list(refs), origin=str(reg.home))
    if key is not None:
        data = sign_lock(data, key)
    write_lock(output, data)
    if json_out:
        emit_json(
            {
                k: {x: e[x] for x in ("kind", "name", "version", "digest")}
                for k, e in data["entries"].items()
            }
        )
        return
    for k, e in data["entries"].items():
        echo(f"{k:40}  v{e['version']}  {e['digest'][:19]}")
    signed = ", signed" if key is not None else ""
    echo(f"wrote {output} ({len(data['entries'])} ref(s){signed})")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("lock")(lock)
    app.add_typer(token_app, name="token", help="API tokens: create (shown once), list, revoke.")
