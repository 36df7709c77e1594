"""Indexes for the runs and lineage queries: metric leaderboards, run listing by time,
alias moves made by a gated run, and reverse lineage by content digest.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_run_metric_name_value", "run_metric", ["name", "value"]),
    ("ix_run_started_at", "run", ["started_at"]),
    ("ix_alias_event_run", "alias_event", ["run_id"]),
    ("ix_run_input_digest", "run_input", ["digest"]),
)


def upgrade() -> None:
    for name, table, cols in _INDEXES:
        op.create_index(name, table, cols)


def downgrade() -> None:
    for name, table, _cols in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
