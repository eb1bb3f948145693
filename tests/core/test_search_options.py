"""The two search options in the core: `"scheduler": "async"` (ASHA's promotions over Keras
Tuner's brackets) and `"sampler": "bohb"` (BOHB's model-based draws). Their defaults are
Keras Tuner's (tests/core/test_keras_tuner_parity.py)."""

import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rung.space import Boolean, Choice, Condition, Float, Int, SearchSpace
from service.core import bohb
from service.core.decisions import Promote, StartTrial
from service.core.hyperband import decide
from service.core.memory import COMPLETED, MemoryTrial

from .spaces import CONDITIONAL, WIDE
from .test_hyperband import make_study, simulate


def ladder(study):
    """Trials per (iteration, bracket, round)."""
    return Counter((t.iteration, t.bracket, t.round) for t in study.trials)


def assert_covers_plan(ran, planned):
    """An async ladder: Keras Tuner's new configurations, and every later round at least
    as full as Keras Tuner's (ASHA may promote more than the plan, never fewer)."""
    assert set(ran) == set(planned)
    for (iteration, bracket, round), count in planned.items():
        assert ran[iteration, bracket, round] >= count
        if round == 0:
            assert ran[iteration, bracket, 0] == count


# -- async ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    max_epochs=st.integers(1, 90),
    factor=st.integers(2, 5),
    iterations=st.integers(1, 2),
    workers=st.integers(1, 30),
    seed=st.integers(1, 10_000),
    order=st.integers(0, 2**32),
)
def test_async_runs_keras_tuners_brackets_and_leaves_no_top_trial_behind(
    max_epochs, factor, iterations, workers, seed, order
):
    """Whatever the workers and finishing order, an async study runs Keras Tuner's new
    configurations bracket by bracket, every round at least as full as Keras Tuner's plan,
    and, as in ASHA, every trial that ends in the top ⌊n/factor⌋ of its round's n completed
    trials is promoted (where the bracket has a next round). Each promotion
    continues its parent from its epochs, and no trial is promoted twice."""
    rng = random.Random(order)
    asynchronous = make_study(max_epochs, factor, iterations, seed=seed, scheduler="async")
    synchronous = make_study(max_epochs, factor, iterations, seed=seed)
    simulate(asynchronous, workers=workers, rng=rng)
    simulate(synchronous, workers=workers, rng=random.Random(order))
    assert asynchronous.status == "done"
    assert_covers_plan(ladder(asynchronous), ladder(synchronous))
    rounds: dict[tuple[int, int], list[MemoryTrial]] = {}
    for trial in asynchronous.trials:
        rounds.setdefault((trial.bracket_id, trial.round), []).append(trial)
    for (bracket_id, round), trials in rounds.items():
        if (bracket_id, round + 1) not in rounds:
            assert not any(t.promoted for t in trials)
            continue
        ranked = sorted(trials, key=lambda t: (t.score_key, t.number))
        top = len(trials) // factor
        assert all(t.promoted for t in ranked[:top])
    parents = [t.parent_id for t in asynchronous.trials if t.parent_id is not None]
    assert len(parents) == len(set(parents))
    for trial in asynchronous.trials:
        if trial.parent_id is not None:
            parent = asynchronous.trials[trial.parent_id]
            assert parent.status == COMPLETED and trial.initial_epoch == parent.epochs
            assert trial.values == parent.values and trial.round == parent.round + 1


def test_async_with_a_finite_budget_opens_the_longest_trials_bracket_first():
    """With a finite `hyperband_iterations`, each iteration of an async study opens bracket
    0 (every trial trains max_epochs) first and the most aggressive last, so that a long
    trial does not start at the end; without end, and with Keras Tuner's scheduler, the
    order stays Keras Tuner's (the most aggressive first)."""

    def opened(study):
        order = []
        for trial in study.trials:
            if (trial.iteration, trial.bracket) not in order:
                order.append((trial.iteration, trial.bracket))
        return order

    finite = make_study(9, 3, 2, scheduler="async")
    simulate(finite, workers=4, rng=random.Random(1))
    assert opened(finite) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert finite.trials[0].epochs == 9
    keras_tuner = make_study(9, 3, 2)
    simulate(keras_tuner, workers=4, rng=random.Random(1))
    assert opened(keras_tuner) == [(0, 2), (0, 1), (0, 0), (1, 2), (1, 1), (1, 0)]
    unbounded = make_study(9, 3, None, scheduler="async")
    assert [unbounded.ask(f"w{i}").bracket for i in range(12)] == [2] * 9 + [1] * 3


# The promotion tests below run without end, where an async study keeps Keras Tuner's
# order (the most aggressive bracket first).


