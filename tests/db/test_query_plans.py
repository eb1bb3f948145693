"""The hot path's reads go through the indexes meant for them, so that an ask or a tell does
not grow with the study: the database's own query plans, on a migrated database. (A test
like this found asks on SQLite reading every bracket of the study: SQLite uses a partial
index only when the query repeats its predicate word for word.)"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from service.db import repository as repo

# Partial indexes that hold only the study's open brackets, running or pending trials.
OPEN, RUNNING, PENDING = (
    {"ix_brackets_open"},
    {"ix_trials_worker", "ix_trials_lease"},
    {"ix_trials_pending"},
)
# statement, parameters, the indexes its plan must use (one of each set)
READS = [
    (repo._ASK_ROWS, {"study_id": 1, "worker_id": "w"}, [OPEN, RUNNING]),
    (repo._NEWEST_PENDING, {"study_id": 1}, [PENDING]),
    (repo._EXPIRED_LEASES, {"study_id": 1, "now": datetime.now(UTC)}, [RUNNING]),
]


def plan(conn, stmt, params) -> str:
    compiled = stmt.compile(dialect=conn.dialect)
    values = compiled.construct_params(params)
    if conn.dialect.name == "sqlite":
        args = tuple(values[name] for name in compiled.positiontup)
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), args).all()
        return "\n".join(str(row[-1]) for row in rows)
    conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: ask what it can use
    rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), values).all()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("stmt, params, indexes", READS)
def test_hot_reads_use_their_indexes(database_url, stmt, params, indexes):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            text = plan(conn, stmt, params)
    finally:
        engine.dispose()
    for choices in indexes:
        assert any(index in text for index in choices), text


@pytest.mark.postgres
def test_look_ups_that_could_scan_the_study_are_planned_each_run(postgres_database):
    """A prepared statement's generic plan is made while a study is new and its tables tiny,
    and kept until the table is next analyzed: one found a told trial through the
    (study_id, values_hash) index and filtered all the study's trials by number. The
    look-ups marked PLAN_EACH_RUN never run prepared; the others still do."""
    from service.db.session import Database

    db = Database(postgres_database, pool_size=1)
    try:
        with db.read() as session:
            for number in range(20):  # psycopg prepares a statement from its 5th run
                repo.get_trial(session, 1, number)
                repo.trial_with_bracket(session, 1, number)
                repo.ask_rows(session, 1, "w")
                repo.renew_lease(session, 1, number, "w", datetime.now(UTC))
                repo.get_study(session, 1)
            prepared = session.scalars(text("SELECT statement FROM pg_prepared_statements")).all()
    finally:
        db.dispose()
    assert any("FROM studies" in statement for statement in prepared), prepared
    assert not any("trials.number =" in statement for statement in prepared), prepared
    assert not any("brackets.is_open" in statement for statement in prepared), prepared
