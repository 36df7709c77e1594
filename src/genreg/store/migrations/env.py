"""Alembic environment: always run with a connection handed in by genreg.store.db."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - genreg always passes one
    raise RuntimeError("genreg migrations must be run through genreg.store.db.upgrade")

context.configure(connection=connection, render_as_batch=True, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