def run_round_zero(study, scores):
    """Hand out round 0's trials, then complete the first len(scores) of them."""
    handed = [study.ask(f"w{i}") for i in range(9)]
    assert all(isinstance(t, MemoryTrial) and t.round == 0 for t in handed)
    for trial, score in zip(handed, scores, strict=False):
        study.tell(trial.number, score=score)
    return handed


def test_async_promotes_the_top_third_as_soon_as_it_is_known():
    """R=9, factor 3: bracket 2 runs 9 trials for 1 epoch, then 3 for 3. Three of the nine
    done: the best of them is in the top ⌊3/3⌋ and async promotes it at once, where Keras
    Tuner waits until 7 are done (more than size(0) - size(1) = 6)."""
    study = make_study(9, 3, None, scheduler="async", direction="max")
    handed = run_round_zero(study, [0.2, 0.9, 0.5])
    decision = decide(study.config, study)
    assert isinstance(decision, Promote)
    assert decision.parent == handed[1].number and decision.round == 1
    assert decision.epochs == 3 and decision.initial_epoch == 1

    keras_tuner = make_study(9, 3, direction="max")
    run_round_zero(keras_tuner, [0.2, 0.9, 0.5])
    assert isinstance(decide(keras_tuner.config, keras_tuner), StartTrial)  # bracket 1


def test_async_does_not_promote_a_trial_outside_the_top():
    """Six of nine done: ⌊6/3⌋ = 2. Once the two best are promoted, the third best is not
    in the top 2 and is not promoted; once the round completes, Keras Tuner's rule gives it
    the round's third place."""
    study = make_study(9, 3, None, scheduler="async", direction="max")
    handed = run_round_zero(study, [0.9, 0.8, 0.7, 0.1, 0.2, 0.3])
    first, second = study.ask("a"), study.ask("b")
    assert (first.parent_id, second.parent_id) == (handed[0].number, handed[1].number)
    assert study.promotable_in_top(0, 0, 2) is None  # 0.7 ranks third
    third = study.ask("c")
    assert third.round == 0  # a new configuration of bracket 1, not a promotion
    for trial in handed[6:]:
        study.tell(trial.number, score=0.0)  # round 0 complete: Keras Tuner's rule applies
    assert study.ask("d").parent_id == handed[2].number


def test_async_promotes_from_the_highest_rung_first():
    """With promotions possible into round 1 and round 2, the one with more epochs comes
    first: the longest trials start first."""
    study = make_study(9, 3, None, scheduler="async", direction="max")
    handed = run_round_zero(study, [0.9, 0.8, 0.7])
    promoted = study.ask("p")  # round 1 from 0.9
    study.tell(promoted.number, score=0.95)
    for trial in handed[3:]:
        study.tell(trial.number, score=0.1)
    # Round 0 complete (two places left in round 1), round 1 has one completed trial: the
    # top ⌊1/3⌋ = 0 of round 1 promotes nothing yet; the next promotions fill round 1.
    assert study.ask("q").round == 1
    second = study.ask("r")
    assert second.round == 1
    study.tell(second.number, score=0.5)
    study.tell(study.trials[-2].number, score=0.4)
    top = study.ask("s")
    assert top.round == 2 and top.parent_id == promoted.number and top.epochs == 9


# -- bohb -------------------------------------------------------------------------------


def test_bohb_without_a_model_draws_what_random_draws():
    """Until a budget has enough results, BOHB's draws are Keras Tuner's random ones."""
    random_study = make_study(27, 3, seed=5)
    bohb_study = make_study(27, 3, seed=5, sampler="bohb")
    for i in range(5):
        a, b = random_study.ask(f"w{i}"), bohb_study.ask(f"w{i}")
        assert a.values == b.values
    assert random_study.seed_state == bohb_study.seed_state


@pytest.mark.parametrize("space", [WIDE, CONDITIONAL], ids=["wide", "conditional"])
def test_encode_then_decode_gives_the_configuration_back(space):
    from service.core.sampler import sample_values

    dims = bohb.dimensions(space)
    state = 1
    for _ in range(200):
        values, state = sample_values(space, state)
        point = bohb.encode(dims, values)
        assert all(
            0 <= x <= max(bohb.levels(hp), 1) for x, hp in zip(point, dims, strict=True) if x == x
        )
        decoded = bohb.decode(space, dims, point)
        assert decoded.keys() == values.keys()
        for name, value in values.items():  # a float comes back within rounding
            assert type(decoded[name]) is type(value)
            if isinstance(value, float):
                assert decoded[name] == pytest.approx(value, rel=1e-12)
            else:
                assert decoded[name] == value


