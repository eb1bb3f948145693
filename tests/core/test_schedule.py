"""The Hyperband schedule against the worked tables of the specification and Keras Tuner."""

import pytest
from keras_tuner.src.tuners.hyperband import HyperbandOracle

from service.core.schedule import Schedule, shrink_sizes

# bracket -> [(trials, epochs, initial_epoch) per round], from keras-tuner-hyperband.md
TABLES = {
    (81, 3): {
        4: [(81, 1, 0), (27, 3, 1), (9, 9, 3), (3, 27, 9), (1, 81, 27)],
        3: [(34, 3, 0), (12, 9, 3), (4, 27, 9), (2, 81, 27)],
        2: [(15, 9, 0), (5, 27, 9), (2, 81, 27)],
        1: [(8, 27, 0), (3, 81, 27)],
        0: [(5, 81, 0)],
    },
    (10, 3): {
        2: [(12, 2, 0), (4, 4, 2), (2, 10, 4)],
        1: [(6, 4, 0), (2, 10, 4)],
        0: [(4, 10, 0)],
    },
    (100, 3): {
        4: [(98, 2, 0), (33, 4, 2), (11, 12, 4), (4, 34, 12), (2, 100, 34)],
        3: [(41, 4, 0), (14, 12, 4), (5, 34, 12), (2, 100, 34)],
        2: [(18, 12, 0), (6, 34, 12), (2, 100, 34)],
        1: [(9, 34, 0), (3, 100, 34)],
        0: [(6, 100, 0)],
    },
    (27, 3): {
        3: [(27, 1, 0), (9, 3, 1), (3, 9, 3), (1, 27, 9)],
        2: [(12, 3, 0), (4, 9, 3), (2, 27, 9)],
        1: [(6, 9, 0), (2, 27, 9)],
        0: [(4, 27, 0)],
    },
    (243, 3): {
        5: [(243, 1, 0), (81, 3, 1), (27, 9, 3), (9, 27, 9), (3, 81, 27), (1, 243, 81)],
        4: [(98, 3, 0), (33, 9, 3), (11, 27, 9), (4, 81, 27), (2, 243, 81)],
        3: [(41, 9, 0), (14, 27, 9), (5, 81, 27), (2, 243, 81)],
        2: [(18, 27, 0), (6, 81, 27), (2, 243, 81)],
        1: [(9, 81, 0), (3, 243, 81)],
        0: [(6, 243, 0)],
    },
}
TOTALS = {  # trials, epochs with warm start, epochs without (per iteration)
    (81, 3): (211, 1767, 2181),
    (10, 3): (30, 120, None),
    (100, 3): (254, 2672, None),
    (27, 3): (70, None, None),
    (30, 3): (90, None, None),
}


@pytest.mark.parametrize("key", sorted(TABLES))
def test_worked_tables(key):
    schedule = Schedule(*key)
    table = TABLES[key]
    assert schedule.num_brackets == len(table)
    for bracket, rounds in table.items():
        got = [
            (
                schedule.size(bracket, r),
                schedule.epochs(bracket, r),
                schedule.initial_epoch(bracket, r),
            )
            for r in range(bracket + 1)
        ]
        assert got == rounds, f"bracket {bracket}"


@pytest.mark.parametrize("key", sorted(TOTALS))
def test_totals_per_iteration(key):
    schedule = Schedule(*key)
    trials, epochs, cold_epochs = TOTALS[key]
    assert schedule.trials_per_iteration() == trials
    if epochs is not None:
        assert schedule.epochs_per_iteration() == epochs
    if cold_epochs is not None:
        assert schedule.epochs_per_iteration(warm_start=False) == cold_epochs


def test_no_float_log_bug():
    # math.log(243, 3) == 4.999…: floor(log) + 1 would give 5 brackets.
    assert Schedule(243, 3).num_brackets == 6
    assert Schedule(1000, 10).num_brackets == 4
    assert Schedule(1, 2).num_brackets == 1


@pytest.mark.parametrize(
    "max_epochs", [1, 2, 3, 5, 8, 9, 10, 26, 27, 28, 64, 81, 100, 125, 243, 1000]
)
@pytest.mark.parametrize("factor", [2, 3, 4, 5, 10])
def test_matches_keras_tuner_formulas(max_epochs, factor):
    oracle = HyperbandOracle(max_epochs=max_epochs, factor=factor, seed=1)
    schedule = Schedule(max_epochs, factor)
    assert schedule.num_brackets == oracle._get_num_brackets()
    for b in range(schedule.num_brackets):
        for r in range(b + 1):
            assert schedule.size(b, r) == oracle._get_size(b, r)
            assert schedule.epochs(b, r) == oracle._get_epochs(b, r)


def test_iterations_and_bracket_order():
    schedule = Schedule(27, 3, hyperband_iterations=2)
    order, here = [], (0, schedule.first_bracket())
    while here is not None:
        order.append(here)
        here = schedule.next_bracket(*here)
    assert order == [(0, 3), (0, 2), (0, 1), (0, 0), (1, 3), (1, 2), (1, 1), (1, 0)]
    unbounded = Schedule(27, 3, hyperband_iterations=None)
    assert unbounded.next_bracket(500, 0) == (501, 3)


def test_longest_first_bracket_order():
    schedule = Schedule(27, 3, hyperband_iterations=2)
    order, here = [], (0, schedule.first_bracket(longest_first=True))
    while here is not None:
        order.append(here)
        here = schedule.next_bracket(*here, longest_first=True)
    assert order == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    unbounded = Schedule(27, 3, hyperband_iterations=None)
    assert unbounded.next_bracket(500, 3, longest_first=True) == (501, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_epochs": 0, "factor": 3}, "max_epochs"),
        ({"max_epochs": 10, "factor": 1}, "factor"),
        ({"max_epochs": 10, "factor": 3, "hyperband_iterations": 0}, "hyperband_iterations"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)


def test_shrink_keeps_the_halving_shares():
    assert shrink_sizes((81, 27, 9, 3, 1), 81) == (81, 27, 9, 3, 1)
    assert shrink_sizes((81, 27, 9, 3, 1), 6) == (6, 2, 1, 1, 1)
    assert shrink_sizes((34, 12, 4, 2), 17) == (17, 6, 2, 1)
    assert shrink_sizes((5,), 2) == (2,)
    assert shrink_sizes((15, 5, 2), 0) == (0, 0, 0)
