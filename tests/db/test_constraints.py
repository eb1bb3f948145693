"""The database itself refuses what must never happen, whatever the code above it does."""

import pytest
from sqlalchemy.exc import IntegrityError

from service.db.models import BracketRow, StudyRow, TrialRow


def seed_rows(db):
    with db.write() as s:
        study = StudyRow(name="s", settings={}, space=[], seed=1, seed_state=1)
        s.add(study)
        s.flush()
        bracket = BracketRow(
            study_id=study.id,
            iteration=0,
            bracket=1,
            sizes=[3, 1],
            created=[0, 0],
            completed=[0, 0],
        )
        s.add(bracket)
        s.flush()
        return study.id, bracket.id


def trial(study_id, bracket_id, number, **fields):
    values = dict(
        iteration=0, bracket=1, round=0, epochs=1, initial_epoch=0, values={}, status="completed"
    )
    values.update(fields)
    return TrialRow(study_id=study_id, bracket_id=bracket_id, number=number, **values)


@pytest.mark.parametrize(
    "first, second",
    [
        ({"number": 0}, {"number": 0}),
        ({"number": 0, "values_hash": "h"}, {"number": 1, "values_hash": "h"}),
        (
            {"number": 0, "status": "running", "worker_id": "w"},
            {"number": 1, "status": "running", "worker_id": "w"},
        ),
    ],
)
def test_duplicates_are_refused(db, first, second):
    study_id, bracket_id = seed_rows(db)
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(trial(study_id, bracket_id, **first))
        s.flush()
        s.add(trial(study_id, bracket_id, **second))
        s.flush()


def test_a_trial_is_promoted_once(db):
    study_id, bracket_id = seed_rows(db)
    with db.write() as s:
        parent = trial(study_id, bracket_id, 0)
        s.add(parent)
        s.flush()
        parent_id = parent.id
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(trial(study_id, bracket_id, 1, round=1, parent_id=parent_id))
        s.add(trial(study_id, bracket_id, 2, round=1, parent_id=parent_id))
        s.flush()


def test_one_worker_may_hold_trials_that_are_not_running(db):
    study_id, bracket_id = seed_rows(db)
    with db.write() as s:  # the unique index covers running trials only
        s.add(trial(study_id, bracket_id, 0, status="completed", worker_id="w"))
        s.add(trial(study_id, bracket_id, 1, status="running", worker_id="w"))
        s.flush()
