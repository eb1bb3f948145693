"""Transactions: reads, writes, the per-study queue (group commit) and retries.

`Database.write()` is one short transaction that may change state: on PostgreSQL it is a
plain READ COMMITTED transaction in which the caller locks the study row; on SQLite it is
`BEGIN IMMEDIATE` in WAL mode, taken under a process-wide lock so that threads queue
fairly instead of polling SQLite's busy handler. `Database.transaction()` retries the
whole unit of work on deadlocks, serialization failures and "database is locked".

Transactions that lock a study row are run by the study's queue in this process
(`StudyQueue`): the units of work that arrive while one transaction of the study is in
flight are run together in the next transaction, in the order they arrived (group commit).
The row lock keeps replicas apart; the queue keeps this process's threads from piling up
on the row lock, and shares the lock, the reads of the study and the commit among the
work that waited, which is what made many workers on one study slow. The caller whose
thread runs a batch is the first to find no transaction of the study running; the others
wait on the queue's condition and return as soon as the transaction that ran their work
ends (with a plain lock they waited to take it, often behind the next batch).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from service.errors import Unavailable

from . import changes
from .engine import WRITE_OPTION, make_engine

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


MAX_BATCH = 32  # units of work in one transaction at most


@dataclass
class _Job(Generic[T]):
    work: Callable[[Session], T]
    done: bool = False
    result: T | None = None
    error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


UNREACHABLE = (OperationalError, InterfaceError, PoolTimeout)


def unavailable(exc: BaseException) -> Unavailable:
    """A database that cannot be reached, or a pool with no connection to spare, is
    `Unavailable` (503 with Retry-After): the caller should try again, not give up."""
    reason = getattr(exc, "orig", None) or exc
    return Unavailable(f"the database cannot be reached: {_first_line(reason)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class StudyQueue:
    """Units of work on one study waiting for their turn, whether a transaction of the study
    is running in this process (its thread runs the units that waited, as one batch), and
    the condition on which the other callers wait. It exists while some transaction on the
    study is in flight (`users` counts them)."""

    changed: threading.Condition = field(default_factory=threading.Condition)
    jobs: deque[_Job[Any]] = field(default_factory=deque)
    running: bool = False
    users: int = 0


class Database:
    def __init__(self, url: str, *, pool_size: int = 20, echo: bool = False):
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, echo=echo)
        self.dialect = self.engine.dialect.name
        self._read = changes.session_factory(self.engine)
        # Only SQLite's "begin" listener reads the option; a plain engine costs less per
        # statement than one with options.
        writer = (
            self.engine.execution_options(**{WRITE_OPTION: True})
            if self.dialect == "sqlite"
            else self.engine
        )
        self._write = changes.session_factory(writer)
        self._sqlite_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._queues: dict[int, StudyQueue] = {}
        self._queues_guard = threading.Lock()

    def join_study_queue(self, study_id: int) -> StudyQueue:
        """The study's queue, held until `leave_study_queue`; it exists only while somebody
        holds it (a request for a study id that does not exist leaves nothing behind)."""
        with self._queues_guard:
            queue = self._queues.setdefault(study_id, StudyQueue())
            queue.users += 1
            return queue

    def leave_study_queue(self, study_id: int, queue: StudyQueue) -> None:
        with self._queues_guard:
            queue.users -= 1
            if queue.users == 0:
                del self._queues[study_id]

    @contextmanager
    def read(self) -> Iterator[Session]:
        try:
            with self._read() as session, session.begin():
                yield session
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Session]:
        try:
            if self._sqlite_lock is None:
                with self._write() as session, session.begin():
                    yield session
                return
            with self._sqlite_lock, self._write() as session, session.begin():
                yield session
        except UNREACHABLE as exc:
            if is_retryable(exc):  # `transaction` retries these itself
                raise
            raise unavailable(exc) from exc

    def transaction(
        self, work: Callable[[Session], T], *, study: int | None = None, attempts: int = 8
    ) -> T:
        """Run `work` in one write transaction, again on a transient conflict. Pass the
        `study` whose row `work` locks: `work` then joins the study's queue and may share
        its transaction with other work on the study that arrived meanwhile, each seeing
        the changes of those before it, as if run one after the other."""
        if study is None:
            return self._retrying(work, attempts)
        job = _Job(work)
        queue = self.join_study_queue(study)
        try:
            with queue.changed:
                queue.jobs.append(job)
                while not job.done:
                    if queue.running:  # woken when it ends: this job may have been in it
                        queue.changed.wait()
                        continue
                    batch = [queue.jobs.popleft() for _ in range(min(MAX_BATCH, len(queue.jobs)))]
                    queue.running = True
                    queue.changed.release()
                    try:
                        self._run_batch(batch, attempts)
                    finally:
                        queue.changed.acquire()
                        queue.running = False
                        queue.changed.notify_all()
        finally:
            self.leave_study_queue(study, queue)
        return job.outcome()

    def _run_batch(self, batch: list[_Job[Any]], attempts: int) -> None:
        """One transaction for the whole batch; if any unit of work in it raises, the
        transaction is rolled back and each runs alone, so that one's error is its own."""
        try:
            if len(batch) > 1:
                try:
                    results = self._retrying(lambda s: [job.work(s) for job in batch], attempts)
                except Exception:
                    log.debug("a batch of %d failed; running them one by one", len(batch))
                else:
                    for job, result in zip(batch, results, strict=True):
                        job.result, job.done = result, True
                    return
            for job in batch:
                try:
                    job.result = self._retrying(job.work, attempts)
                except Exception as exc:
                    job.error = exc
                job.done = True
        finally:
            for job in batch:
                if not job.done:  # interrupted (BaseException): don't leave a caller waiting
                    job.error, job.done = RuntimeError("the transaction was interrupted"), True

    def _retrying(self, work: Callable[[Session], T], attempts: int) -> T:
        for attempt in range(attempts):
            try:
                with self.write() as session:
                    return work(session)
            except DBAPIError as exc:
                if not is_retryable(exc):
                    raise
                if attempt == attempts - 1:
                    raise unavailable(exc) from exc
                delay = min(0.5, 0.005 * 2**attempt) * (0.5 + random.random())
                log.info("transient database conflict, retrying in %.3fs: %s", delay, exc.orig)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
