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


class _Group(TyperGroup):
    # ctx: click's Context, which typer>=0.20 vendors as typer._click (a different class).
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except GenregError as exc:
            if os.environ.get("GENREG_DEBUG"):
                raise
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
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    if debug:
        os.environ["GENREG_DEBUG"] = "1"


def _mount() -> None:
    from genreg.cli import admin, aliases, artifacts, corpus, corpus_index, evals, serve

    artifacts.register_commands(app)
    app.add_typer(aliases.app, name="alias", help="Move, remove and list aliases (journaled).")
    app.add_typer(aliases.route_app, name="route", help="Inspect routing configs.")
    corpus_index.register(corpus.app)
    app.add_typer(corpus.app, name="corpus", help="RAG corpus snapshots, indexes and search.")
    admin.register_commands(app)
    serve.register(app)
    evals.register(app)


_mount()


def main() -> None:
    try:
        app()
    except GenregError as exc:  # raised outside a command (e.g. while parsing)
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
