"""Transactions on one study: work that arrives while the study's transaction is in flight
shares the next one (group commit), each unit seeing the ones before it; an error stays
with the unit that raised it. And rows changed through `changes.change` are written."""

import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from rung.schemas import StudyCreate, TellRequest
from service.db import repository as repo
from service.db.changes import change
from service.db.models import BracketRow, StudyRow, TrialRow
from service.db.transactions import Database
from service.errors import NotFound
from service.usecases import asking, studies, trials
from service.usecases.context import Context

from .test_constraints import seed_rows


@pytest.fixture
def db(database_url):
    database = Database(database_url, pool_size=8)
    yield database
    database.dispose()


def counter(db, study_id):
    with db.read() as s:
        return s.scalars(select(StudyRow.trial_count).where(StudyRow.id == study_id)).one()


def bump_count(study_id, log, *, fail=False):
    """A unit of work: lock the study, add one to its counter, note what it saw."""

    def work(session):
        study = repo.lock_study(session, study_id)
        seen = study.trial_count
        change(study, trial_count=seen + 1)
        log.append((id(session), seen))
        if fail:
            raise NotFound("this one fails")
        return seen

    return work


def run_while_held(db, study_id, works):
    """Start each of `works` on its own thread while the study's turn is held, so that all
    of them queue; then let them run. Returns each one's result or exception."""
    calls = [lambda work=work: db.transaction(work, study=study_id) for work in works]
    return call_while_held(db, study_id, calls)


def call_while_held(db, study_id, calls):
    """Start each of `calls` (which run a transaction on the study) on its own thread while
    the study's turn is held, so that they queue in this order; then let them run."""
    results: list[object] = [None] * len(calls)

    def call(i):
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    with study_held(db, study_id) as queue:
        for i, thread in enumerate(threads):
            thread.start()
            while len(queue.jobs) < i + 1:  # queued in this order
                threading.Event().wait(0.001)
    for thread in threads:
        thread.join(timeout=30)
    return results


@contextmanager
def study_held(db, study_id):
    """The study's queue, as if one of its transactions were running until the block ends:
    work on the study queues meanwhile."""
    queue = db.join_study_queue(study_id)
    try:
        with queue.changed:
            queue.running = True
        yield queue
    finally:
        with queue.changed:
            queue.running = False
            queue.changed.notify_all()
        db.leave_study_queue(study_id, queue)


def test_queued_work_shares_one_transaction_in_arrival_order(db):
    study_id, _ = seed_rows(db)
    log: list[tuple[int, int]] = []
    results = run_while_held(db, study_id, [bump_count(study_id, log) for _ in range(5)])
    assert results == [0, 1, 2, 3, 4]  # each saw the ones before it
    assert len({session for session, _ in log}) == 1  # one transaction for all five
    assert counter(db, study_id) == 5


def test_work_returns_when_its_transaction_commits_not_after_the_next_one(db):
    """Five units share one transaction; while it runs, one more arrives, and its own
    transaction blocks. The five callers return without waiting for that one to end. (They
    used to wait for the study's lock, which the next transaction's thread may take first:
    this caught it in about one run of six, so the scenario runs a few times.)"""
    study_id, _ = seed_rows(db)
    for round in range(4):
        release = threading.Event()

        def slow(session, release=release):
            repo.lock_study(session, study_id)
            release.wait(600)  # longer than `call_while_held` waits for all the callers
            return "late"

        late = threading.Thread(target=db.transaction, args=(slow,), kwargs={"study": study_id})

        def arrive_during_the_batch(session, late=late):
            repo.lock_study(session, study_id)
            late.start()
            while not db._queues[study_id].jobs:  # queued behind this transaction
                threading.Event().wait(0.001)
            return "first"

        works = [bump_count(study_id, []) for _ in range(4)] + [arrive_during_the_batch]
        try:
            results = run_while_held(db, study_id, works)
        finally:
            release.set()
            late.join(timeout=30)
        assert results == [4 * round + i for i in range(4)] + ["first"]


def test_an_error_stays_with_the_work_that_raised_it(db):
    study_id, _ = seed_rows(db)
    log: list[tuple[int, int]] = []
    works = [bump_count(study_id, log, fail=(i == 2)) for i in range(5)]
    results = run_while_held(db, study_id, works)
    # The shared transaction was rolled back; each then ran alone, in order.
    assert isinstance(results[2], NotFound)
    assert results[:2] + results[3:] == [0, 1, 2, 3]
    assert counter(db, study_id) == 4  # the failed one's change was not kept


def test_changes_are_written_before_the_next_statement_and_at_commit(db):
    study_id, _ = seed_rows(db)
    with db.write() as s:
        study = repo.lock_study(s, study_id)
        change(study, trial_count=7, pending_count=2)
        assert not s.dirty  # not the ORM's unit of work
        stmt = select(StudyRow.trial_count, StudyRow.pending_count).where(StudyRow.id == study_id)
        assert s.execute(stmt).one() == (7, 2)  # written before this query
        change(study, trial_count=8)
    assert counter(db, study_id) == 8  # written at commit


