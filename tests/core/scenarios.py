"""Scenarios that every store runs against Keras Tuner (the in-memory reference store in
tests/core, the SQL use cases in tests/db): the same list, so a rule that one store applies
differently shows up as a mismatch there."""

from hypothesis import strategies as st

from service.core.schedule import Schedule

from .kt_driver import Scenario
from .spaces import COLLIDING, CONDITIONAL, WIDE

SCENARIOS = {
    "sequential": Scenario(WIDE, 27, 3, seed=4),
    "seven-workers": Scenario(WIDE, 27, 3, seed=9, workers=7, order_seed=3),
    "conditional-ties": Scenario(
        CONDITIONAL,
        9,
        3,
        seed=2,
        workers=3,
        hyperband_iterations=2,
        direction="min",
        tie_scores=True,
    ),
    "failures": Scenario(
        WIDE, 9, 3, seed=6, workers=4, crash_rate=0.2, nan_rate=0.1, max_retries_per_trial=1
    ),
    # Up to three trials end between asks, a third of runs crash and are retried: two or
    # three trials wait in the retry queue at once, so its order (newest first) matters.
    "retry-queue": Scenario(
        WIDE,
        27,
        3,
        seed=3,
        workers=6,
        order_seed=3,
        crash_rate=0.3,
        max_retries_per_trial=2,
        finish_at_once=3,
    ),
    # 34 draws from 40 configurations: about 30 collisions, each skipped as Keras Tuner does.
    "collisions": Scenario(
        COLLIDING, 9, 3, seed=1, hyperband_iterations=2, workers=3, order_seed=1, finish_at_once=3
    ),
}


@st.composite
def random_scenarios(draw: st.DrawFn) -> Scenario:
    """Hypothesis' scenarios for every store: random settings, workers, finishing order and
    crashes; the colliding space where it cannot run out (Keras Tuner #676 differs then)."""
    max_epochs, factor = draw(st.integers(1, 30)), draw(st.integers(2, 5))
    iterations, seed = draw(st.sampled_from([1, 2])), draw(st.integers(1, 10_000))
    schedule = Schedule(max_epochs, factor, iterations)
    new = iterations * sum(schedule.size(b, 0) for b in range(schedule.num_brackets))
    return Scenario(
        COLLIDING if new <= 30 and seed % 2 else WIDE,
        max_epochs,
        factor,
        hyperband_iterations=iterations,
        seed=seed,
        workers=draw(st.integers(1, 12)),
        order_seed=draw(st.integers(0, 10_000)),
        finish_at_once=draw(st.integers(1, 3)),
        crash_rate=draw(st.sampled_from([0.0, 0.2])),
        max_retries_per_trial=1,
    )
