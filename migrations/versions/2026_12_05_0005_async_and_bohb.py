"""look-ups for the async scheduler and BOHB's results

- `ix_trials_promoted`: the promoted completed trials of a round by score, for the async
  scheduler's rank of a round's best unpromoted trial (`promotable_in_top`).
- `studies.result_count` and `trials.result_seq`: with `"sampler": "bohb"`, a trial's
  final result is numbered in the order results were told, so that BOHB's model reads only
  the results told since its last read (`ix_trials_results`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(
            sa.Column("result_count", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("result_seq", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_trials_promoted",
        "trials",
        ["bracket_id", "round", "score_key", "number"],
        unique=False,
        postgresql_where=sa.text("status = 'completed' AND promoted"),
        sqlite_where=sa.text("status = 'completed' AND promoted = 1"),
    )
    op.create_index(
        "ix_trials_results",
        "trials",
        ["study_id", "result_seq"],
        unique=True,
        postgresql_where=sa.text("result_seq IS NOT NULL"),
        sqlite_where=sa.text("result_seq IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_trials_results", table_name="trials")
    op.drop_index("ix_trials_promoted", table_name="trials")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("result_seq")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("result_count")
