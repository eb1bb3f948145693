"""Differential tests: Rung's core hands out exactly what Keras Tuner's HyperbandOracle does.

Both are driven with the same space, seed and scores (tests/core/kt_driver.py), sequentially
and with several simulated workers finishing in a random order; every hand-out is compared
(values, epochs, initial epoch, round, parent, bracket), and "wait"/"done" against IDLE/STOPPED.
"""

import pytest
from hypothesis import HealthCheck, given, settings

from rung.space import Choice, Int, SearchSpace
from service.core.decisions import Done
from service.core.schedule import Schedule

from .kt_driver import Mismatch, Scenario, run_both
from .scenarios import SCENARIOS, random_scenarios
from .spaces import CONDITIONAL, WIDE

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_scenarios_every_store_runs(name):
    """The SQL stores run these too (tests/db/test_keras_tuner_parity_sql.py)."""
    assert run_both(SCENARIOS[name])[0]


@pytest.mark.parametrize(
    "max_epochs, factor", [(81, 3), (10, 3), (100, 3), (27, 3), (243, 3), (16, 2)]
)
def test_sequential_matches_every_hand_out(max_epochs, factor):
    handouts, study = run_both(Scenario(WIDE, max_epochs, factor, seed=11))
    assert len(handouts) == Schedule(max_epochs, factor).trials_per_iteration()
    assert isinstance(study.ask("late"), Done)


@pytest.mark.parametrize("workers, order_seed", [(2, 1), (4, 2), (9, 3), (32, 4)])
@pytest.mark.parametrize("max_epochs", [27, 81])
def test_several_workers_match(workers, order_seed, max_epochs):
    handouts, _ = run_both(
        Scenario(WIDE, max_epochs, 3, seed=5, workers=workers, order_seed=order_seed)
    )
    assert len(handouts) == Schedule(max_epochs, 3).trials_per_iteration()


def test_conditional_space_matches():
    handouts, _ = run_both(Scenario(CONDITIONAL, 27, 3, seed=3, workers=3, order_seed=9))
    models = {h.values["model"] for h in handouts}
    assert models == {"mlp", "cnn"}
    for h in handouts:
        assert ("mlp_units" in h.values) == (h.values["model"] == "mlp")
        assert ("kernel" in h.values) == (h.values["model"] == "cnn")


def test_two_iterations_minimising_with_ties():
    handouts, _ = run_both(
        Scenario(WIDE, 9, 3, hyperband_iterations=2, direction="min", tie_scores=True, workers=3)
    )
    assert len(handouts) == 2 * Schedule(9, 3).trials_per_iteration()


def test_failures_nan_and_retries_match():
    handouts, study = run_both(
        Scenario(
            WIDE,
            27,
            3,
            seed=8,
            workers=5,
            order_seed=3,
            crash_rate=0.15,
            nan_rate=0.05,
            max_retries_per_trial=1,
        )
    )
    retried = [n for n in {h.number for h in handouts} if sum(h.number == n for h in handouts) > 1]
    assert retried, "the scenario should retry some trials"
    assert any(t.status == "failed" for t in study.trials), "and fail some for good"


def test_consecutive_failures_stop_both():
    _, study = run_both(
        Scenario(WIDE, 27, 3, seed=2, workers=2, crash_rate=0.7, max_consecutive_failed_trials=3)
    )
    assert study.failed_reason is not None and "3 trials failed in a row" in study.failed_reason
    answer = study.ask("another-worker")
    assert isinstance(answer, Done) and answer.failed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=random_scenarios())
def test_random_settings_match(scenario):
    try:
        run_both(scenario)
    except Mismatch as exc:  # pragma: no cover - the message is the failure report
        pytest.fail(str(exc))


def test_small_space_differs_on_purpose():
    """Keras Tuner #676: with 6 configurations, Keras Tuner never promotes anything in the
    81-trial bracket; Rung runs successive halving on the 6 it has."""
    tiny = SearchSpace((Int("a", 1, 3), Choice("b", ("x", "y"))))
    with pytest.raises(Mismatch) as differs:
        run_both(Scenario(tiny, 9, 3, seed=1))
    # the only difference: after the 6 configurations, Keras Tuner stops where Rung promotes
    assert str(differs.value).startswith("Keras Tuner stopped, Rung answered MemoryTrial(")
    assert "round=1, epochs=3, initial_epoch=1" in str(differs.value)
