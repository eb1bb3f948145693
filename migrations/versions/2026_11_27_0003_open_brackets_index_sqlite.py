"""open brackets index usable on SQLite

SQLite uses a partial index only when the query repeats its predicate: the queries say
`is_open = 1` (SQLAlchemy's rendering of a boolean on SQLite), the index said `is_open`, so
asks read every bracket of the study. PostgreSQL reads `is_open = true` as `is_open` and is
unchanged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate(sqlite_where: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_brackets_open", table_name="brackets")
    op.create_index(
        "ix_brackets_open",
        "brackets",
        ["study_id", "id"],
        unique=False,
        sqlite_where=sa.text(sqlite_where),
    )


def upgrade() -> None:
    _recreate("is_open = 1")


def downgrade() -> None:
    _recreate("is_open")
