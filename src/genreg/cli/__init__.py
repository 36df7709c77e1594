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


def usage_error_json(exc: Any) -> str:
    """A click usage error (unknown option/command, missing argument, bad value) as the API's
    envelope for invalid requests: status 422, code ``invalid``, the offending parameter."""
    import json

    param = getattr(exc, "param", None)
    field = getattr(exc, "option_name", None) or (
        (param.opts[0] if getattr(param, "opts", None) else param.name) if param else None
    )
    ctx = getattr(exc, "ctx", None)
    details: dict[str, Any] = {
        "errors": [{"field": field or "(command line)", "message": exc.format_message()}]
    }
    if ctx is not None:
        details["usage"] = ctx.get_usage().removeprefix("Usage: ")
    body = {
        "error": {
            "status": 422,
            "code": "invalid",
            "message": exc.format_message(),
            "details": details,
        }
    }
    return json.dumps(body, ensure_ascii=False, default=str)


def _metavar(param: Any) -> str | None:
    """A readable placeholder (``REF``, ``N``, ``PATH``, ``KEY=VALUE``) instead of typer's
    ``<str>``/``<int>``/``<list[str]>``/``<path>``."""
    d = getattr(param, "type_descriptor", None)
    if d is None or d.is_choice:
        return None  # typer lists the choices
    ann = d.annotation
    if d.is_list:
        args = getattr(ann, "__args__", ()) or (str,)
        ann = args[0]
    if d.is_path:
        return "PATH"
    if ann is int:
        return "N"
    if ann is float:
        return "X"
    if "key=value" in (getattr(param, "help", None) or "").lower():
        return "KEY=VALUE"
    return (param.name or "value").strip("_").upper().replace("_", "-")


def _plain_metavars(cmd: Any) -> None:
    """Set a metavar on every option and argument that has none (walks every subcommand)."""
    for p in cmd.params:
        if getattr(p, "is_flag", False) or getattr(p, "count", False):
            continue
        if p.metavar is None:
            mv = p.name.upper() if p.param_type_name == "argument" and p.name else _metavar(p)
            if mv is not None:
                p.metavar = mv
        if p.param_type_name == "argument":
            p.display_type_rich = lambda ctx: None  # the name says it: no `<path>` after it
    for sub in getattr(cmd, "commands", {}).values():
        _plain_metavars(sub)


class _Group(TyperGroup):
    _json_args = False
    _metavars_done = False

    def main(self, args: Any = None, *a: Any, **kw: Any) -> Any:
        argv = sys.argv[1:] if args is None else list(args)
        self._json_args = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
        if not self._metavars_done:
            _plain_metavars(self)
            self._metavars_done = True
        return super().main(args, *a, **kw)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _click_usage_error() as exc:
            self._usage_json(exc)
            raise

    def _usage_json(self, exc: Any) -> None:
        """Under ``--json``, a usage error is printed as JSON and exits 2 (click's code)."""
        if not self._json_args or type(exc).__name__ == "NoArgsIsHelpError":
            return
        typer.echo(usage_error_json(exc), err=True)
        raise typer.Exit(exc.exit_code) from None

    # ctx: click's Context, which typer>=0.20 vendors as typer._click (a different class).
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _click_usage_error() as exc:
            self._usage_json(exc)
            raise
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


def _click_usage_error() -> type[Exception]:
    from typer._click.exceptions import UsageError

    return UsageError


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