def drive(ctx, study_id, held, *, shared):
    """One step of two workers: each tells its trial's result and asks again, in this
    order; `shared`: all four queued at once, so that they run in one transaction."""
    calls = []
    for worker in ("w0", "w1"):
        number = held[worker]
        if number is not None:
            body = TellRequest(metrics={"val_loss": (number * 7919 % 97) / 97}, worker_id=worker)
            calls.append(lambda n=number, b=body: trials.tell(ctx, study_id, n, b))
        calls.append(lambda w=worker: asking.ask(ctx, study_id, w))
    results = call_while_held(ctx.db, study_id, calls) if shared else [c() for c in calls]
    answers = [r for r in results if isinstance(r, asking.AskResult)]
    assert len(answers) == 2, results
    for worker, answer in zip(("w0", "w1"), answers, strict=True):
        held[worker] = int(answer.trial.id) if answer.status == "run" else None


def history(db, study_id):
    with db.read() as s:
        trial_rows = s.scalars(
            select(TrialRow).where(TrialRow.study_id == study_id).order_by(TrialRow.number)
        )
        found = [
            (t.number, t.status, t.bracket, t.round, t.epochs, t.values, t.parent_number, t.score)
            for t in trial_rows
        ]
        bracket_rows = s.scalars(
            select(BracketRow).where(BracketRow.study_id == study_id).order_by(BracketRow.id)
        )
        return found, [
            (b.iteration, b.bracket, b.sizes, b.created, b.completed, b.active, b.is_open)
            for b in bracket_rows
        ]


def test_tells_and_asks_sharing_transactions_decide_as_one_by_one(db):
    """The same study driven twice, the same requests in the same order: one by one, and
    each step's tells and asks queued into one shared transaction (a tell reads only part
    of its bracket; an ask after it in the transaction reads the whole of it)."""
    ctx = Context(db)
    spec = {
        "objective": "val_loss",
        "max_epochs": 9,
        "factor": 3,
        "hyperband_iterations": 1,
        "seed": 11,
        "hyperparameters": [
            {"type": "float", "name": "lr", "min_value": 1e-4, "max_value": 1e-1},
            {"type": "int", "name": "units", "min_value": 8, "max_value": 512},
        ],
    }
    runs = []
    for shared in (False, True):
        study = studies.create_study(ctx, StudyCreate(name=f"shared-{shared}", **spec))[0]
        held: dict[str, int | None] = {"w0": None, "w1": None}
        for _ in range(14):
            drive(ctx, int(study.id), held, shared=shared)
        runs.append(history(db, int(study.id)))
    one_by_one, shared_runs = runs
    assert len(one_by_one[0]) > 10 and any(t[3] > 0 for t in one_by_one[0])  # promotions
    assert shared_runs == one_by_one


@pytest.mark.postgres
def test_a_result_is_described_by_its_own_columns(postgres_database):
    """The engine's cursor builds a result's `description` once per connection and shape
    (engine._DescribedCursor): results of other shapes, run in between, are described by
    their own columns, and one that returns no rows by None, as psycopg does."""
    import psycopg

    from service.db.engine import make_engine

    engine = make_engine(postgres_database, pool_size=1)
    shapes = [
        "SELECT 1 AS a",
        "SELECT 'x'::text AS b, 2.5::float8 AS c",
        "SELECT 1 AS a, 2 AS b",
        "SELECT 1::bigint AS a",
        "SELECT 'y'::varchar(7) AS b, 3.5::float8 AS c",
    ]
    try:
        with (
            engine.connect() as conn,
            psycopg.connect(postgres_database.replace("postgresql+psycopg", "postgresql")) as plain,
        ):
            cursor = conn.connection.driver_connection.cursor()
            reference = plain.cursor()
            assert type(cursor).__name__ == "_DescribedCursor"
            for sql in shapes * 2:
                cursor.execute(sql)
                reference.execute(sql)
                got = [(c.name, c.type_code, c.internal_size) for c in cursor.description]
                want = [(c.name, c.type_code, c.internal_size) for c in reference.description]
                assert got == want, sql
                assert cursor.fetchall() == reference.fetchall()
            cursor.execute("SELECT 1 AS a")
            first = cursor.description
            cursor.execute("SELECT 2 AS a")
            assert cursor.description is first  # built once for this shape
            cursor.execute("SET application_name = 'rung-test'")
            assert cursor.description is None
    finally:
        engine.dispose()


def test_a_study_queue_lives_only_while_work_on_the_study_is_in_flight(db):
    """Each study id a request names got a queue that was never dropped: about 1 KB per
    distinct id, unknown ones included (20k unknown ids: 20 MB)."""
    study_id, _ = seed_rows(db)

    def missing(session):
        raise NotFound("no such study")

    for unknown in range(10_000, 12_000):
        with pytest.raises(NotFound):
            db.transaction(missing, study=unknown)
    results = run_while_held(db, study_id, [bump_count(study_id, []) for _ in range(3)])
    assert results == [0, 1, 2]
    assert db._queues == {}
