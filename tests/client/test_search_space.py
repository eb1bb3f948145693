"""The client's Keras Tuner-style DSL discovers the same search space as Keras Tuner itself,
for Keras Tuner's documented `build_model` examples."""

import keras
import keras_tuner as kt
import pytest

from rung.hyperparameters import HyperParameters, NewEntryError, discover_space


def getting_started(hp):  # keras.io/keras_tuner/getting_started
    model = keras.Sequential([keras.layers.Flatten()])
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            keras.layers.Dense(
                units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def conditional(hp):  # the conditional_scope example of the HyperParameters docs
    model = keras.Sequential([keras.Input(shape=(32, 32, 3))])
    model_type = hp.Choice("model_type", ["mlp", "cnn"])
    with hp.conditional_scope("model_type", ["mlp"]):
        if model_type == "mlp":
            model.add(keras.layers.Flatten())
            model.add(keras.layers.Dense(hp.Int("units", 32, 128, step=32), activation="relu"))
    with hp.conditional_scope("model_type", ["cnn"]):
        if model_type == "cnn":
            model.add(keras.layers.Conv2D(hp.Int("filters", 16, 64, step=16), 3, activation="relu"))
            model.add(keras.layers.GlobalAveragePooling2D())
            with hp.conditional_scope("filters", [32, 64]):
                if hp.get("filters") in (32, 64):
                    model.add(keras.layers.Dropout(hp.Float("drop", 0.0, 0.5, step=0.1)))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return model


def hypermodel_class():  # the HyperModel subclass style, with name scopes and Fixed
    class MyHyperModel(kt.HyperModel):
        def build(self, hp):
            with hp.name_scope("block"):
                units = hp.Int("units", 8, 64, step=8, default=16)
            hp.Fixed("optimizer", "adam")
            rate = hp.Choice("rate", [0.1, 0.01, 0.001], default=0.01)
            model = keras.Sequential(
                [keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(1)]
            )
            model.compile(optimizer=keras.optimizers.SGD(rate), loss="mse")
            return model

    return MyHyperModel()


def described(hps):
    """Each hyperparameter with its effective default (Keras Tuner stores it resolved)."""
    return [{**hp.to_dict(), "default": hp.default} for hp in hps.space]


def keras_tuner_space(build, tmp_path):
    tuner = kt.RandomSearch(
        build, objective="val_loss", max_trials=1, directory=tmp_path, project_name="p"
    )
    return described(HyperParameters.from_keras_tuner(tuner.oracle.hyperparameters))


@pytest.mark.parametrize(
    "build",
    [getting_started, conditional, hypermodel_class()],
    ids=["getting_started", "conditional", "hypermodel"],
)
def test_same_space_as_keras_tuner(build, tmp_path):
    build_fn = getattr(build, "build", build)
    ours = described(discover_space(build_fn))
    assert ours == keras_tuner_space(build, tmp_path)
    assert ours  # and it is not empty


def test_conditional_branches_are_all_discovered():
    names = [hp["name"] for hp in discover_space(conditional).to_dicts()]
    assert names == ["model_type", "units", "filters", "drop"]


def test_a_keras_tuner_object_is_accepted_as_is():
    hps = kt.HyperParameters()
    hps.Int("units", 32, 512, step=32)
    hps.Float("lr", 1e-4, 1e-2, sampling="log")
    hps.Choice("kind", ["a", "b"])
    with hps.conditional_scope("kind", ["b"]):
        hps.Boolean("extra")
    ours = HyperParameters.from_keras_tuner(hps)
    assert [hp.name for hp in ours.space] == ["units", "lr", "kind", "extra"]
    assert ours.space[3].conditions[0].parent_values == ("b",)


def test_values_of_a_trial_and_new_entries():
    hp = HyperParameters(
        discover_space(getting_started).space,
        {"num_layers": 2, "units_0": 64, "activation": "tanh", "dropout": True, "lr": 0.001},
    )
    getting_started(hp)
    assert hp["units_0"] == 64 and hp.get("num_layers") == 2
    assert [e.name for e in hp.new_entries] == ["units_1"]  # first seen in this trial
    assert hp["units_1"] == 32  # at its default
    strict = HyperParameters(
        discover_space(getting_started).space, {"num_layers": 3}, allow_new_entries=False
    )
    with pytest.raises(NewEntryError, match="units_1"):
        getting_started(strict)


def test_keras_tuner_argument_errors_are_raised_early():
    hp = HyperParameters()
    with pytest.raises(ValueError, match="min_value 5 is greater than max_value 1"):
        hp.Int("n", 5, 1)
    with pytest.raises(ValueError, match="not defined"), hp.conditional_scope("nothing", ["x"]):
        pass
    assert "n" not in hp
    hp.Choice("c", ["x", "y"])
    with hp.conditional_scope("c", "y"):
        assert hp.Int("only_for_y", 1, 2) is None
    with pytest.raises(ValueError, match="inactive"):
        hp.get("only_for_y")


def test_discovery_is_the_same_in_every_process():
    """Loops and conditional scopes together: discovery fills what it must with defaults,
    never at random, so every worker running the script describes the same study."""
    import random

    def build(hp):
        for i in range(hp.Int("layers", 1, 3)):
            hp.Int(f"units_{i}", 8, 64, step=8)
        hp.Boolean("dropout")
        with hp.conditional_scope("dropout", [True]):
            hp.Float("rate", 0.1, 0.5)
        kind = hp.Choice("kind", ["a", "b", "c"])
        with hp.conditional_scope("kind", ["c"]):
            if kind == "c":
                for j in range(hp.Int("depth", 2, 4)):
                    hp.Int(f"width_{j}", 1, 9)

    spaces = []
    for seed in range(20):
        random.seed(seed)
        spaces.append(discover_space(build).to_dicts())
    assert all(space == spaces[0] for space in spaces)
    assert [hp["name"] for hp in spaces[0]] == [
        "layers", "units_0", "dropout", "rate", "kind", "depth", "width_0", "width_1",
    ]  # fmt: skip
