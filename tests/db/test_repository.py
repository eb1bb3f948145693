"""The repository's writes that go past the ORM: a new trial with the counters it moves
(which move only when the trial is inserted), and rows changed through `change`."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm.decl_base import _declarative_constructor

from rung.schemas import StudyCreate, TellRequest
from service.db import repository as repo
from service.db.changes import change
from service.db.models import BracketRow, StudyRow, TrialRow
from service.usecases import asking, trials
from service.usecases.context import Context
from service.usecases.studies import create_study

from .test_constraints import seed_rows


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


def test_rows_read_past_the_orm_are_one_object_per_row_as_the_orm_loads_them(db):
    """A tell reads only a bracket's counters; an ask later in the same transaction reads
    the whole bracket: it gets the same object, whose changed counters are kept and whose
    other columns are filled in from that read (no statement of their own). An object
    read this way loads what it was not given when it is first read."""
    study_id, bracket_id = seed_rows(db)
    with db.write() as s:
        study = repo.lock_study(s, study_id)
        trial = repo.insert_trial(
            s,
            fields(study_id, bracket_id, 0, "h"),
            on_insert=[(study, {"trial_count": 1})],
        )
        assert trial is not None
    with db.write() as s:
        repo.lock_study(s, study_id)
        found = repo.trial_with_bracket(s, study_id, 0)
        assert found is not None
        told, counters = found
        assert told.id == trial.id and told.values == {"x": 0}
        assert {"sizes", "iteration"} <= inspect(counters).unloaded
        change(counters, active=counters.active + 5)
        statements = []
        event.listen(s.get_bind(), "before_cursor_execute", lambda *a: statements.append(a[2]))
        _held, brackets = repo.ask_rows(s, study_id, "w-none")
        assert brackets == [counters]  # the same object
        assert counters.active == 5  # kept, and written before the read
        assert not inspect(counters).unloaded  # filled in by the read
        assert len(statements) == 2  # the change, the read
        parent = repo.best_promotable(s, bracket_id, 0)
        assert parent is None  # nothing completed
        assert inspect(told).session is s and s.get(TrialRow, trial.id) is told
    with db.write() as s:
        study = repo.lock_study(s, study_id)
        assert study is not None and "settings" in inspect(study).unloaded
        assert study.settings == {}  # loaded when read
        assert repo.lock_study(s, study_id) is study  # locked once per transaction
    with db.read() as s:
        assert s.scalars(select(BracketRow.active)).one() == 5


@pytest.mark.parametrize("model", [StudyRow, BracketRow, TrialRow])
def test_rows_adopted_past_the_orm_skip_nothing_the_orm_would_do(model):
    """`rows.adopt` fills an object's attributes without the ORM's loading: a validator, a
    relationship, a load event or a constructor with logic added to a model would be
    skipped silently. This fails first, so whoever adds one adapts `adopt`."""
    mapper = inspect(model)
    assert not mapper.validators
    assert not mapper.relationships
    assert not mapper.synonyms and not mapper.composites
    assert not mapper.class_manager.dispatch.load and not mapper.class_manager.dispatch.refresh
    assert mapper.class_manager.original_init is _declarative_constructor
    assert all(len(attr.columns) == 1 for attr in mapper.column_attrs)


def test_a_row_read_past_the_orm_equals_the_row_the_orm_loads(db):
    study_id, bracket_id = seed_rows(db)
    with db.write() as s:
        study = repo.lock_study(s, study_id)
        repo.insert_trial(s, fields(study_id, bracket_id, 0, "h"), on_insert=[])
    with db.write() as s:
        found = repo.trial_with_bracket(s, study_id, 0)
        assert found is not None
        adopted = {
            attr.key: getattr(row, attr.key)
            for row in (repo.lock_study(s, study_id), *found)
            for attr in inspect(type(row)).column_attrs
        }
    with db.read() as s:
        loaded = {
            attr.key: getattr(row, attr.key)
            for row in (
                s.get(StudyRow, study_id),
                s.scalars(select(TrialRow)).one(),
                s.get(BracketRow, bracket_id),
            )
            for attr in inspect(type(row)).column_attrs
        }
    assert adopted == loaded and study is not None


def test_a_plain_assignment_to_a_hot_row_is_refused_and_flush_writes_the_queue(db):
    study_id, _ = seed_rows(db)
    refused = pytest.raises(TypeError, match="StudyRow changed by attribute assignment")
    with refused, db.write() as s:
        study = repo.lock_study(s, study_id)
        assert study is not None
        study.trial_count = 5  # would bypass the change queue
    with db.write() as s:
        study = repo.lock_study(s, study_id)
        assert study is not None
        change(study, trial_count=3)
        s.flush()
        assert s.connection().scalar(select(StudyRow.trial_count)) == 3
    with db.read() as s:
        assert s.scalars(select(StudyRow.trial_count)).one() == 3


def test_a_promotion_reads_its_parent_once(db):
    """An ask that promotes reads the parent with the round's best promotable trial and
    copies it from there: the parent is not read again (the ORM's look-up by id would load
    the rest of its row, one more statement in the study's critical section)."""
    ctx = Context(db=db)
    body = StudyCreate(
        name="promotion-statements",
        hyperparameters=[{"type": "float", "name": "x", "min_value": 0, "max_value": 1}],
        objective={"name": "loss", "direction": "min"},
        max_epochs=3,
        factor=3,
        hyperband_iterations=1,
        seed=1,
    )
    study_id = int(create_study(ctx, body)[0].id)
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    while True:
        statements.clear()
        answer = asking.ask(ctx, study_id, "w")
        assert answer.status == "run" and answer.trial is not None
        if answer.trial.parent_trial_id is not None:
            break
        metrics = {"loss": answer.trial.hyperparameters["x"]}
        tell = TellRequest(worker_id="w", metrics=metrics)
        trials.tell(ctx, study_id, int(answer.trial.id), tell)
    reads_of_trials = [s for s in statements if s.lstrip().startswith("SELECT") and "trials" in s]
    assert len(reads_of_trials) == 2, statements  # the worker's held trial, the best promotable


def test_renewing_a_lease_answers_the_trial_as_the_update_left_it(db):
    """A heartbeat is one UPDATE … RETURNING: the trial comes back with its new lease, also
    when the session had loaded it before; a worker that does not hold it gets None."""
    study_id, bracket_id = seed_rows(db)
    with db.write() as s:
        repo.insert_trial(s, fields(study_id, bracket_id, 0, "h"))  # running, held by w0
    later = datetime.now(UTC) + timedelta(hours=1)
    with db.write() as s:
        held = repo.get_trial(s, study_id, 0)
        assert held is not None and held.lease_expires_at is None
        assert repo.renew_lease(s, study_id, 0, "someone-else", later) is None
        renewed = repo.renew_lease(s, study_id, 0, "w0", later)
        assert renewed is held and renewed.lease_expires_at == later
    with db.read() as s:
        stored = repo.get_trial(s, study_id, 0)
        assert stored is not None and stored.lease_expires_at == later
