"""Search spaces: Keras Tuner's values for the same probabilities and seeds, and every invalid
definition refused with a message naming the hyperparameter and the rule."""

import keras_tuner as kt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras_tuner.src.tuners.hyperband import HyperbandOracle

from rung.space import Boolean, Choice, Condition, Fixed, Float, Int, SearchSpace, SpaceError
from service.core.sampler import sample_new, sample_values, values_hash

from .kt_driver import to_keras_tuner
from .spaces import CONDITIONAL, WIDE

PAIRS = [
    (Int("a", 0, 10), kt.HyperParameters().Int),
    (Int("a", 3, 97, step=7), None),
    (Int("a", 2, 1024, step=2, sampling="log"), None),
    (Int("a", 1, 1000, sampling="log"), None),
    (Int("a", 1, 1000, sampling="reverse_log"), None),
    (Float("a", -1.5, 2.5), None),
    (Float("a", 0.0, 1.0, step=0.1), None),
    (Float("a", 1e-5, 1.0, sampling="log"), None),
    (Float("a", 1e-3, 10.0, step=10, sampling="log"), None),
    (Float("a", 0.1, 0.999, sampling="reverse_log"), None),
    (Choice("a", ("x", "y", "z")), None),
    (Choice("a", (0.1, 0.01, 0.001)), None),
    (Boolean("a"), None),
    (Fixed("a", "adam"), None),
]


def keras_tuner_hp(hp):
    return to_keras_tuner(SearchSpace((hp,))).space[0]


@pytest.mark.parametrize("hp", [p[0] for p in PAIRS], ids=lambda hp: repr(hp))
@given(prob=st.floats(0.0, 1.0, exclude_max=True))
def test_prob_to_value_matches_keras_tuner(hp, prob):
    assert hp.prob_to_value(prob) == keras_tuner_hp(hp).prob_to_value(prob)


@pytest.mark.parametrize("space", [WIDE, CONDITIONAL], ids=["wide", "conditional"])
@pytest.mark.parametrize("seed", [1, 77, 9999])
def test_seeded_sequence_matches_keras_tuner(space, seed, tmp_path):
    oracle = HyperbandOracle(max_epochs=9, seed=seed, hyperparameters=to_keras_tuner(space))
    state = seed
    for _ in range(30):
        ours, state = sample_values(space, state)
        assert ours == oracle._random_values()
        assert state == oracle._seed_state
        oracle._tried_so_far.add(oracle._compute_values_hash(ours))
        assert values_hash(ours) == oracle._compute_values_hash(ours)


def test_defaults_follow_keras_tuner():
    hps = kt.HyperParameters()
    assert Int("a", 3, 9).default == hps.Int("a", 3, 9) == 3
    assert Float("b", 0.5, 1.0).default == hps.Float("b", 0.5, 1.0) == 0.5
    assert Choice("c", ("p", "q")).default == hps.Choice("c", ["p", "q"]) == "p"
    assert Boolean("d").default is hps.Boolean("d") is False
    assert Fixed("e", 7).default == hps.Fixed("e", 7) == 7
    assert Int("f", 1, 9, default_value=4).default == 4
    assert CONDITIONAL.defaults() == {"model": "mlp", "mlp_units": 32, "learning_rate": 1e-4}


def test_float_step_stops_before_max_like_keras_tuner():  # Keras Tuner #1001
    hp = Float("x", 0.0, 1.0, step=0.1)
    assert hp.prob_to_value(0.9999) == pytest.approx(0.9)


def test_dedup_gives_up_after_the_collision_limit():
    space = SearchSpace((Choice("a", ("x", "y")),))
    tried: set[str] = set()
    state = 1
    for _ in range(2):
        result = sample_new(space, state, is_tried=tried.__contains__, max_collisions=20)
        tried.add(result.values_hash)
        state = result.seed_state
    exhausted = sample_new(space, state, is_tried=tried.__contains__, max_collisions=20)
    assert not hasattr(exhausted, "values") and exhausted.seed_state == state + 21


