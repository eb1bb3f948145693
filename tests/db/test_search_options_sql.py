"""The search options through the use cases and a real database: with `"scheduler":
"async"` and `"sampler": "bohb"`, the SQL store's look-ups (a round's rank, BOHB's results
read incrementally between asks) hand out exactly what the in-memory reference store does."""

import math
import random
import uuid

import pytest

from rung.schemas import StudyCreate, TellRequest
from service.core.memory import MemoryStudy, MemoryTrial
from service.db.transactions import Database
from service.usecases import asking, trials
from service.usecases.context import Context, build_config
from service.usecases.studies import create_study
from tests.core.spaces import CONDITIONAL, WIDE


@pytest.fixture
def ctx(database_url):
    db = Database(database_url, pool_size=2)
    yield Context(db=db)
    db.dispose()


def score(values, epochs):
    lr = math.log10(values["learning_rate"]) + 2.5
    return round(1 - lr * lr / 4 - 0.3 / epochs + 0.01 * len(str(sorted(values.items()))), 9)


@pytest.mark.parametrize(
    ("space", "scheduler", "sampler"),
    [(WIDE, "async", "bohb"), (CONDITIONAL, "async", "random"), (WIDE, "hyperband", "bohb")],
    ids=["wide-async-bohb", "conditional-async", "wide-bohb"],
)
def test_the_sql_store_hands_out_what_the_memory_store_does(ctx, space, scheduler, sampler):
    body = StudyCreate(
        name=f"options-{uuid.uuid4().hex}",
        hyperparameters=space.to_dicts(),
        objective={"name": "score", "direction": "max"},
        max_epochs=27,
        factor=3,
        hyperband_iterations=2,
        seed=11,
        scheduler=scheduler,
        sampler=sampler,
    )
    study_id = int(create_study(ctx, body)[0].id)
    stored = body.model_dump(exclude={"name"}, mode="json")
    memory = MemoryStudy(build_config(stored, stored["hyperparameters"]), seed=11)
    rng = random.Random(5)
    running: dict[str, int] = {}
    handouts = 0
    while True:
        for worker in (f"w{i}" for i in range(6)):
            if worker in running:
                continue
            ours = memory.ask(worker)
            sql = asking.ask(ctx, study_id, worker)
            if not isinstance(ours, MemoryTrial):
                assert sql.status != "run", (handouts, ours, sql)
                continue
            trial = sql.trial
            assert sql.status == "run" and int(trial.id) == ours.number, handouts
            assert trial.hyperparameters == ours.values
            assert (trial.bracket, trial.round, trial.epochs) == (
                ours.bracket,
                ours.round,
                ours.epochs,
            )
            parent = None if trial.parent_trial_id is None else int(trial.parent_trial_id)
            assert parent == ours.parent_number
            running[worker] = ours.number
            handouts += 1
        if not running:
            break
        for worker in rng.sample(sorted(running), k=min(len(running), rng.randint(1, 3))):
            number = running.pop(worker)
            trial = memory.trials[number]
            value = score(trial.values, trial.epochs)
            memory.tell(number, score=value)
            trials.tell(
                ctx, study_id, number, TellRequest(metrics={"score": value}, worker_id=worker)
            )
    assert memory.status == "done" and handouts == len(memory.trials) > 100
    if sampler == "bohb":
        assert memory.history().seen == len(memory.trials)
