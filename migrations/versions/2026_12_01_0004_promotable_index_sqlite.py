"""promotable trials index usable on SQLite

As revision 0003 found for the open brackets: SQLite uses a partial index only when the
query repeats its predicate, and SQLAlchemy writes `NOT promoted` as `promoted = 0` there.
The index said `NOT promoted`, so the look-up of a round's best unpromoted trial read the
bracket's trials through `ix_trials_bracket_id` and sorted them. PostgreSQL is unchanged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate(sqlite_where: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_trials_promotable", table_name="trials")
    op.create_index(
        "ix_trials_promotable",
        "trials",
        ["bracket_id", "round", "score_key", "number"],
        unique=False,
        sqlite_where=sa.text(sqlite_where),
    )


def upgrade() -> None:
    _recreate("status = 'completed' AND promoted = 0")


def downgrade() -> None:
    _recreate("status = 'completed' AND NOT promoted")
