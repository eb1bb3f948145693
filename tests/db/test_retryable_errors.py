"""Which database errors a transaction is retried on (`session.is_retryable`), tried with the
errors the databases really raise: lock contention, serialization failures, deadlocks and a
dropped connection are retried; a constraint violation or a syntax error is not."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError

from service.db.transactions import is_retryable


def raised(call) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    pytest.fail("no error")


def test_sqlite_lock_contention_is_retried_and_a_constraint_is_not(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = create_engine(url, connect_args={"timeout": 0})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    holder = engine.raw_connection()
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held
    try:
        with engine.connect() as conn:
            locked = raised(lambda: conn.execute(text("INSERT INTO t VALUES (2)")))
    finally:
        holder.rollback()
        holder.close()
    assert "database is locked" in str(locked) and is_retryable(locked)
    with engine.connect() as conn:
        duplicate = raised(lambda: conn.execute(text("INSERT INTO t VALUES (1)")))
    assert isinstance(duplicate, IntegrityError) and not is_retryable(duplicate)
    engine.dispose()


@pytest.fixture
def pg(empty_postgres_url):
    engine = create_engine(empty_postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1, 0), (2, 0)"))
    yield engine
    engine.dispose()


def sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


@pytest.mark.postgres
def test_postgres_serialization_failure_is_retried(pg):
    with pg.connect().execution_options(isolation_level="REPEATABLE READ") as first:
        first.execute(text("SELECT v FROM t WHERE id = 1")).scalar()  # its snapshot is taken
        with pg.begin() as second:
            second.execute(text("UPDATE t SET v = v + 1 WHERE id = 1"))
        failure = raised(lambda: first.execute(text("UPDATE t SET v = v + 1 WHERE id = 1")))
        first.rollback()
    assert sqlstate(failure) == "40001" and is_retryable(failure)


@pytest.mark.postgres
def test_postgres_lock_not_available_is_retried(pg):
    with pg.connect() as holder, pg.connect() as other:
        holder.execute(text("SELECT * FROM t WHERE id = 1 FOR UPDATE"))
        busy = raised(lambda: other.execute(text("SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT")))
        holder.rollback()
    assert sqlstate(busy) == "55P03" and is_retryable(busy)


@pytest.mark.postgres
def test_postgres_deadlock_is_retried(pg):
    errors: list[BaseException] = []
    both_hold_one = threading.Barrier(2)

    def cross(first: int, second: int) -> None:
        with pg.connect() as conn:
            try:
                conn.execute(text("UPDATE t SET v = 1 WHERE id = :i"), {"i": first})
                both_hold_one.wait(10)
                conn.execute(text("UPDATE t SET v = 1 WHERE id = :i"), {"i": second})
                conn.commit()
            except DBAPIError as exc:
                errors.append(exc)
                conn.rollback()

    threads = [threading.Thread(target=cross, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 1, errors  # PostgreSQL breaks the cycle by failing one of them
    assert sqlstate(errors[0]) == "40P01" and is_retryable(errors[0])


@pytest.mark.postgres
def test_a_dropped_connection_is_retried_and_a_bad_statement_is_not(pg):
    with pg.connect() as victim, pg.connect() as killer:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar()
        victim.rollback()
        killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        dropped = raised(lambda: victim.execute(text("SELECT 1")))
    assert isinstance(dropped, DBAPIError) and dropped.connection_invalidated
    assert is_retryable(dropped)
    with pg.connect() as conn:
        bad = raised(lambda: conn.execute(text("SELECT * FROM no_such_table")))
        conn.rollback()
        duplicate = raised(lambda: conn.execute(text("INSERT INTO t VALUES (1, 0)")))
    assert isinstance(bad, ProgrammingError) and not is_retryable(bad)
    assert isinstance(duplicate, IntegrityError) and sqlstate(duplicate) == "23505"
    assert not is_retryable(duplicate)
    assert not is_retryable(ValueError("not a database error"))
