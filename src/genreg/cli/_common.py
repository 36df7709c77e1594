"""Shared CLI plumbing: opening the registry, JSON output, option parsing, progress."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from genreg.errors import ConfigError
from genreg.textout import emit_json, table  # noqa: F401 - re-exported (shared with genreg.fastcli)

if TYPE_CHECKING:
    from genreg.service import Registry

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON only.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")
ProgressCallback = Callable[[str, int, int | None], None]


def open_registry() -> Registry:
    from genreg.service import Registry

    return Registry()


def echo(text: str = "") -> None:
    typer.echo(text)


def parse_kv(items: list[str] | None, what: str = "--tag") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {item!r}: expected key=value")
        out[key] = value
    return out


def load_vars(pairs: list[str] | None, files: list[Path] | None) -> dict[str, Any]:
    """Variables from ``--vars file.json`` (merged in order) then ``--var k=v``."""
    values: dict[str, Any] = {}
    for f in files or []:
        try:
            data = json.loads(Path(f).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"--vars {f}: file not found") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--vars {f}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"--vars {f}: expected a JSON object")
        values.update(data)
    values.update(parse_kv(pairs, "--var"))
    return values


def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def progress(quiet: bool = False, *, console: Any = None) -> Iterator[ProgressCallback | None]:
    """A ``(stage, done, total)`` callback drawing one bar per stage on a TTY (stderr), else
    None so nothing at all is printed (no ANSI codes in logs).

    A stage with a total shows done/total, elapsed time and an ETA; a stage whose total is
    not known (``None``) shows a pulsing bar and a spinner -- e.g. while a model loads. A
    stage reported done (``done == total``) stops its clock. ``console`` is for tests."""
    if console is None and not show_progress(quiet):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    tasks: dict[str, Any] = {}
    with Progress(
        SpinnerColumn(finished_text="✓"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=console is None,
    ) as bar:

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
            if total is not None and done >= total:
                bar.stop_task(tasks[stage])

        yield update