def peak(values):
    """A score that peaks at lr=1e-2, units=256, tanh."""
    lr = math.log10(values["learning_rate"]) + 2
    return -(lr**2) - ((values["units"] - 256) / 256) ** 2 - (values["activation"] != "tanh")


def test_bohb_draws_near_the_good_results_once_it_has_a_model():
    """Fed 60 results at one budget, two thirds of BOHB's draws come from the model, and
    they score better than random draws on average; the same history and seed state give
    the same draws."""
    from service.core.sampler import sample_values

    space = SearchSpace(
        (
            Float("learning_rate", 1e-4, 1e-1, sampling="log"),
            Int("units", 16, 512, step=16),
            Choice("activation", ("relu", "tanh", "gelu")),
        )
    )
    history, state = bohb.History(), 100
    results = []
    for _ in range(60):
        values, state = sample_values(space, state)
        results.append(_Result(9, values, -peak(values)))
    bohb.read_results(history, space, results)
    generator = bohb.Generator(space, lambda: history)
    drawn = [generator.draw(s)[0] for s in range(1000, 1200)]
    randoms = [sample_values(space, s)[0] for s in range(5000, 5200)]
    assert np.mean([peak(v) for v in drawn]) > np.mean([peak(v) for v in randoms]) + 0.3
    again = bohb.Generator(space, lambda: history)
    assert [again.draw(s)[0] for s in range(1000, 1200)] == drawn


class _Result:
    def __init__(self, epochs, values, score_key):
        self.epochs, self.values, self.score_key = epochs, values, score_key


def test_bohb_models_the_largest_budget_with_enough_results():
    """d + 1 results are the minimum, and the bad density needs more than d points too: 3
    dimensions need 8 results (4 good, 4 bad); the largest such budget is modelled."""
    space = SearchSpace((Float("a", 0, 1), Float("b", 0, 1), Boolean("c")))
    rng = random.Random(1)

    def results(epochs, n):
        return [
            _Result(epochs, {"a": rng.random(), "b": rng.random(), "c": rng.random() < 0.5}, i)
            for i in range(n)
        ]

    history = bohb.History()
    bohb.read_results(history, space, results(1, 20) + results(9, 7))
    dims = bohb.dimensions(space)
    assert bohb.fit(history, dims, np.random.default_rng(0)).budget == 1
    bohb.read_results(history, space, results(9, 1))
    model = bohb.fit(history, dims, np.random.default_rng(0))
    assert model.budget == 9 and len(model.good.data) == 4 and len(model.bad.data) == 4
    assert history.seen == 28


def test_bohb_counts_a_failed_trial_as_the_worst_result():
    space = SearchSpace((Float("a", 0, 1),))
    history = bohb.History()
    bohb.read_results(history, space, [_Result(3, {"a": 0.5}, None), _Result(3, {"a": 0.1}, 2)])
    assert history.losses[3] == [math.inf, 2]


def test_bohb_imputes_inactive_values_from_a_row_where_they_are_active():
    space = SearchSpace(
        (
            Choice("model", ("mlp", "cnn")),
            Int("units", 32, 256, step=32, conditions=(Condition("model", ("mlp",)),)),
        )
    )
    dims = bohb.dimensions(space)
    rows = np.array(
        [bohb.encode(dims, {"model": "cnn"}), bohb.encode(dims, {"model": "mlp", "units": 64})]
    )
    assert math.isnan(rows[0, 1])
    filled = bohb._impute(rows, np.array([2, 0]), np.random.default_rng(0))
    assert filled[0, 1] == rows[1, 1] and not np.isnan(filled).any()


def test_a_bohb_study_runs_to_the_end_with_many_workers():
    """BOHB with the async scheduler on the conditional space: the study completes Keras
    Tuner's ladder (or more, as async may), every configuration is new and valid."""
    study = make_study(27, 3, 2, seed=3, space=CONDITIONAL, scheduler="async", sampler="bohb")
    rng = random.Random(2)
    simulate(
        study, workers=7, rng=rng, score=lambda t: -abs(math.log10(t.values["learning_rate"]) + 3)
    )
    assert study.status == "done"
    assert_covers_plan(
        ladder(study), ladder(_finished(make_study(27, 3, 2, seed=3, space=CONDITIONAL)))
    )
    sampled = [t for t in study.trials if t.parent_id is None]
    assert len({t.values_hash for t in sampled}) == len(sampled)
    for trial in sampled:  # an active hyperparameter has a valid value, an inactive none
        for hp in CONDITIONAL:
            if hp.is_active(trial.values):
                assert hp.contains(trial.values[hp.name])
            else:
                assert hp.name not in trial.values
    assert study.result_count == len(study.trials) == study.history().seen


def _finished(study):
    simulate(study, workers=7, rng=random.Random(2))
    return study
