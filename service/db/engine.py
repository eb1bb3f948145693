"""Engines for SQLite (the embedded default) and PostgreSQL: the connection settings, and
the two per-statement hooks of PostgreSQL's (plan-each-run, the cached cursor description).

SQLite runs in WAL mode; a write transaction is `BEGIN IMMEDIATE` (see `transactions`)
and a read `BEGIN DEFERRED`, both issued by the engine's "begin" event rather than
deferred by the driver.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event

# PostgreSQL runs a statement marked so from a plan made for the tables as they are now,
# never from a prepared statement's cached generic plan: a generic plan is made when a
# study is new and its tables are tiny, where any index looks as good as another, and it
# is kept until autovacuum next analyzes the table. One such plan found a told trial
# through the (study_id, values_hash) index, filtering all the study's trials by number:
# tells slowed down as the study grew. Marked (in `repository`): the look-ups that such a
# plan could turn into a scan of the whole study (a trial by number; the open brackets).
# `_plan_each_run` below runs them so through SQLAlchemy; `cursor.execute` does the same
# for those it runs on the DBAPI cursor.
PLAN_EACH_RUN_OPTION = "rung_plan_each_run"
PLAN_EACH_RUN = {PLAN_EACH_RUN_OPTION: True}

# The execution option that makes SQLite's transactions `BEGIN IMMEDIATE`.
WRITE_OPTION = "rung_write"


def ensure_sqlite_directory(url: str) -> None:
    """SQLite creates the database file, not the directory it lives in."""
    path = url.split(":///", 1)[1] if url.startswith("sqlite") and ":///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, pool_size: int = 20, echo: bool = False) -> Engine:
    # LIFO: the connection used last is used next. A study's transactions run one at a
    # time (StudyQueue), so they keep going to the same few PostgreSQL backends, whose
    # caches are warm, instead of cycling through every connection in the pool.
    pool = {"pool_size": pool_size, "max_overflow": pool_size, "pool_use_lifo": True}
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, echo=echo, connect_args=connect_args, **pool)
        _configure_sqlite(engine)
        return engine
    connect_args = {"cursor_factory": _DescribedCursor}
    engine = create_engine(url, echo=echo, connect_args=connect_args, **pool)
    event.listen(engine, "do_execute", _plan_each_run)
    return engine


def _plan_each_run(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
    """Run a statement marked `PLAN_EACH_RUN` unprepared (psycopg prepares a statement from
    its 5th run on a connection, and PostgreSQL then may keep one generic plan for it);
    every other statement as SQLAlchemy would."""
    if not context.execution_options.get(PLAN_EACH_RUN_OPTION):
        return None
    cursor.execute(statement, parameters, prepare=False)
    return True


# A result's `description`, by connection and by what it is made of (status, and each
# column's name, type, modifier and size).
_DESCRIPTIONS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary()
)


class _DescribedCursor(psycopg.Cursor[Any]):
    """psycopg builds `description` anew, one `Column` per column, each time it is read, and
    SQLAlchemy reads it once per statement. It is made only of what this key holds, and the
    hot path's statements return the same columns every time: built once per connection,
    about 6 % of a request's instructions are saved (benchmarks/instructions.py)."""

    @property
    def description(self) -> list[psycopg.Column] | None:
        res = self.pgresult
        if res is None:
            return None
        columns = tuple(
            (res.fname(i), res.ftype(i), res.fmod(i), res.fsize(i)) for i in range(res.nfields)
        )
        described = _DESCRIPTIONS.setdefault(self.connection, {})
        key = (res.status, columns)
        if key not in described:
            described[key] = super().description
        return described[key]


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")
