"""Runs get a name of their own, tags and parameters (``--run-name``, ``--tag k=v``, the
``--set`` overrides), listed and filtered by ``genreg runs list``.

``run.run_name`` (nullable: runs recorded before it have none); ``run_tag`` and ``run_param``
hold one ``(run_id, key, value)`` row per label, unique per run and key, indexed by
``(key, value)`` for the filters.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LABEL_TABLES = ("run_tag", "run_param")


def upgrade() -> None:
    with op.batch_alter_table("run") as b:
        b.add_column(sa.Column("run_name", sa.String(200), nullable=True))
    for table in LABEL_TABLES:
        op.create_table(
            table,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("run_id", sa.String(64), sa.ForeignKey("run.id"), nullable=False),
            sa.Column("key", sa.String(200), nullable=False),
            sa.Column("value", sa.String(1000), nullable=False),
            sa.UniqueConstraint("run_id", "key", name=f"uq_{table}_run_key"),
        )
        op.create_index(f"ix_{table}_key_value", table, ["key", "value"])


def downgrade() -> None:
    for table in reversed(LABEL_TABLES):
        op.drop_index(f"ix_{table}_key_value", table_name=table)
        op.drop_table(table)
    with op.batch_alter_table("run") as b:
        b.drop_column("run_name")
