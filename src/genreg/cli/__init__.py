"""The ``genreg`` command line: a thin shell over :class:`genreg.service.Registry`.

Each command parses arguments, makes one service call and formats the result. Errors are
translated once, here: one line on stderr, exit 1 (2 for usage/config errors), no traceback
unless ``--debug``. Command groups live in their own modules and are mounted below.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from genreg.errors import GenregError


def error_json(exc: GenregError) -> str:
    """The API's error envelope (same codes), for errors under ``--json``."""
    import json

    body = {
        "error": {
            "status": exc.http_status,
            "code": exc.code,
            "message": exc.message,
            "details": exc.details or {},
        }
    }
    return json.dumps(body, ensure_ascii=False, default=str)


class _Group(TyperGroup):
    _json_args = False

    def main(self, args: Any = None, *a: Any, **kw: Any) -> Any:
        argv = sys.argv[1:] if args is None else list(args)
        self._json_args = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
        return super().main(args, *a, **kw)

    # ctx: click's Context, which typer>=0.20 vendors as typer._click (a different class).
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except GenregError as exc:
            if os.environ.get("GENREG_DEBUG"):
                raise
            if self._json_args:
                typer.echo(error_json(exc), err=True)
            else:
                typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    help="genreg: versioned prompts, eval sets, corpus snapshots and routing configs, "
    "with lineage-tracked retrieval evals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: no `<bool>` placeholders on flags, no markup eating `[a-z0-9]`, and
    # no import of rich just to print help.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    if debug:
        os.environ["GENREG_DEBUG"] = "1"


def _mount() -> None:
    from genreg.cli import admin, aliases, artifacts, corpus, corpus_index, evals, llm, serve

    artifacts.register_commands(app)
    app.add_typer(aliases.app, name="alias", help="Move, remove and list aliases (journaled).")
    app.add_typer(aliases.route_app, name="route", help="Inspect routing configs.")
    corpus_index.register(corpus.app)
    app.add_typer(corpus.app, name="corpus", help="RAG corpus snapshots, indexes and search.")
    admin.register_commands(app)
    serve.register(app)
    evals.register(app)
    llm.register(app)
    _plain_help(app)


def _plain_help(t: typer.Typer) -> None:
    for group in t.registered_groups:
        sub = group.typer_instance
        if sub is not None:
            sub.rich_markup_mode = None
            _plain_help(sub)


_mount()


def main() -> None:
    try:
        app()
    except GenregError as exc:  # raised outside a command (e.g. while parsing)
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
