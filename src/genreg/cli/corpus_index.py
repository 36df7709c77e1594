"""``genreg corpus index|search`` (derived side: chunks, embeddings, FAISS indexes)."""

from __future__ import annotations

import typer


def register(corpus_app: typer.Typer) -> None:
    """Add the index/search commands to the ``corpus`` group."""
