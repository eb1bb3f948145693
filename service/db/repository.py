"""Every SQL statement of the service, one function each. No business rules.

The hot path (ask, tell, report, heartbeat) only touches a handful of rows through indexes:
the study row, its open brackets, and single trials found by the partial indexes declared
in models.py. Nothing here reads "all trials".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased, undefer_group
from sqlalchemy.orm.attributes import set_committed_value

from . import cursor
from .changes import change, row_update, write_changes
from .engine import PLAN_EACH_RUN
from .models import BracketRow, CheckpointRow, StudyRow, TrialMetricRow, TrialRow
from .rows import adopt, columns


def _execute(session: Session, stmt: Any, params: dict[str, Any]) -> Sequence[Any]:
    """Run a hot Core statement in the session's transaction, on the connection's cursor
    (`cursor.execute`), after the queued changes it must see (the ORM's statements write
    them first through the session's hooks); its rows, as tuples."""
    write_changes(session)
    return cursor.execute(session.connection(), stmt, params)


def _first(rows: Sequence[Any]) -> Any:
    return rows[0] if rows else None


def _read_row(
    session: Session, stmt: Any, params: dict[str, Any], model: Any, keys: Sequence[str]
) -> Any:
    """The object of the first row `stmt` reads (columns `keys` of `model`), or None."""
    row = _first(_execute(session, stmt, params))
    return None if row is None else adopt(session, model, keys, row)


# -- studies ------------------------------------------------------------------------------


def lock_study(session: Session, study_id: int) -> StudyRow | None:
    """The study row, locked until the transaction ends (PostgreSQL: SELECT … FOR UPDATE;
    SQLite: the transaction already holds the database's write lock). Locked once per
    transaction: work that shares it (group commit) gets the same row again."""
    locked: dict[int, StudyRow | None] = session.info.setdefault("locked_studies", {})
    if study_id not in locked:
        params = {"study_id": study_id}
        locked[study_id] = _read_row(session, _LOCK_STUDY, params, StudyRow, _STUDY_KEYS)
    return locked[study_id]


# The hot path's statements are built once; each call only binds its parameters. They read
# columns, not ORM entities, and `adopt` makes the rows' objects.
_STUDY_KEYS, _STUDY_COLUMNS = columns(StudyRow)
_STUDY = select(*_STUDY_COLUMNS).where(StudyRow.id == bindparam("study_id"))
_LOCK_STUDY = _STUDY.with_for_update()


# Read what a decision needs in statements *after* the one that locks the study. In READ
# COMMITTED, `SELECT … FOR UPDATE` that waited for a lock re-reads the locked row at its
# newest version, but rows it joins from other tables come from the snapshot taken before
# the wait: with two replicas, counters read that way were stale and updates were lost.


def ask_rows(
    session: Session, study_id: int, worker_id: str
) -> tuple[TrialRow | None, list[BracketRow]]:
    """The trial `worker_id` is running in the study, and its open brackets (oldest first)."""
    rows = _execute(session, _ASK_ROWS, {"study_id": study_id, "worker_id": worker_id})
    held_id = rows[0][0] if rows else None
    trial = session.get(TrialRow, held_id) if held_id is not None else None
    brackets = [adopt(session, BracketRow, _BRACKET_KEYS, row[1:]) for row in rows]
    return trial, [b for b in brackets if b is not None]


_BRACKET_KEYS, _BRACKET_COLUMNS = columns(BracketRow)
_ASK_ROWS = (
    select(
        select(TrialRow.id)
        .where(
            TrialRow.study_id == bindparam("study_id"),
            TrialRow.worker_id == bindparam("worker_id"),
            TrialRow.status == "running",
        )
        .scalar_subquery()
        .label("held"),
        *_BRACKET_COLUMNS,
    )
    .select_from(StudyRow)
    .outerjoin(BracketRow, (BracketRow.study_id == StudyRow.id) & BracketRow.is_open)
    .where(StudyRow.id == bindparam("study_id"))
    .order_by(BracketRow.id)
    .execution_options(**PLAN_EACH_RUN)
)


def trial_with_bracket(
    session: Session, study_id: int, number: int
) -> tuple[TrialRow, BracketRow] | None:
    params = {"study_id": study_id, "number": number}
    found = _first(_execute(session, _TRIAL_WITH_BRACKET, params))
    if found is None:
        return None
    n = len(_TRIAL_KEYS)
    return (
        adopt(session, TrialRow, _TRIAL_KEYS, found[:n]),
        adopt(session, BracketRow, _COUNTER_KEYS, found[n:]),
    )


# Of the bracket, only the counters a result moves: each column read costs on every tell.
# (The rest is loaded if it is read.)
_TRIAL_KEYS, _TRIAL_COLUMNS = columns(TrialRow)
_COUNTER_KEYS, _COUNTER_COLUMNS = columns(BracketRow, ("id", "completed", "active"))
_TRIAL_WITH_BRACKET = (
    select(*_TRIAL_COLUMNS, *_COUNTER_COLUMNS)
    .join_from(TrialRow, BracketRow, BracketRow.id == TrialRow.bracket_id)
    .where(TrialRow.study_id == bindparam("study_id"), TrialRow.number == bindparam("number"))
    .execution_options(**PLAN_EACH_RUN)
)


def get_study(session: Session, study_id: int, *, with_config: bool = False) -> StudyRow | None:
    """The study row; its settings and space are loaded now only `with_config` (they are
    read lazily otherwise, which detached rows cannot do)."""
    if with_config:
        return session.scalars(_STUDY_WITH_CONFIG, {"study_id": study_id}).one_or_none()
    return _read_row(session, _STUDY, {"study_id": study_id}, StudyRow, _STUDY_KEYS)


_STUDY_WITH_CONFIG = (
    select(StudyRow).where(StudyRow.id == bindparam("study_id")).options(undefer_group("config"))
)


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


# -- writing --------------------------------------------------------------------------


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
    return session.scalars(_NEWEST_PENDING, {"study_id": study_id}).first()


_NEWEST_PENDING = (
    select(TrialRow.id)
    .where(TrialRow.study_id == bindparam("study_id"), TrialRow.status == "pending")
    .order_by(TrialRow.queue_seq.desc())
    .limit(1)
)


def insert_trial(
    session: Session,
    fields: dict[str, Any],
    *,
    on_insert: Sequence[tuple[Any, dict[str, Any]]] = (),
) -> TrialRow | None:
    """Insert a trial; None when its sampled configuration is already in the study (the
    unique (study, values_hash) constraint decides, in the same round trip). `on_insert`:
    changes (row, values) to other loaded rows that hold if, and only if, the trial is
    inserted; on PostgreSQL they are written by the same statement. Only the new id comes
    back: the trial's row is built here from `fields`, as if loaded."""
    fields = _with_defaults(TrialRow, fields)
    dialect = session.get_bind().dialect.name
    together = dialect == "postgresql" and bool(on_insert)
    params = {f"t_{key}": value for key, value in fields.items()}
    signature: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if together:
        for i, (row, values) in enumerate(on_insert):
            params[f"r{i}"] = row.id
            params.update({f"v{i}_{key}": value for key, value in values.items()})
        signature = tuple((row.__tablename__, tuple(values)) for row, values in on_insert)
    stmt = _insert_trial(dialect, tuple(fields), signature)
    inserted = _first(_execute(session, stmt, params))
    if inserted is None:
        return None
    trial_id = inserted[0]
    for row, values in on_insert:
        if together:  # already written
            for key, value in values.items():
                set_committed_value(row, key, value)
        else:
            change(row, **values)
    state = {**fields, "id": trial_id}
    return adopt(session, TrialRow, _TRIAL_KEYS, [state.get(key) for key in _TRIAL_KEYS])


@functools.cache
def _insert_trial(
    dialect: str, keys: tuple[str, ...], signature: tuple[tuple[str, tuple[str, ...]], ...]
) -> Any:
    """INSERT INTO trials (<keys>) … ON CONFLICT (study_id, values_hash) DO NOTHING
    RETURNING id; with a `signature` (PostgreSQL), the UPDATEs of `changes.row_update` as CTEs
    that change their row only when the insert did. Built once."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    named = dict(zip(*columns(TrialRow, keys), strict=True))
    values = {c.name: bindparam(f"t_{key}", type_=c.type) for key, c in named.items()}
    stmt = (
        insert(_TRIALS)  # type: ignore[arg-type]
        .values(values)
        .on_conflict_do_nothing(index_elements=["study_id", "values_hash"])
        .returning(_TRIALS.c.id)
    )
    if not signature:
        return stmt
    inserted = stmt.cte("inserted")
    updates = [
        row_update(i, tablename, names).where(exists(select(inserted.c.id)))
        for i, (tablename, names) in enumerate(signature)
    ]
    return select(inserted.c.id).add_cte(*(u.cte(f"write{i}") for i, u in enumerate(updates)))


_TRIALS = TrialRow.__table__


def _with_defaults(model: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` and the model's Python-side column defaults of the columns it leaves out
    (SQLAlchemy fills them in only for statements it executes itself)."""
    missing = {key: _default(value) for key, value in _defaults(model).items() if key not in fields}
    return {**missing, **fields}


def _default(column_default: Any) -> Any:
    return column_default.arg(None) if column_default.is_callable else column_default.arg


@functools.cache
def _defaults(model: Any) -> dict[str, Any]:
    return {
        attr.key: attr.columns[0].default
        for attr in sa_inspect(model).column_attrs
        if attr.columns[0].default is not None
    }


def is_tried(session: Session, study_id: int, values_hash: str) -> bool:
    """Whether the study has a trial with this configuration (the unique index answers)."""
    return bool(session.scalar(_IS_TRIED, {"study_id": study_id, "values_hash": values_hash}))


_IS_TRIED = select(
    exists().where(
        TrialRow.study_id == bindparam("study_id"),
        TrialRow.values_hash == bindparam("values_hash"),
    )
)


def has_running(session: Session, study_id: int) -> bool:
    return session.scalars(_HAS_RUNNING, {"study_id": study_id}).first() is not None


_HAS_RUNNING = (
    select(TrialRow.id)
    .where(TrialRow.study_id == bindparam("study_id"), TrialRow.status == "running")
    .limit(1)
)


def best_promotable(session: Session, bracket_id: int, round: int) -> TrialRow | None:
    """The best completed trial of a round not yet promoted; ties go to the earliest. Only
    what a promotion copies is read (the rest is filled in if read later in the session)."""
    params = {"bracket_id": bracket_id, "round": round}
    return _read_row(session, _BEST_PROMOTABLE, params, TrialRow, _PROMOTED_KEYS)


_PROMOTED_KEYS, _PROMOTED_COLUMNS = columns(TrialRow, ("id", "number", "values", "score_key"))
_BEST_PROMOTABLE = (
    select(*_PROMOTED_COLUMNS)
    .where(
        TrialRow.bracket_id == bindparam("bracket_id"),
        TrialRow.round == bindparam("round"),
        TrialRow.status == "completed",
        ~TrialRow.promoted,  # the words of ix_trials_promotable's predicate (SQLite needs them)
    )
    .order_by(TrialRow.score_key, TrialRow.number)
    .limit(1)
)


def promoted_ahead(
    session: Session, bracket_id: int, round: int, trial: TrialRow, *, limit: int
) -> int:
    """How many promoted completed trials of the round rank before `trial` (better score,
    ties to the earlier), counted up to `limit` (ix_trials_promoted, read `limit` deep)."""
    params = {
        "bracket_id": bracket_id,
        "round": round,
        "score_key": trial.score_key,
        "number": trial.number,
        "limit": limit,
    }
    return int(_execute(session, _PROMOTED_AHEAD, params)[0][0])


_AHEAD = (
    select(TrialRow.id)
    .where(
        TrialRow.bracket_id == bindparam("bracket_id"),
        TrialRow.round == bindparam("round"),
        TrialRow.status == "completed",
        TrialRow.promoted,  # the words of ix_trials_promoted's predicate (SQLite needs them)
        (TrialRow.score_key < bindparam("score_key"))
        | (
            (TrialRow.score_key == bindparam("score_key")) & (TrialRow.number < bindparam("number"))
        ),
    )
    .order_by(TrialRow.score_key, TrialRow.number)
    .limit(bindparam("limit"))
    .subquery()
)
_PROMOTED_AHEAD = select(func.count()).select_from(_AHEAD)


def results_since(session: Session, study_id: int, seen: int) -> Sequence[Any]:
    """The final results told after the first `seen` (`result_seq` order): epochs, values,
    score_key (ix_trials_results)."""
    return session.execute(_RESULTS_SINCE, {"study_id": study_id, "seen": seen}).all()


_RESULTS_SINCE = (
    select(TrialRow.epochs, TrialRow.values, TrialRow.score_key)
    .where(
        TrialRow.study_id == bindparam("study_id"),
        TrialRow.result_seq.is_not(None),
        TrialRow.result_seq > bindparam("seen"),
    )
    .order_by(TrialRow.result_seq)
)


def expired_leases(session: Session, study_id: int, now: datetime) -> Sequence[TrialRow]:
    return session.scalars(_EXPIRED_LEASES, {"study_id": study_id, "now": now}).all()


# FOR UPDATE: a heartbeat that renews a lease meanwhile takes the row out of the result.
_EXPIRED_LEASES = (
    select(TrialRow)
    .where(
        TrialRow.study_id == bindparam("study_id"),
        TrialRow.status == "running",
        TrialRow.lease_expires_at < bindparam("now"),
    )
    .with_for_update()
)


# -- trials: reading ------------------------------------------------------------------------


def get_trial_by_id(session: Session, trial_id: int) -> TrialRow:
    trial = session.get(TrialRow, trial_id)
    assert trial is not None
    return trial


def get_trial(
    session: Session, study_id: int, number: int, *, for_update: bool = False
) -> TrialRow | None:
    stmt = _TRIAL_FOR_UPDATE if for_update else _TRIAL
    params = {"study_id": study_id, "number": number}
    return _read_row(session, stmt, params, TrialRow, _TRIAL_KEYS)


_TRIAL = (
    select(*_TRIAL_COLUMNS)
    .where(TrialRow.study_id == bindparam("study_id"), TrialRow.number == bindparam("number"))
    .execution_options(**PLAN_EACH_RUN)
)
_TRIAL_FOR_UPDATE = _TRIAL.with_for_update()


def list_trials(
    session: Session,
    study_id: int,
    *,
    status: str | None,
    after: int | None,
    limit: int,
    place: dict[str, int] | None = None,
) -> Sequence[TrialRow]:
    """A page of trials by number; `place` narrows it by iteration, bracket and round."""
    stmt = select(TrialRow).where(TrialRow.study_id == study_id)
    if status is not None:
        stmt = stmt.where(TrialRow.status == status)
    for column, value in (place or {}).items():
        stmt = stmt.where(getattr(TrialRow, column) == value)
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


def trial_counts(session: Session) -> dict[str, int]:
    """All studies' trials by status (one study's: `trial_activity`)."""
    stmt = select(TrialRow.status, func.count()).group_by(TrialRow.status)
    return {status: count for status, count in session.execute(stmt).all()}


def trial_activity(session: Session, study_ids: Sequence[int]) -> Sequence[Any]:
    """Per study and status: the count of trials and when one was last created, started
    or finished (one pass over the studies' trials)."""
    stmt = (
        select(
            TrialRow.study_id,
            TrialRow.status,
            func.count(),
            func.max(TrialRow.created_at),
            func.max(TrialRow.started_at),
            func.max(TrialRow.finished_at),
        )
        .where(TrialRow.study_id.in_(study_ids))
        .group_by(TrialRow.study_id, TrialRow.status)
    )
    return session.execute(stmt).all()


def bracket_counts(session: Session, study_ids: Sequence[int]) -> Sequence[Any]:
    """Per study: (study_id, is_open, count of brackets)."""
    stmt = (
        select(BracketRow.study_id, BracketRow.is_open, func.count())
        .where(BracketRow.study_id.in_(study_ids))
        .group_by(BracketRow.study_id, BracketRow.is_open)
    )
    return session.execute(stmt).all()


def best_so_far(session: Session, study_id: int) -> Sequence[Any]:
    """The completed trials whose score_key equals the best of those completed up to them,
    in the order they finished, each with (number, finished_at, score, score_key, epochs
    trained by the completed trials up to it). One window over the study's completed trials
    carries both aggregates; a trial that only ties the best is among them (the caller
    keeps the strict improvements)."""
    order = (TrialRow.finished_at, TrialRow.number)  # unique: the frame ends at the row
    done = (
        select(
            TrialRow.number,
            TrialRow.finished_at,
            TrialRow.score,
            TrialRow.score_key,
            func.sum(TrialRow.epochs - TrialRow.initial_epoch)
            .over(order_by=order)
            .label("trained"),
            func.min(TrialRow.score_key).over(order_by=order).label("best"),
        )
        .where(
            TrialRow.study_id == study_id,
            TrialRow.status == "completed",
            TrialRow.score_key.is_not(None),
        )
        .subquery()
    )
    stmt = (
        select(done.c.number, done.c.finished_at, done.c.score, done.c.score_key, done.c.trained)
        .where(done.c.score_key == done.c.best)
        .order_by(done.c.finished_at, done.c.number)
    )
    return session.execute(stmt).all()


def epochs_trained(session: Session, study_id: int) -> tuple[int, datetime | None]:
    """Epochs trained by the study's completed trials, and when the last one finished."""
    stmt = select(
        func.coalesce(func.sum(TrialRow.epochs - TrialRow.initial_epoch), 0),
        func.max(TrialRow.finished_at),
    ).where(TrialRow.study_id == study_id, TrialRow.status == "completed")
    trained, last = session.execute(stmt).one()
    return int(trained), last


def renew_lease(
    session: Session, study_id: int, number: int, worker_id: str, expires: datetime
) -> TrialRow | None:
    """Extend a running trial's lease if `worker_id` holds it: the trial as the update left
    it, or None if the worker does not hold it (one statement: UPDATE … RETURNING)."""
    params = {"s": study_id, "n": number, "w": worker_id, "expires": expires}
    trial = _read_row(session, _RENEW_LEASE, params, TrialRow, _TRIAL_KEYS)
    if trial is None:
        return None
    set_committed_value(trial, "lease_expires_at", expires)  # if the session held it already
    return trial


_RENEW_LEASE = (
    update(TrialRow)
    .where(
        TrialRow.study_id == bindparam("s"),
        TrialRow.number == bindparam("n"),
        TrialRow.status == "running",
        TrialRow.worker_id == bindparam("w"),
    )
    .values(lease_expires_at=bindparam("expires"))
    .returning(*_TRIAL_COLUMNS)
    .execution_options(**PLAN_EACH_RUN)
)


# -- per-epoch metrics ----------------------------------------------------------------------


def upsert_metrics(session: Session, trial_id: int, epoch: int, metrics: dict[str, float]) -> None:
    row = {"trial_id": trial_id, "epoch": epoch, "metrics": metrics}
    fields = _with_defaults(TrialMetricRow, row)
    _execute(session, _upsert_metrics(session.get_bind().dialect.name, tuple(fields)), fields)


@functools.cache
def _upsert_metrics(dialect: str, keys: tuple[str, ...]) -> Any:
    """INSERT INTO trial_metrics (<keys>) … ON CONFLICT (trial_id, epoch) DO UPDATE SET
    metrics; built once."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    named = dict(zip(*columns(TrialMetricRow, keys), strict=True))
    stmt = insert(TrialMetricRow.__table__).values(  # type: ignore[arg-type]
        {c.name: bindparam(key, type_=c.type) for key, c in named.items()}
    )
    return stmt.on_conflict_do_update(
        index_elements=["trial_id", "epoch"], set_={"metrics": stmt.excluded.metrics}
    )


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


def referenced_locations(session: Session, locations: Sequence[str]) -> set[str]:
    """Those of `locations` that a checkpoint row points to."""
    found: set[str] = set()
    for start in range(0, len(locations), 500):
        chunk = locations[start : start + 500]
        stmt = select(CheckpointRow.location).where(CheckpointRow.location.in_(chunk))
        found.update(session.scalars(stmt))
    return found


def delete_checkpoints(session: Session, checkpoint_ids: Sequence[int]) -> None:
    session.execute(delete(CheckpointRow).where(CheckpointRow.id.in_(checkpoint_ids)))
