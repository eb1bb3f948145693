"""SQLAlchemy 2 models: studies, brackets (with per-round counters), trials, per-epoch metrics
and checkpoints. No business rules live here.

The database itself refuses what must never happen: a trial number twice in a study, a
sampled configuration twice in a study, a trial promoted twice, a worker holding two running
trials of one study.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite's INTEGER PRIMARY KEY is its 64-bit rowid; PostgreSQL needs BIGINT for the same range.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


RUNNING = text("status = 'running'")
PENDING = text("status = 'pending'")
COMPLETED = text("status = 'completed'")


class StudyRow(Base):
    __tablename__ = "studies"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Read on the hot path only when a study's parsed config is not cached yet.
    settings: Mapped[dict[str, Any]] = mapped_column(  # as created, for 200/409
        JSONType, deferred=True, deferred_group="config"
    )
    space: Mapped[list[dict[str, Any]]] = mapped_column(  # grows with new entries
        JSONType, deferred=True, deferred_group="config"
    )
    space_version: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="running")
    reason: Mapped[str | None] = mapped_column(Text)
    # What the scheduler needs on every ask, kept on the study row it locks anyway.
    seed_state: Mapped[int] = mapped_column(BigInteger)
    last_iteration: Mapped[int | None] = mapped_column(Integer)
    last_bracket: Mapped[int | None] = mapped_column(Integer)
    exhausted: Mapped[bool] = mapped_column(Boolean, default=False)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    trial_count: Mapped[int] = mapped_column(Integer, default=0)
    queue_counter: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_count: Mapped[int] = mapped_column(Integer, default=0)  # trials to offer again
    result_count: Mapped[int] = mapped_column(  # results numbered for BOHB (result_seq)
        Integer, default=0, server_default="0"
    )
    leases_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BracketRow(Base):
    __tablename__ = "brackets"
    __table_args__ = (
        UniqueConstraint("study_id", "iteration", "bracket"),
        Index(
            "ix_brackets_open",
            "study_id",
            "id",
            postgresql_where=text("is_open"),
            sqlite_where=text("is_open = 1"),  # as SQLAlchemy writes it on SQLite
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    iteration: Mapped[int] = mapped_column(Integer)
    bracket: Mapped[int] = mapped_column(Integer)
    sizes: Mapped[list[int]] = mapped_column(JSONType)  # target trials per round
    created: Mapped[list[int]] = mapped_column(JSONType)  # trials created per round
    completed: Mapped[list[int]] = mapped_column(JSONType)  # trials completed per round
    active: Mapped[int] = mapped_column(Integer, default=0)  # running or pending trials
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrialRow(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        UniqueConstraint("study_id", "values_hash"),
        UniqueConstraint("study_id", "parent_id"),
        # A worker holds at most one running trial per study (ask is idempotent per worker).
        Index(
            "ix_trials_worker",
            "study_id",
            "worker_id",
            unique=True,
            postgresql_where=RUNNING,
            sqlite_where=RUNNING,
        ),
        Index(
            "ix_trials_lease",
            "study_id",
            "lease_expires_at",
            postgresql_where=RUNNING,
            sqlite_where=RUNNING,
        ),
        Index(
            "ix_trials_pending",
            "study_id",
            "queue_seq",
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        ),
        # The best not-yet-promoted completed trial of a round.
        Index(
            "ix_trials_promotable",
            "bracket_id",
            "round",
            "score_key",
            "number",
            postgresql_where=text("status = 'completed' AND NOT promoted"),
            sqlite_where=text("status = 'completed' AND promoted = 0"),  # as SQLAlchemy writes it
        ),
        # The async scheduler's rank of a round's best unpromoted trial.
        Index(
            "ix_trials_promoted",
            "bracket_id",
            "round",
            "score_key",
            "number",
            postgresql_where=text("status = 'completed' AND promoted"),
            sqlite_where=text("status = 'completed' AND promoted = 1"),
        ),
        # BOHB's results told since its last read.
        Index(
            "ix_trials_results",
            "study_id",
            "result_seq",
            unique=True,
            postgresql_where=text("result_seq IS NOT NULL"),
            sqlite_where=text("result_seq IS NOT NULL"),
        ),
        Index(
            "ix_trials_best",
            "study_id",
            "score_key",
            "number",
            postgresql_where=COMPLETED,
            sqlite_where=COMPLETED,
        ),
        Index("ix_trials_status", "study_id", "status", "number"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # the trial's id within its study
    bracket_id: Mapped[int] = mapped_column(
        ForeignKey("brackets.id", ondelete="CASCADE"), index=True
    )
    iteration: Mapped[int] = mapped_column(Integer)
    bracket: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer)
    epochs: Mapped[int] = mapped_column(Integer)
    initial_epoch: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    parent_number: Mapped[int | None] = mapped_column(Integer)
    values: Mapped[dict[str, Any]] = mapped_column("hyperparameters", JSONType)
    values_hash: Mapped[str | None] = mapped_column(String(32))  # sampled trials only
    status: Mapped[str] = mapped_column(String(16))
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queue_seq: Mapped[int | None] = mapped_column(BigInteger)  # order put back (pending)
    result_seq: Mapped[int | None] = mapped_column(BigInteger)  # order of results (bohb)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failed_runs: Mapped[int] = mapped_column(Integer, default=0)
    lost_leases: Mapped[int] = mapped_column(Integer, default=0)
    best_value: Mapped[float | None] = mapped_column(Float)  # best objective in this run
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    score_key: Mapped[float | None] = mapped_column(Float)  # smaller is better
    promoted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    metrics: Mapped[dict[str, float] | None] = mapped_column(JSONType)  # told at the end
    error: Mapped[str | None] = mapped_column(Text)
    tell_digest: Mapped[str | None] = mapped_column(String(64))  # the accepted tell's hash
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CheckpointRow(Base):
    """The checkpoint a trial uploaded (one per trial; a new upload replaces it)."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("trial_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrialMetricRow(Base):
    __tablename__ = "trial_metrics"
    __table_args__ = (UniqueConstraint("trial_id", "epoch"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, float]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