INVALID = [
    (
        {"type": "int", "name": "n", "min_value": 5, "max_value": 1},
        "'n'.*min_value 5 is greater than max_value 1",
    ),
    (
        {"type": "float", "name": "lr", "min_value": 0, "max_value": 1, "sampling": "log"},
        "'lr'.*needs min_value > 0",
    ),
    (
        {
            "type": "float",
            "name": "lr",
            "min_value": 0.1,
            "max_value": 1,
            "sampling": "log",
            "step": 1,
        },
        "'lr'.*needs step > 1",
    ),
    (
        {"type": "float", "name": "lr", "min_value": 0.1, "max_value": 1, "sampling": "cubic"},
        "'lr'.*sampling must be one of",
    ),
    (
        {"type": "int", "name": "n", "min_value": 1.5, "max_value": 4},
        "'n'.*min_value must be an integer",
    ),
    (
        {"type": "int", "name": "n", "min_value": 1, "max_value": 4, "step": 0},
        "'n'.*step must be > 0",
    ),
    (
        {"type": "int", "name": "n", "min_value": 1, "max_value": 4, "default": 9},
        "'n'.*default 9 is outside",
    ),
    (
        {"type": "int", "name": "n", "min_value": "1", "max_value": 4},
        "'n'.*min_value must be an integer",
    ),
    (
        {"type": "float", "name": "f", "min_value": True, "max_value": 4},
        "'f'.*min_value must be a finite number",
    ),
    (
        {"type": "float", "name": "f", "min_value": float("nan"), "max_value": 4},
        "'f'.*min_value must be a finite number",
    ),
    (
        {"type": "int", "name": "n", "min_value": 0, "max_value": 10**400},
        "'n'.*max_value must be an integer",
    ),
    (
        {"type": "float", "name": "f", "min_value": -1e308, "max_value": 1e308},
        "'f'.*max_value - min_value overflows",
    ),
    (
        {"type": "float", "name": "f", "min_value": 1e-200, "max_value": 1e200, "sampling": "log"},
        "'f'.*max_value / min_value overflows",
    ),
    (
        {"type": "float", "name": "f", "min_value": 0, "max_value": 1e308, "step": 1e-308},
        "'f'.*step 1e-308 is too small",
    ),
    ({"type": "choice", "name": "c", "values": []}, "'c'.*non-empty list"),
    ({"type": "choice", "name": "c", "values": [1, "a"]}, "'c'.*one type, found int, str"),
    ({"type": "choice", "name": "c", "values": [1, 2.5]}, "'c'.*one type"),
    (
        {"type": "choice", "name": "c", "values": ["a", "b"], "ordered": True},
        "'c'.*ordered must be false",
    ),
    (
        {"type": "choice", "name": "c", "values": ["a", "b"], "default": "z"},
        "'c'.*default 'z' is not one of the values",
    ),
    (
        {"type": "choice", "name": "c", "values": [[1], [2]]},
        "'c'.*strings, booleans or finite numbers",
    ),
    ({"type": "choice", "name": "c", "values": ["a", "a"]}, "'c'.*must not repeat"),
    ({"type": "boolean", "name": "b", "default": "yes"}, "'b'.*true or false"),
    ({"type": "fixed", "name": "x", "value": [1]}, "'x'.*value must be"),
    ({"type": "fixed", "name": "x"}, "'x'.*value is required"),
    ({"type": "int", "name": "n", "max_value": 3}, "'n'.*min_value is required"),
    ({"type": "tensor", "name": "t"}, "'t'.*type must be one of"),
    (
        {"type": "int", "name": "", "min_value": 1, "max_value": 2},
        "name must be a non-empty string",
    ),
    ({"type": "int", "name": "n" * 300, "min_value": 1, "max_value": 2}, "longer than 256"),
    (
        {"type": "int", "name": "n", "min_value": 1, "max_value": 2, "colour": "red"},
        "'n'.*unknown field.*colour",
    ),
    (
        {
            "type": "int",
            "name": "n",
            "min_value": 1,
            "max_value": 2,
            "conditions": [{"parent_name": "n", "parent_values": [1]}],
        },
        "'n'.*named like its parent",
    ),
    (
        {
            "type": "int",
            "name": "n",
            "min_value": 1,
            "max_value": 2,
            "conditions": [{"parent_name": "m", "parent_values": []}],
        },
        "'n'.*parent_values must be a non-empty list",
    ),
    (
        {
            "type": "int",
            "name": "n",
            "min_value": 1,
            "max_value": 2,
            "conditions": [{"parent": "m"}],
        },
        "'n'.*parent_name, parent_values",
    ),
]


@pytest.mark.parametrize("definition, message", INVALID, ids=[m for _, m in INVALID])
def test_invalid_definitions_name_the_hyperparameter_and_rule(definition, message):
    with pytest.raises(SpaceError, match=message):
        SearchSpace.from_dicts([definition])


def test_unknown_parent_and_duplicates_are_refused():
    child = {
        "type": "int",
        "name": "units",
        "min_value": 1,
        "max_value": 4,
        "conditions": [{"parent_name": "model", "parent_values": ["mlp"]}],
    }
    with pytest.raises(SpaceError, match=r"'units'.*unknown parent 'model'"):
        SearchSpace.from_dicts([child])
    model = {"type": "choice", "name": "model", "values": ["mlp", "cnn"]}
    with pytest.raises(SpaceError, match=r"'model'.*defined twice"):
        SearchSpace.from_dicts([model, model])
    # The same name under different conditions is allowed, as in Keras Tuner.
    other = dict(child, conditions=[{"parent_name": "model", "parent_values": ["cnn"]}])
    assert len(SearchSpace.from_dicts([model, child, other])) == 3


def test_round_trip_through_the_wire_form():
    again = SearchSpace.from_dicts(CONDITIONAL.to_dicts())
    assert again == CONDITIONAL
    assert SearchSpace.from_dicts(WIDE.to_dicts()) == WIDE


def test_nested_conditions_and_together():
    hp = CONDITIONAL.hyperparameters[4]
    assert hp.conditions == (Condition("model", ("cnn",)), Condition("kernel", (5, 7)))
    assert hp.is_active({"model": "cnn", "kernel": 5})
    assert not hp.is_active({"model": "cnn", "kernel": 3})
    assert not hp.is_active({"model": "mlp"})
