"""Transactions on one study: work that arrives while the study's transaction is in flight
shares the next one (group commit), each unit seeing the ones before it; an error stays
with the unit that raised it. And rows changed through `repository.change` are written."""

import threading

import pytest
from sqlalchemy import select

from service.db import repository as repo
from service.db.models import StudyRow
from service.db.session import Database
from service.errors import NotFound

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
        repo.change(study, trial_count=seen + 1)
        log.append((id(session), seen))
        if fail:
            raise NotFound("this one fails")
        return seen

    return work


def run_while_held(db, study_id, works):
    """Start each of `works` on its own thread while the study's turn is held, so that all
    of them queue; then let them run. Returns each one's result or exception."""
    queue = db.study_queue(study_id)
    results: list[object] = [None] * len(works)

    def call(i):
        try:
            results[i] = db.transaction(works[i], study=study_id)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(works))]
    with queue.turn:
        for i, thread in enumerate(threads):
            thread.start()
            while len(queue.jobs) < i + 1:  # queued in this order
                threading.Event().wait(0.001)
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_queued_work_shares_one_transaction_in_arrival_order(db):
    study_id, _ = seed_rows(db)
    log: list[tuple[int, int]] = []
    results = run_while_held(db, study_id, [bump_count(study_id, log) for _ in range(5)])
    assert results == [0, 1, 2, 3, 4]  # each saw the ones before it
    assert len({session for session, _ in log}) == 1  # one transaction for all five
    assert counter(db, study_id) == 5


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
        repo.change(study, trial_count=7, pending_count=2)
        assert not s.dirty  # not the ORM's unit of work
        stmt = select(StudyRow.trial_count, StudyRow.pending_count).where(StudyRow.id == study_id)
        assert s.execute(stmt).one() == (7, 2)  # written before this query
        repo.change(study, trial_count=8)
    assert counter(db, study_id) == 8  # written at commit
