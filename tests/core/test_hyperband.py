"""Property tests of the Hyperband core (no database): the schedule's invariants hold for
random settings, completion orders and scores."""

import math
import random
from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rung.space import Choice, Fixed, Int, SearchSpace
from service.core.decisions import Done, Wait
from service.core.hyperband import REASON_COMPLETED, REASON_EXHAUSTED
from service.core.memory import COMPLETED, FAILED, PENDING, MemoryStudy, MemoryTrial
from service.core.objective import parse_objective
from service.core.schedule import Schedule
from service.core.state import StudyConfig

from .spaces import WIDE


def make_study(max_epochs=27, factor=3, iterations=1, seed=1, space=WIDE, direction="max", **kw):
    config = StudyConfig(
        schedule=Schedule(max_epochs, factor, iterations),
        objective=parse_objective({"name": "score", "direction": direction}),
        space=space,
        **kw,
    )
    return MemoryStudy(config, seed=seed)


def simulate(study, *, workers, rng, score=None, fail=None, max_steps=100_000):
    """Run workers until done; each step one random holder finishes. Returns hand-outs."""
    score = score or (lambda t: rng.random())
    holding: dict[str, MemoryTrial] = {}
    idle = [f"w{i}" for i in range(workers)]
    handouts, waits = [], 0
    for _ in range(max_steps):
        while idle:
            worker = idle.pop()
            answer = study.ask(worker)
            if isinstance(answer, MemoryTrial):
                holding[worker] = answer
                handouts.append(answer)
            elif isinstance(answer, Wait):
                waits += 1
                assert holding, "wait with nothing running"
                idle.insert(0, worker)
                break
            else:
                assert not holding or study.failed_reason, "done while trials still run"
        if not holding:
            return handouts, waits
        worker = rng.choice(sorted(holding))
        trial = holding.pop(worker)
        if fail and fail(trial):
            study.tell(trial.number, error="boom")
        else:
            study.tell(trial.number, score=score(trial))
        idle.append(worker)
    raise AssertionError("did not finish")


settings_kw = dict(max_examples=60, deadline=None)


@settings(**settings_kw)
@given(
    max_epochs=st.integers(1, 90),
    factor=st.integers(2, 6),
    iterations=st.integers(1, 2),
    workers=st.integers(1, 40),
    seed=st.integers(1, 10_000),
    order=st.integers(0, 2**32),
    direction=st.sampled_from(["min", "max"]),
)
def test_invariants_without_failures(
    max_epochs, factor, iterations, workers, seed, order, direction
):
    rng = random.Random(order)
    study = make_study(max_epochs, factor, iterations, seed, direction=direction)
    schedule = study.config.schedule
    scores: dict[int, float] = {}
    handouts, _ = simulate(
        study,
        workers=workers,
        rng=rng,
        score=lambda t: scores.setdefault(t.number, rng.choice([rng.random(), 0.5])),
    )
    # Every round has exactly its planned number of trials, with Keras Tuner's epochs.
    per_round = Counter((t.iteration, t.bracket, t.round) for t in handouts)
    for it in range(iterations):
        for b in range(schedule.num_brackets):
            for r in range(b + 1):
                assert per_round[(it, b, r)] == schedule.size(b, r)
    for t in handouts:
        assert t.epochs == schedule.epochs(t.bracket, t.round)
        assert t.initial_epoch == schedule.initial_epoch(t.bracket, t.round)
        assert (t.parent_number is None) == (t.round == 0)
        if t.parent_number is not None:
            parent = study.trials[t.parent_number]
            assert parent.values == t.values
            assert (parent.bracket_id, parent.round + 1) == (t.bracket_id, t.round)
            assert parent.epochs == t.initial_epoch
    assert len(handouts) == len(study.trials) == iterations * schedule.trials_per_iteration()
    # The promoted set of each round is the top-size(r) of the round before (ties: earliest).
    key = study.config.objective.key
    rounds = defaultdict(list)
    for t in study.trials:
        rounds[(t.bracket_id, t.round)].append(t)
    for (bracket_key, r), trials in rounds.items():
        if r == 0:
            continue
        previous = sorted(rounds[(bracket_key, r - 1)], key=lambda t: (key(t.score), t.number))
        assert {t.parent_number for t in trials} == {t.number for t in previous[: len(trials)]}
    assert all(t.status == COMPLETED for t in study.trials)
    final = study.ask("late")
    assert isinstance(final, Done) and final.reason == REASON_COMPLETED


@settings(**settings_kw)
@given(seed=st.integers(1, 10_000), workers=st.integers(1, 20), order=st.integers(0, 2**32))
def test_determinism_for_a_seed(seed, workers, order):
    def run():
        study = make_study(27, 3, seed=seed)
        rng = random.Random(order)
        handouts, _ = simulate(study, workers=workers, rng=rng)
        return [(t.number, t.values, t.epochs, t.parent_number) for t in handouts]

    assert run() == run()


@settings(**settings_kw)
@given(
    max_epochs=st.integers(3, 40),
    workers=st.integers(1, 12),
    order=st.integers(0, 2**32),
    retries=st.integers(0, 2),
    fail_rate=st.floats(0.0, 0.4),
)
def test_failed_trials_are_never_promoted(max_epochs, workers, order, retries, fail_rate):
    rng = random.Random(order)
    study = make_study(
        max_epochs, 3, max_retries_per_trial=retries, max_consecutive_failed_trials=10_000
    )
    schedule = study.config.schedule
    simulate(study, workers=workers, rng=rng, fail=lambda t: rng.random() < fail_rate)
    failed = {t.number for t in study.trials if t.status == FAILED}
    assert all(t.parent_number not in failed for t in study.trials)
    assert all(t.failed_runs == retries + 1 for t in study.trials if t.status == FAILED)
    assert all(t.status in (COMPLETED, FAILED) for t in study.trials)
    per_round = Counter((t.bracket_id, t.round) for t in study.trials)
    for (key, r), n in per_round.items():
        assert n <= schedule.size(study.brackets[key].bracket, r)


