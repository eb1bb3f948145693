"""The same differential test as tests/core, through the application layer and a real
database: what the SQL queries pick (the best unpromoted trial, the newest retry, dedup) must
match Keras Tuner's HyperbandOracle hand-out for hand-out."""

import uuid
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings

from rung.schemas import StudyCreate, TellRequest
from service.core.decisions import Done, Wait
from service.db.transactions import Database
from service.usecases import asking, studies, trials
from service.usecases.context import Context
from tests.core.kt_driver import Mismatch, Scenario, run_both
from tests.core.scenarios import SCENARIOS, random_scenarios

pytestmark = pytest.mark.filterwarnings("ignore")


class ServiceStudy:
    """The Rung side of the driver, through the use cases on a database."""

    def __init__(self, ctx: Context, sc: Scenario):
        self.ctx = ctx
        body = StudyCreate(
            name=f"parity-{uuid.uuid4().hex}",
            hyperparameters=sc.space.to_dicts(),
            objective={"name": "score", "direction": sc.direction},
            max_epochs=sc.max_epochs,
            factor=sc.factor,
            hyperband_iterations=sc.hyperband_iterations,
            seed=sc.seed,
            max_retries_per_trial=sc.max_retries_per_trial,
            max_consecutive_failed_trials=sc.max_consecutive_failed_trials,
        )
        self.study_id = int(studies.create_study(ctx, body)[0].id)
        self.holders: dict[int, str] = {}  # trial number -> the worker that asked for it

    def ask(self, worker):
        result = asking.ask(self.ctx, self.study_id, worker)
        if result.status == "wait":
            return Wait(seed_state=0)
        if result.status == "done":
            return Done(
                seed_state=0, reason=result.reason or "", failed=self.failed_reason is not None
            )
        t = result.trial  # as the API shows it
        number = int(t.id)
        self.holders[number] = worker
        return SimpleNamespace(
            number=number,
            values=t.hyperparameters,
            epochs=t.epochs,
            initial_epoch=t.initial_epoch,
            round=t.round,
            bracket=t.bracket,
            parent_number=None if t.parent_trial_id is None else int(t.parent_trial_id),
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
        study = studies.get_study(self.ctx, self.study_id)
        return study.reason if study.status == "failed" else None


@pytest.fixture
def ctx(database_url):
    db = Database(database_url, pool_size=2)
    yield Context(db=db)
    db.dispose()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_service_hands_out_what_keras_tuner_does(ctx, name):
    handouts, _ = run_both(SCENARIOS[name], make_rung=lambda sc, config: ServiceStudy(ctx, sc))
    assert handouts


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=random_scenarios())
def test_random_settings_match_on_sql(ctx, scenario):
    try:
        run_both(scenario, make_rung=lambda sc, config: ServiceStudy(ctx, sc))
    except Mismatch as exc:  # pragma: no cover - the message is the failure report
        pytest.fail(str(exc))
