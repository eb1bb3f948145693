"""Every SQL statement of the service, one function each. No business rules.

The hot path (ask, tell, report, heartbeat) only touches a handful of rows through indexes:
the study row, its open brackets, and single trials found by the partial indexes declared
in models.py. Nothing here reads "all trials".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased, undefer_group

from .models import BracketRow, CheckpointRow, StudyRow, TrialMetricRow, TrialRow

# -- studies ------------------------------------------------------------------------------


def lock_study(session: Session, study_id: int) -> StudyRow | None:
    """The study row, locked until the transaction ends (PostgreSQL: SELECT … FOR UPDATE;
    SQLite: the transaction already holds the database's write lock)."""
    stmt = select(StudyRow).where(StudyRow.id == study_id).with_for_update()
    return session.scalars(stmt).one_or_none()


# Read what a decision needs in statements *after* the one that locks the study. In READ
# COMMITTED, `SELECT … FOR UPDATE` that waited for a lock re-reads the locked row at its
# newest version, but rows it joins from other tables come from the snapshot taken before
# the wait: with two replicas, counters read that way were stale and updates were lost.


def ask_rows(
    session: Session, study_id: int, worker_id: str
) -> tuple[TrialRow | None, list[BracketRow]]:
    """The trial `worker_id` is running in the study, and its open brackets (oldest first)."""
    held = (
        select(TrialRow.id)
        .where(
            TrialRow.study_id == study_id,
            TrialRow.worker_id == worker_id,
            TrialRow.status == "running",
        )
        .scalar_subquery()
    )
    stmt = (
        select(held.label("held"), BracketRow)
        .select_from(StudyRow)
        .outerjoin(BracketRow, (BracketRow.study_id == StudyRow.id) & BracketRow.is_open)
        .where(StudyRow.id == study_id)
        .order_by(BracketRow.id)
    )
    rows = session.execute(stmt).all()
    held_id = rows[0].held if rows else None
    trial = session.get(TrialRow, held_id) if held_id is not None else None
    return trial, [row[1] for row in rows if row[1] is not None]


def trial_with_bracket(
    session: Session, study_id: int, number: int
) -> tuple[TrialRow, BracketRow] | None:
    stmt = (
        select(TrialRow, BracketRow)
        .join(BracketRow, BracketRow.id == TrialRow.bracket_id)
        .where(TrialRow.study_id == study_id, TrialRow.number == number)
    )
    row = session.execute(stmt).one_or_none()
    return None if row is None else (row[0], row[1])


def get_study(session: Session, study_id: int, *, with_config: bool = False) -> StudyRow | None:
    """The study row; its settings and space are loaded now only `with_config` (they are
    read lazily otherwise, which detached rows cannot do)."""
    stmt = select(StudyRow).where(StudyRow.id == study_id)
    if with_config:
        stmt = stmt.options(undefer_group("config"))
    return session.scalars(stmt).one_or_none()


def study_by_name(session: Session, name: str) -> StudyRow | None:
    stmt = select(StudyRow).where(StudyRow.name == name).options(undefer_group("config"))
    return session.scalars(stmt).one_or_none()


def list_studies(
    session: Session, *, after: int | None, limit: int, name: str | None = None
) -> Sequence[StudyRow]:
    stmt = select(StudyRow).options(undefer_group("config")).order_by(StudyRow.id).limit(limit)
    if name is not None:
        stmt = stmt.where(StudyRow.name == name)
    if after is not None:
        stmt = stmt.where(StudyRow.id > after)
    return session.scalars(stmt).all()


def add(session: Session, row: Any) -> Any:
    session.add(row)
    session.flush()
    return row


def delete_study(session: Session, study_id: int) -> None:
    """Delete a study; its brackets, trials and metrics go with it (ON DELETE CASCADE)."""
    session.execute(delete(StudyRow).where(StudyRow.id == study_id))


# -- brackets -----------------------------------------------------------------------------


def brackets_of(session: Session, study_id: int) -> Sequence[BracketRow]:
    stmt = select(BracketRow).where(BracketRow.study_id == study_id).order_by(BracketRow.id)
    return session.scalars(stmt).all()


def get_bracket(session: Session, bracket_id: int) -> BracketRow:
    bracket = session.get(BracketRow, bracket_id)
    assert bracket is not None
    return bracket


# -- trials: the scheduler's look-ups --------------------------------------------------------


def newest_pending(session: Session, study_id: int) -> int | None:
    stmt = (
        select(TrialRow.id)
        .where(TrialRow.study_id == study_id, TrialRow.status == "pending")
        .order_by(TrialRow.queue_seq.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def insert_trial(session: Session, fields: dict[str, Any]) -> TrialRow | None:
    """Insert a trial; None when its sampled configuration is already in the study (the
    unique (study, values_hash) constraint decides, in the same round trip)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(TrialRow)
        .values(**fields)
        .on_conflict_do_nothing(index_elements=["study_id", "values_hash"])
        .returning(TrialRow)
    )
    return session.scalars(stmt).first()


def has_running(session: Session, study_id: int) -> bool:
    stmt = select(TrialRow.id).where(TrialRow.study_id == study_id, TrialRow.status == "running")
    return session.scalars(stmt.limit(1)).first() is not None


def best_promotable(session: Session, bracket_id: int, round: int) -> TrialRow | None:
    """The best completed trial of a round not yet promoted; ties go to the earliest."""
    stmt = (
        select(TrialRow)
        .where(
            TrialRow.bracket_id == bracket_id,
            TrialRow.round == round,
            TrialRow.status == "completed",
            TrialRow.promoted.is_(False),
        )
        .order_by(TrialRow.score_key, TrialRow.number)
        .limit(1)
    )
    return session.scalars(stmt).first()


def expired_leases(session: Session, study_id: int, now: datetime) -> Sequence[TrialRow]:
    stmt = select(TrialRow).where(
        TrialRow.study_id == study_id,
        TrialRow.status == "running",
        TrialRow.lease_expires_at < now,
    )
    # FOR UPDATE: a heartbeat that renews a lease meanwhile takes the row out of the result.
    return session.scalars(stmt.with_for_update()).all()


# -- trials: reading ------------------------------------------------------------------------


def get_trial_by_id(session: Session, trial_id: int) -> TrialRow:
    trial = session.get(TrialRow, trial_id)
    assert trial is not None
    return trial


def get_trial(
    session: Session, study_id: int, number: int, *, for_update: bool = False
) -> TrialRow | None:
    stmt = select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.number == number)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def list_trials(
    session: Session, study_id: int, *, status: str | None, after: int | None, limit: int
) -> Sequence[TrialRow]:
    stmt = select(TrialRow).where(TrialRow.study_id == study_id)
    if status is not None:
        stmt = stmt.where(TrialRow.status == status)
    if after is not None:
        stmt = stmt.where(TrialRow.number > after)
    return session.scalars(stmt.order_by(TrialRow.number).limit(limit)).all()


def best_trials(session: Session, study_id: int, k: int) -> Sequence[TrialRow]:
    stmt = (
        select(TrialRow)
        .where(TrialRow.study_id == study_id, TrialRow.status == "completed")
        .order_by(TrialRow.score_key, TrialRow.number)
        .limit(k)
    )
    return session.scalars(stmt).all()


def trial_counts(session: Session, study_id: int) -> dict[str, int]:
    stmt = (
        select(TrialRow.status, func.count())
        .where(TrialRow.study_id == study_id)
        .group_by(TrialRow.status)
    )
    return {status: count for status, count in session.execute(stmt).all()}


def renew_lease(
    session: Session, study_id: int, number: int, worker_id: str, expires: datetime
) -> int:
    """Extend a running trial's lease if `worker_id` holds it; the number of rows changed."""
    stmt = (
        update(TrialRow)
        .where(
            TrialRow.study_id == study_id,
            TrialRow.number == number,
            TrialRow.status == "running",
            TrialRow.worker_id == worker_id,
        )
        .values(lease_expires_at=expires)
    )
    return session.execute(stmt).rowcount  # type: ignore[attr-defined, no-any-return]


# -- per-epoch metrics ----------------------------------------------------------------------


def upsert_metrics(session: Session, trial_id: int, epoch: int, metrics: dict[str, float]) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(TrialMetricRow).values(trial_id=trial_id, epoch=epoch, metrics=metrics)
    stmt = stmt.on_conflict_do_update(
        index_elements=["trial_id", "epoch"], set_={"metrics": stmt.excluded.metrics}
    )
    session.execute(stmt)


def delete_metrics(session: Session, trial_id: int) -> None:
    session.execute(delete(TrialMetricRow).where(TrialMetricRow.trial_id == trial_id))


def metrics_of(session: Session, trial_ids: Sequence[int]) -> dict[int, list[TrialMetricRow]]:
    if not trial_ids:
        return {}
    stmt = (
        select(TrialMetricRow)
        .where(TrialMetricRow.trial_id.in_(trial_ids))
        .order_by(TrialMetricRow.trial_id, TrialMetricRow.epoch)
    )
    history: dict[int, list[TrialMetricRow]] = {tid: [] for tid in trial_ids}
    for row in session.scalars(stmt):
        history[row.trial_id].append(row)
    return history


# -- checkpoints ----------------------------------------------------------------------------


def checkpoint_of(session: Session, trial_id: int) -> CheckpointRow | None:
    stmt = select(CheckpointRow).where(CheckpointRow.trial_id == trial_id)
    return session.scalars(stmt).one_or_none()


def studies_with_checkpoints(session: Session) -> Sequence[int]:
    return session.scalars(select(CheckpointRow.study_id).distinct()).all()


def checkpoint_owners(
    session: Session, study_id: int
) -> Sequence[tuple[CheckpointRow, TrialRow, BracketRow, str | None]]:
    """Each checkpoint of the study with its trial, the trial's bracket and the status of
    the trial's promoted child (None if it has none)."""
    child = aliased(TrialRow)
    stmt = (
        select(CheckpointRow, TrialRow, BracketRow, child.status)
        .join(TrialRow, TrialRow.id == CheckpointRow.trial_id)
        .join(BracketRow, BracketRow.id == TrialRow.bracket_id)
        .outerjoin(child, child.parent_id == TrialRow.id)
        .where(CheckpointRow.study_id == study_id)
    )
    return [(r[0], r[1], r[2], r[3]) for r in session.execute(stmt).all()]


def checkpoint_locations(session: Session, study_id: int) -> Sequence[str]:
    stmt = select(CheckpointRow.location).where(CheckpointRow.study_id == study_id)
    return session.scalars(stmt).all()


def delete_checkpoints(session: Session, checkpoint_ids: Sequence[int]) -> None:
    session.execute(delete(CheckpointRow).where(CheckpointRow.id.in_(checkpoint_ids)))
