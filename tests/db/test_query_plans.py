"""The hot path's reads go through the indexes meant for them, so that an ask or a tell does
not grow with the study: the database's own query plans, on a migrated database. (A test
like this found asks on SQLite reading every bracket of the study: SQLite uses a partial
index only when the query repeats its predicate word for word.)"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, text

from service.db import repository as repo
from service.db.models import BracketRow, StudyRow, TrialRow

# The indexes each hot statement may use (one of each set). The unique (study_id, number)
# and (study_id, values_hash) constraints' indexes are named by the database (SQLite:
# sqlite_autoindex_trials_<n>), so they are found by their columns.
OPEN = {"ix_brackets_open"}
RUNNING = {"ix_trials_worker", "ix_trials_lease"}
NUMBER, HASH = ("study_id", "number"), ("study_id", "values_hash")
HOT = {
    "lock_study": (repo._LOCK_STUDY, {"study_id": 1}, [{"pk_studies", "PRIMARY KEY"}]),
    "ask_rows": (repo._ASK_ROWS, {"study_id": 1, "worker_id": "w1"}, [OPEN, RUNNING]),
    "newest_pending": (repo._NEWEST_PENDING, {"study_id": 1}, [{"ix_trials_pending"}]),
    "is_tried": (repo._IS_TRIED, {"study_id": 1, "values_hash": "h7"}, [{HASH}]),
    "has_running": (repo._HAS_RUNNING, {"study_id": 1}, [RUNNING | {"ix_trials_status"}]),
    "best_promotable": (  # either reads one bracket's trials at most, never the study's
        repo._BEST_PROMOTABLE,
        {"bracket_id": 1000, "round": 0},
        [{"ix_trials_promotable", "ix_trials_bracket_id"}],
    ),
    "promoted_ahead (async)": (  # a round's promoted trials, read `limit` deep at most
        repo._PROMOTED_AHEAD,
        {"bracket_id": 1000, "round": 0, "score_key": 0.5, "number": 3, "limit": 30},
        [{"ix_trials_promoted"}],
    ),
    "results_since (bohb)": (
        repo._RESULTS_SINCE,
        {"study_id": 1, "seen": 2990},
        [{"ix_trials_results"}],
    ),
    "expired_leases": (repo._EXPIRED_LEASES, {"study_id": 1, "now": datetime.now(UTC)}, [RUNNING]),
    "trial_with_bracket (tell)": (
        repo._TRIAL_WITH_BRACKET,
        {"study_id": 1, "number": 7},
        [{NUMBER}, {"pk_brackets", "PRIMARY KEY"}],
    ),
    "trial (report)": (repo._TRIAL, {"study_id": 1, "number": 7}, [{NUMBER}]),
    "renew_lease (heartbeat)": (
        repo._RENEW_LEASE,
        {"s": 1, "n": 7, "w": "w1", "expires": datetime.now(UTC)},
        [{NUMBER} | RUNNING],
    ),
}
# Three studies of many trials and brackets (a long run's): a statement must find one
# study's few rows that it needs, not read the study's history.
TRIALS_PER_STUDY, BRACKETS_PER_STUDY = 3000, 300


@pytest.fixture
def grown(database_url):
    """A database holding three grown studies (mostly finished trials, a few running and
    pending, as in a long run), with the planner's statistics up to date."""
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for study in (1, 2, 3):
            conn.execute(
                insert(StudyRow),
                [
                    {
                        "id": study,
                        "name": f"s{study}",
                        "settings": {},
                        "space": [],
                        "seed": 1,
                        "seed_state": 1,
                    }
                ],
            )
            conn.execute(
                insert(BracketRow),
                [
                    {
                        "id": study * 1000 + b,
                        "study_id": study,
                        "iteration": 0,
                        "bracket": b,
                        "sizes": [9, 3, 1],
                        "created": [0, 0, 0],
                        "completed": [0, 0, 0],
                        "is_open": b >= BRACKETS_PER_STUDY - 2,  # the newest two
                    }
                    for b in range(BRACKETS_PER_STUDY)
                ],
            )
            conn.execute(insert(TrialRow), [row(study, n, now) for n in range(TRIALS_PER_STUDY)])
        conn.execute(text("ANALYZE"))
    yield engine
    engine.dispose()


def row(study: int, number: int, now: datetime) -> dict:
    status = "running" if number % 500 == 7 else "pending" if number % 500 == 9 else "completed"
    running = status == "running"
    return {
        "study_id": study,
        "number": number,
        "bracket_id": study * 1000 + number % BRACKETS_PER_STUDY,
        "iteration": 0,
        "bracket": number % BRACKETS_PER_STUDY,
        "round": number % 3,
        "epochs": 3,
        "initial_epoch": 0,
        "hyperparameters": {"a": number},  # the column behind TrialRow.values
        "values_hash": f"h{number}",
        "status": status,
        "worker_id": f"w{number}" if running else None,
        "lease_expires_at": now + timedelta(minutes=1) if running else None,
        "queue_seq": number if status == "pending" else None,
        "score": 1.0 / (number + 1),
        "score_key": 1.0 / (number + 1),
        "promoted": number % 2 == 0,
        "result_seq": number + 1 if status == "completed" else None,
    }


def index_on(conn, columns: tuple[str, ...]) -> str:
    """The name of the trials index on exactly these columns."""
    if conn.dialect.name == "sqlite":
        for _, name, *_ in conn.exec_driver_sql("PRAGMA index_list(trials)").all():
            info = conn.exec_driver_sql(f"PRAGMA index_info({name})").all()
            if tuple(column for *_, column in info) == columns:
                return name
    else:
        wanted = f"(trials USING btree ({', '.join(columns)}))"
        for name, definition in conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'trials'"
        ).all():
            if definition.replace("public.", "").endswith(wanted.removeprefix("(")[:-1]):
                return name
    raise AssertionError(f"no index on trials {columns}")


def plan(conn, stmt, params) -> str:
    compiled = stmt.compile(dialect=conn.dialect)
    values = compiled.construct_params(params)
    if conn.dialect.name == "sqlite":
        args = tuple(values[name] for name in compiled.positiontup)
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), args).all()
        return "\n".join(str(row[-1]) for row in rows)
    # Small tables (3 studies) are cheaper to scan than to search: ask which
    # index the planner would use, with the grown trials table's statistics.
    conn.exec_driver_sql("SET enable_seqscan = off")
    rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), values).all()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("name", HOT)
def test_every_hot_statement_uses_its_index(grown, name):
    stmt, params, indexes = HOT[name]
    with grown.connect() as conn:
        text_ = plan(conn, stmt, params)
        for choices in indexes:
            names = {index_on(conn, c) if isinstance(c, tuple) else c for c in choices}
            assert any(index in text_ for index in names), (name, names, text_)
    assert "SCAN trials" not in text_ and "Seq Scan on trials" not in text_, text_


@pytest.mark.postgres
def test_look_ups_that_could_scan_the_study_are_planned_each_run(postgres_database):
    """A prepared statement's generic plan is made while a study is new and its tables tiny,
    and kept until the table is next analyzed: one found a told trial through the
    (study_id, values_hash) index and filtered all the study's trials by number. The
    look-ups marked PLAN_EACH_RUN never run prepared; the others still do."""
    from service.db.transactions import Database

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