def test_retries_keep_id_and_values_newest_first():
    study = make_study(9, 3, max_retries_per_trial=2)
    first, second = study.ask("a"), study.ask("b")
    study.tell(first.number, error="oom")
    study.tell(second.number, score=float("nan"))  # NaN counts as a failed run
    again = study.ask("c")
    assert again.number == second.number and again.values == second.values  # LIFO
    again2 = study.ask("d")
    assert again2.number == first.number
    assert study.trials[first.number].failed_runs == 1


def test_consecutive_failures_fail_the_study():
    study = make_study(9, 3, max_consecutive_failed_trials=2)
    a, b = study.ask("a"), study.ask("b")
    study.tell(a.number, error="cuda error")
    assert study.failed_reason is None
    study.tell(b.number, error="cuda error again")
    assert "2 trials failed in a row" in study.failed_reason
    assert "cuda error again" in study.failed_reason
    answer = study.ask("c")
    assert isinstance(answer, Done) and answer.failed and answer.reason == study.failed_reason


def test_a_completed_trial_resets_the_failure_count():
    study = make_study(9, 3, max_consecutive_failed_trials=2)
    a, b, c = study.ask("a"), study.ask("b"), study.ask("c")
    study.tell(a.number, error="x")
    study.tell(b.number, score=1.0)
    study.tell(c.number, error="y")
    assert study.failed_reason is None


def test_lost_leases_are_counted_apart_from_retries():
    study = make_study(9, 3, max_retries_per_trial=0, max_lost_leases_per_trial=2)
    trial = study.ask("a")
    for n in (1, 2):
        study.lose_lease(trial.number)
        assert study.trials[trial.number].status == PENDING
        again = study.ask(f"b{n}")
        assert again.number == trial.number and again.values == trial.values
    study.lose_lease(trial.number)
    assert study.trials[trial.number].status == FAILED


def test_wait_only_when_the_last_bracket_is_open():
    study = make_study(3, 3)  # brackets 1 (3 -> 1 trials) and 0 (2 trials)
    schedule = study.config.schedule
    assert schedule.sizes(1) == (3, 1) and schedule.sizes(0) == (2,)
    trials = [study.ask(f"w{i}") for i in range(5)]  # fills both brackets' round 0
    assert {t.bracket for t in trials} == {0, 1}
    assert isinstance(study.ask("w5"), Wait)  # last bracket open, trials running
    for t in trials[:2]:
        study.tell(t.number, score=1.0)
    assert isinstance(study.ask("w5"), Wait)  # 2 of 3 completed: not > 3 - 1 yet
    study.tell(trials[2].number, score=3.0)
    promoted = study.ask("w5")
    assert promoted.round == 1 and promoted.parent_number == trials[2].number


def test_unbounded_iterations_keep_opening_brackets():
    study = make_study(3, 3, iterations=None)
    rng = random.Random(0)
    for _ in range(200):
        trial = study.ask("w")
        assert isinstance(trial, MemoryTrial)
        study.tell(trial.number, score=rng.random())
    assert max(t.iteration for t in study.trials) >= 10


def test_small_space_still_gets_successive_halving():
    """Keras Tuner #676: 6 configurations in an 81-trial bracket. Keras Tuner never promotes
    (it needs more than 54 completed); Rung halves the 6 it has down to one at 81 epochs."""
    tiny = SearchSpace((Int("a", 1, 3), Choice("b", ("x", "y")), Fixed("c", 1)))
    study = make_study(81, 3, space=tiny)
    handouts, _ = simulate(study, workers=3, rng=random.Random(1))
    sampled = [t for t in handouts if t.round == 0]
    assert len(sampled) == 6 and len({tuple(sorted(t.values.items())) for t in sampled}) == 6
    assert study.brackets[0].sizes == [6, 2, 1, 1, 1]
    assert max(t.epochs for t in handouts) == 81
    assert Counter(t.round for t in handouts) == {0: 6, 1: 2, 2: 1, 3: 1, 4: 1}
    final = study.ask("late")
    assert isinstance(final, Done) and final.reason == REASON_EXHAUSTED
    assert len(study.brackets) == 1  # no bracket opened on an exhausted space


def test_collision_limit_is_a_setting():
    tiny = SearchSpace((Int("a", 1, 40),))
    strict = make_study(9, 3, space=tiny, max_collisions=0)
    lenient = make_study(9, 3, space=tiny, max_collisions=1000)
    for study in (strict, lenient):
        simulate(study, workers=1, rng=random.Random(2))
    assert len({t.values["a"] for t in lenient.trials if t.round == 0}) > len(
        {t.values["a"] for t in strict.trials if t.round == 0}
    )


def test_sampling_draws_are_consumed_like_keras_tuner():
    study = make_study(9, 3, seed=42)
    trial = study.ask("w")
    active = len(trial.values)
    assert study.seed_state == 42 + active
    assert math.isfinite(trial.values["learning_rate"])


@pytest.mark.parametrize("workers", [1, 5, 50])
def test_promoted_trials_report_their_real_bracket(workers):
    """Keras Tuner labels a promoted trial with its newest bracket; Rung with its own."""
    study = make_study(27, 3)
    handouts, _ = simulate(study, workers=workers, rng=random.Random(workers))
    for t in handouts:
        assert t.bracket == study.brackets[t.bracket_id].bracket
        if t.parent_number is not None:
            assert study.trials[t.parent_number].bracket == t.bracket
