"""``genreg corpus snapshot|diff|status|export|...`` (snapshot side of the corpus)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
