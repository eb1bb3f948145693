"""The same differential test as tests/core, through the application layer and a real
database: what the SQL queries pick (the best unpromoted trial, the newest retry, dedup) must
match Keras Tuner's HyperbandOracle hand-out for hand-out."""

from types import SimpleNamespace

import pytest

from rung.schemas import StudyCreate, TellRequest
from service.core.decisions import Done, Wait
from service.db.session import Database
from service.usecases import asking, studies, trials
from service.usecases.context import Context
from tests.core.kt_driver import Scenario, run_both
from tests.core.spaces import CONDITIONAL, WIDE

pytestmark = pytest.mark.filterwarnings("ignore")


class ServiceStudy:
    """The Rung side of the driver, through the use cases on a database."""

    def __init__(self, ctx: Context, sc: Scenario):
        self.ctx = ctx
        body = StudyCreate(
            name=f"parity-{id(sc)}",
            hyperparameters=sc.space.to_dicts(),
            objective={"name": "score", "direction": sc.direction},
            max_epochs=sc.max_epochs,
            factor=sc.factor,
            hyperband_iterations=sc.hyperband_iterations,
            seed=sc.seed,
            max_retries_per_trial=sc.max_retries_per_trial,
            max_consecutive_failed_trials=sc.max_consecutive_failed_trials,
        )
        self.study_id = studies.create_study(ctx, body)[0].id
        self.holders: dict[int, str] = {}  # trial number -> the worker that asked for it

    def ask(self, worker):
        result = asking.ask(self.ctx, self.study_id, worker)
        if result.status == "wait":
            return Wait(seed_state=0)
        if result.status == "done":
            return Done(
                seed_state=0, reason=result.reason or "", failed=self.failed_reason is not None
            )
        t = result.trial
        self.holders[t.number] = worker
        return SimpleNamespace(
            number=t.number,
            values=t.values,
            epochs=t.epochs,
            initial_epoch=t.initial_epoch,
            round=t.round,
            bracket=t.bracket,
            parent=t.parent_number,
            failed_runs=t.failed_runs,
        )

    def tell(self, number, *, score=None, error=None):
        worker = self.holders[number]
        if error is None and score != score:  # NaN cannot travel over JSON: a failed run
            error = "objective is NaN"
        if error is not None:
            body = TellRequest(status="failed", error=error, worker_id=worker)
        else:
            body = TellRequest(metrics={"score": score}, worker_id=worker)
        trials.tell(self.ctx, self.study_id, number, body)

    @property
    def failed_reason(self):
        study = studies.get_study(self.ctx, self.study_id).study
        return study.reason if study.status == "failed" else None


@pytest.fixture
def ctx(database_url):
    db = Database(database_url, pool_size=2)
    yield Context(db=db)
    db.dispose()


@pytest.mark.parametrize(
    "scenario",
    [
        Scenario(WIDE, 27, 3, seed=4),
        Scenario(WIDE, 27, 3, seed=9, workers=7, order_seed=3),
        Scenario(
            CONDITIONAL,
            9,
            3,
            seed=2,
            workers=3,
            hyperband_iterations=2,
            direction="min",
            tie_scores=True,
        ),
        Scenario(
            WIDE, 9, 3, seed=6, workers=4, crash_rate=0.2, nan_rate=0.1, max_retries_per_trial=1
        ),
    ],
    ids=["sequential", "seven-workers", "conditional-ties", "failures"],
)
def test_the_service_hands_out_what_keras_tuner_does(ctx, scenario):
    handouts, _ = run_both(scenario, make_rung=lambda sc, config: ServiceStudy(ctx, sc))
    assert handouts
