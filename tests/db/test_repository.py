"""The repository's writes that go past the ORM: a new trial with the counters it moves
(which move only when the trial is inserted), and rows changed through `change`."""

import pytest
from sqlalchemy import select

from service.db import repository as repo
from service.db.models import BracketRow, StudyRow, TrialRow
from service.db.session import Database

from .test_constraints import seed_rows


@pytest.fixture
def db(database_url):
    database = Database(database_url, pool_size=2)
    yield database
    database.dispose()


def fields(study_id, bracket_id, number, values_hash):
    return {
        "study_id": study_id,
        "number": number,
        "bracket_id": bracket_id,
        "iteration": 0,
        "bracket": 1,
        "round": 0,
        "epochs": 1,
        "initial_epoch": 0,
        "values": {"x": number},
        "values_hash": values_hash,
        "status": "running",
        "worker_id": f"w{number}",
        "runs": 1,
        "failed_runs": 0,
        "lost_leases": 0,
        "promoted": False,
    }


def test_counters_move_only_with_an_inserted_trial(db):
    study_id, bracket_id = seed_rows(db)
    with db.write() as s:
        study = repo.lock_study(s, study_id)
        bracket = s.get(BracketRow, bracket_id)

        def insert(number, values_hash):
            return repo.insert_trial(
                s,
                fields(study_id, bracket_id, number, values_hash),
                on_insert=[
                    (study, {"trial_count": study.trial_count + 1}),
                    (bracket, {"active": bracket.active + 1}),
                ],
            )

        first = insert(0, "h")
        assert first is not None and first.values == {"x": 0} and first.status == "running"
        assert insert(1, "h") is None  # the same configuration: refused, nothing moves
        assert (study.trial_count, bracket.active) == (1, 1)
        assert insert(1, "other") is not None
        assert (study.trial_count, bracket.active) == (2, 2)
    with db.read() as s:
        assert s.scalars(select(StudyRow.trial_count)).one() == 2
        assert s.scalars(select(BracketRow.active)).one() == 2
        assert s.scalars(select(TrialRow.number).order_by(TrialRow.number)).all() == [0, 1]
        stored = s.scalars(select(TrialRow).where(TrialRow.number == 0)).one()
        assert (stored.id, stored.worker_id, stored.values) == (first.id, "w0", {"x": 0})
