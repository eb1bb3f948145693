"""The hot statements run on the DBAPI cursor (`db.cursor`) behave as SQLAlchemy's own
execution of them: the same rows with the same Python values (JSON, timestamps and
booleans go through the dialect's processors), the errors SQLAlchemy raises, a connection
the database dropped invalidated (so that the transaction is retried on a new one), and
the engine's listeners see each statement."""

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from service.db import cursor, migrate
from service.db import repository as repo
from service.db.models import TrialMetricRow, TrialRow
from service.db.transactions import Database, is_retryable

from .test_constraints import seed_rows
from .test_repository import fields


def seed_trials(db):
    """A study with a promoted and a promotable completed trial, and a running one."""
    study_id, bracket_id = seed_rows(db)
    with db.write() as s:
        for number, status in enumerate(["completed", "completed", "running"]):
            repo.insert_trial(
                s, {**fields(study_id, bracket_id, number, f"h{number}"), "status": status}
            )
        s.execute(text("UPDATE trials SET score_key = number, promoted = (number = 0)"))
    return study_id, bracket_id


def test_the_hot_statements_read_what_sqlalchemy_reads(db):
    study_id, bracket_id = seed_trials(db)
    cases = [
        (repo._LOCK_STUDY, {"study_id": study_id}),
        (repo._ASK_ROWS, {"study_id": study_id, "worker_id": "w2"}),
        (repo._TRIAL_WITH_BRACKET, {"study_id": study_id, "number": 2}),
        (repo._BEST_PROMOTABLE, {"bracket_id": bracket_id, "round": 0}),
        (
            repo._PROMOTED_AHEAD,
            {"bracket_id": bracket_id, "round": 0, "score_key": 5.0, "number": 9, "limit": 3},
        ),
    ]
    with db.write() as s:
        connection = s.connection()
        for stmt, params in cases:
            expected = [tuple(row) for row in connection.execute(stmt, params).all()]
            assert expected, "each case reads something"
            assert list(cursor.execute(connection, stmt, params)) == expected
    with db.write() as s:  # the values as the models' types make them, on SQLite too
        trial, _bracket = repo.trial_with_bracket(s, study_id, 2)
        assert trial.values == {"x": 2} and trial.promoted is False
        assert trial.created_at.tzinfo is not None


def test_a_constraint_violation_is_sqlalchemys_integrity_error(db):
    study_id, bracket_id = seed_rows(db)
    statements = []
    with db.write() as s:
        repo.insert_trial(s, fields(study_id, bracket_id, 0, "a"))
        event.listen(s.get_bind(), "before_cursor_execute", lambda *a: statements.append(a[2]))
        with pytest.raises(IntegrityError) as raised:
            repo.insert_trial(s, fields(study_id, bracket_id, 0, "b"))  # the same number
        s.rollback()
    assert not is_retryable(raised.value)
    assert len(statements) == 1 and statements[0].startswith("INSERT INTO trials")


@pytest.mark.parametrize(
    "stmt, why",
    [
        (select(TrialRow.id).where(TrialRow.number.in_([1, 2])), "IN lists"),
        (  # created_at's default is computed in Python, by SQLAlchemy's execution
            insert(TrialMetricRow.__table__).values(trial_id=1, epoch=0, metrics={}),
            "Python-side defaults",
        ),
    ],
)
def test_what_the_cursor_cannot_run_as_sqlalchemy_would_is_refused(db, stmt, why):
    with db.read() as s, pytest.raises(ValueError, match=why):
        cursor.execute(s.connection(), stmt, {})


@pytest.mark.postgres
def test_a_dropped_connection_is_invalidated_and_retryable(empty_postgres_url):
    migrate.upgrade(empty_postgres_url)
    db = Database(empty_postgres_url, pool_size=1)
    try:
        study_id, _ = seed_rows(db)
        with pytest.raises(DBAPIError) as raised, db.write() as s:
            connection = s.connection()
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with db.engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            try:
                cursor.execute(connection, repo._LOCK_STUDY, {"study_id": study_id})
            finally:
                invalidated = connection.invalidated  # before the session lets it go
        assert raised.value.connection_invalidated and is_retryable(raised.value)
        assert invalidated
        assert db.transaction(lambda s: repo.lock_study(s, study_id)) is not None
    finally:
        db.dispose()
