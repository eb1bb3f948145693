"""Engines and transactions for SQLite (the embedded default) and PostgreSQL.

`Database.write()` is one short transaction that may change state: on PostgreSQL it is a
plain READ COMMITTED transaction in which the caller locks the study row; on SQLite it is
`BEGIN IMMEDIATE` in WAL mode, taken under a process-wide lock so that threads queue
fairly instead of polling SQLite's busy handler. `Database.transaction()` retries the
whole unit of work on deadlocks, serialization failures and "database is locked".

Transactions that lock a study row also queue on an in-process lock of that study first:
the row lock keeps replicas apart, the process lock keeps this process's threads from
piling up on the row lock (each holding a connection, each woken by the database in turn),
which made many workers on one study slower than one worker.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("rung.db")
T = TypeVar("T")
RETRYABLE_PGCODES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock n/a


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # the server went away (restart, failover): reconnect
        return True
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in RETRYABLE_PGCODES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(orig)


def ensure_sqlite_directory(url: str) -> None:
    """SQLite creates the database file, not the directory it lives in."""
    path = url.split(":///", 1)[1] if url.startswith("sqlite") and ":///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, pool_size: int = 20, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        engine = create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
    )


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
        mode = "IMMEDIATE" if conn.get_execution_options().get("rung_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    def __init__(self, url: str, *, pool_size: int = 20, echo: bool = False):
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, echo=echo)
        self.dialect = self.engine.dialect.name
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(rung_write=True), expire_on_commit=False
        )
        self._sqlite_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._study_locks: dict[int, threading.Lock] = {}
        self._study_locks_guard = threading.Lock()

    def study_lock(self, study_id: int) -> threading.Lock:
        with self._study_locks_guard:
            return self._study_locks.setdefault(study_id, threading.Lock())

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        if self._sqlite_lock is None:
            with self._write() as session, session.begin():
                yield session
            return
        with self._sqlite_lock, self._write() as session, session.begin():
            yield session

    def transaction(
        self, work: Callable[[Session], T], *, study: int | None = None, attempts: int = 8
    ) -> T:
        """Run `work` in one write transaction, again on a transient conflict. Pass the
        `study` whose row `work` locks, to queue on this process's lock of it first."""
        queue: AbstractContextManager[object] = (
            nullcontext() if study is None else self.study_lock(study)
        )
        with queue:
            return self._retrying(work, attempts)

    def _retrying(self, work: Callable[[Session], T], attempts: int) -> T:
        for attempt in range(attempts):
            try:
                with self.write() as session:
                    return work(session)
            except DBAPIError as exc:
                if not is_retryable(exc) or attempt == attempts - 1:
                    raise
                delay = min(0.5, 0.005 * 2**attempt) * (0.5 + random.random())
                log.info("transient database conflict, retrying in %.3fs: %s", delay, exc.orig)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
