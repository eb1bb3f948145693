"""Keras Tuner's documented workflows, run side by side with the real `keras_tuner.Hyperband`
and with `rung.keras.Tuner` (the one line changed), on scikit-learn's digits, against a real
`rung serve`. Where both are seeded and training is deterministic (each build seeds Keras;
plain SGD, whose warm start does not depend on the optimizer state that only Rung restores),
they must hand out the same trials, reach the same scores and pick the same best
hyperparameters; each best model must evaluate to its trial's score."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import keras
import keras_tuner
import numpy as np
import pytest
from sklearn.datasets import load_digits

import rung.keras
from rung import Client
from tests.servers import running_server

pytestmark = [pytest.mark.keras, pytest.mark.slow]

# The digits, split as Keras Tuner's tutorials split MNIST: train, validation, test.
_X, _Y = load_digits(return_X_y=True)
_X = (_X / 16.0).astype("float32").reshape(-1, 8, 8)
X_TRAIN, Y_TRAIN = _X[:600], _Y[:600]
X_VAL, Y_VAL = _X[1200:1500], _Y[1200:1500]
X_TEST, Y_TEST = _X[1500:], _Y[1500:]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kt-workflows")
    env = {"RUNG_CHECKPOINT_GC_SECONDS": "0.2"}  # collections run during and after search
    with running_server(f"sqlite:///{tmp / 'rung.db'}", tmp, env=env) as running:
        yield running


_names = itertools.count()


def tuners(server, tmp_path, hypermodel, **kwargs):
    """The same arguments to Keras Tuner's Hyperband and to Rung's Tuner (a HyperModel
    class is instantiated for each)."""
    project = f"{kwargs.pop('project_name', 'project')}-{next(_names)}"
    fresh = hypermodel if isinstance(hypermodel, type) else (lambda: hypermodel)
    kt = keras_tuner.Hyperband(fresh(), directory=tmp_path / "kt", project_name=project, **kwargs)
    ours = rung.keras.Tuner(
        fresh(),
        directory=tmp_path / "rung",
        project_name=project,
        server=server.url,
        **kwargs,
    )
    return kt, ours


def build_model(hp):
    """The README's model: no Input layer, built on its first call."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Flatten()])
    for i in range(hp.Int("num_layers", 1, 2)):
        model.add(keras.layers.Dense(hp.Int(f"units_{i}", 16, 64, step=16), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.SGD(hp.Float("learning_rate", 0.05, 0.5, sampling="log")),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def kt_schedule(tuner):
    """Keras Tuner's trials in creation order: (values, epochs, initial_epoch, parent index)."""
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    index = {t.trial_id: i for i, t in enumerate(trials)}
    schedule = []
    for trial in trials:
        values = dict(trial.hyperparameters.values)
        parent = values.pop("tuner/trial_id", None)
        epochs, initial = values.pop("tuner/epochs"), values.pop("tuner/initial_epoch")
        values = {k: v for k, v in values.items() if not k.startswith("tuner/")}
        schedule.append((values, epochs, initial, index.get(parent), trial.score))
    return schedule


def rung_schedule(tuner):
    trials = tuner.client.trials(tuner.study().id, limit=1000).items
    index = {t.id: i for i, t in enumerate(trials)}
    return [
        (t.hyperparameters, t.epochs, t.initial_epoch, index.get(t.parent_trial_id), t.score)
        for t in trials
    ]


def assert_same_values(kt_values, rung_values, space, *, promoted=False):
    """The same values; a key only one side has is a new entry at its default (Keras Tuner
    records a new entry's default in the trial that first built it, Rung in none). A
    promoted trial keeps its parent's values in Rung; Keras Tuner draws a value at random for
    an entry that joined the space after the parent was sampled (a difference on purpose)."""
    defaults = {hp.name: hp.default for hp in space}
    kt_values = without_tuner_keys(kt_values)
    for name in kt_values.keys() | rung_values.keys():
        if promoted and name not in rung_values:
            continue
        expected = kt_values.get(name, defaults.get(name))
        assert rung_values.get(name, defaults.get(name)) == pytest.approx(expected, rel=1e-12), name


def assert_same_schedule(kt, ours, *, scores=True):
    theirs, mine = kt_schedule(kt), rung_schedule(ours)
    ours.study().refresh()
    space = ours.study().space
    assert len(mine) == len(theirs)
    for (kv, ke, ki, kp, ks), (rv, re, ri, rp, rs) in zip(theirs, mine, strict=True):
        assert_same_values(kv, rv, space, promoted=rp is not None)
        assert (re, ri, rp) == (ke, ki, kp)
        if scores:
            assert rs == pytest.approx(ks, rel=1e-5, abs=1e-6)


def assert_same_best_hyperparameters(kt, ours):
    ours.study().refresh()
    space = ours.study().space
    assert_same_values(
        kt.get_best_hyperparameters()[0].values, ours.get_best_hyperparameters()[0].values, space
    )


def assert_best_models_evaluate_to_their_scores(tuner, trials, k, metric="accuracy"):
    models = tuner.get_best_models(num_models=k)
    assert len(models) == len(trials) == k
    for model, score in zip(models, trials, strict=True):
        result = model.evaluate(X_VAL, Y_VAL, verbose=0, return_dict=True)
        assert result[metric] == pytest.approx(score, rel=1e-5, abs=1e-6)


def kt_best_scores(tuner, k):
    return [t.score for t in tuner.oracle.get_best_trials(k)]


def rung_best_scores(tuner, k):
    return [t.score for t in tuner.study().best(k)]


def without_tuner_keys(values):
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


# -- getting started ---------------------------------------------------------------------------
def test_getting_started_search_with_epochs_and_a_model_without_input(server, tmp_path, capsys):
    kt, ours = tuners(
        server, tmp_path, build_model, objective="val_accuracy", max_epochs=3, factor=3, seed=7
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for tuner in (kt, ours):  # Keras Tuner's getting started: epochs given to search()
            tuner.search(X_TRAIN, Y_TRAIN, epochs=50, validation_data=(X_VAL, Y_VAL), verbose=0)
    assert not [w for w in caught if "from scratch" in str(w.message)], "no warm start"
    assert "[rung" not in capsys.readouterr().out  # search(verbose=0) prints nothing
    ours.search(X_TRAIN, Y_TRAIN, epochs=50, validation_data=(X_VAL, Y_VAL))
    assert "[rung] nothing to do: completed" in capsys.readouterr().out  # done: runs nothing

    assert_same_schedule(kt, ours)
    assert any(parent is not None for *_, parent, _ in rung_schedule(ours)), "no promotion"
    assert_same_best_hyperparameters(kt, ours)
    # The best models, the same after a checkpoint collection has run.
    import time

    time.sleep(1.0)
    for tuner, scores in ((kt, kt_best_scores(kt, 3)), (ours, rung_best_scores(ours, 3))):
        assert_best_models_evaluate_to_their_scores(tuner, scores, 3)


def test_best_models_with_a_shared_checkpoint_directory(server, tmp_path):
    ours = rung.keras.Tuner(
        build_model,
        objective="val_accuracy",
        max_epochs=9,
        factor=3,
        seed=3,
        project_name=f"shared-{next(_names)}",
        server=server.url,
        checkpoint_dir=tmp_path / "shared",
        verbose=0,
    )
    ours.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), verbose=0)
    best = ours.study().best(5)
    # Some of the best trials stopped improving before their last epoch: their models must
    # still evaluate to the best epoch's score, not the last one's.
    histories = [[m.metrics["val_accuracy"] for m in (t.history or [])] for t in best if t.history]
    assert any(h.index(max(h)) != len(h) - 1 for h in histories), histories
    assert_best_models_evaluate_to_their_scores(ours, [t.score for t in best], 5)


def test_hyperband_iterations_2_hands_out_keras_tuners_schedule(server, tmp_path):
    kt, ours = tuners(
        server,
        tmp_path,
        build_model,
        objective="val_accuracy",
        max_epochs=3,
        factor=3,
        seed=11,
        hyperband_iterations=2,
    )
    for tuner in (kt, ours):
        tuner.search(X_TRAIN, Y_TRAIN, epochs=5, validation_data=(X_VAL, Y_VAL), verbose=0)
    assert_same_schedule(kt, ours)
    assert len(rung_schedule(ours)) == 12


# -- TensorFlow's "Introduction to the Keras Tuner" --------------------------------------------
def model_builder(hp):
    keras.utils.set_random_seed(1)
    model = keras.Sequential()
    model.add(keras.layers.Flatten(input_shape=(8, 8)))
    hp_units = hp.Int("units", min_value=32, max_value=128, step=32)
    model.add(keras.layers.Dense(units=hp_units, activation="relu"))
    model.add(keras.layers.Dense(10))
    hp_learning_rate = hp.Choice("learning_rate", values=[1e-1, 1e-2, 1e-3])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=hp_learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def test_the_introduction_to_keras_tuner_tutorial(server, tmp_path):
    kt, ours = tuners(
        server,
        tmp_path,
        model_builder,
        objective="val_accuracy",
        max_epochs=3,
        factor=3,
        seed=5,
        project_name="intro_to_kt",
    )
    results = []
    for tuner in (kt, ours):
        stop_early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5)
        tuner.search(
            X_TRAIN, Y_TRAIN, epochs=50, validation_split=0.2, callbacks=[stop_early], verbose=0
        )
        best_hps = tuner.get_best_hyperparameters(num_trials=1)[0]
        units, learning_rate = best_hps.get("units"), best_hps.get("learning_rate")
        model = tuner.hypermodel.build(best_hps)
        history = model.fit(X_TRAIN, Y_TRAIN, epochs=4, validation_split=0.2, verbose=0)
        val_acc_per_epoch = history.history["val_accuracy"]
        best_epoch = val_acc_per_epoch.index(max(val_acc_per_epoch)) + 1
        hypermodel = tuner.hypermodel.build(best_hps)
        hypermodel.fit(X_TRAIN, Y_TRAIN, epochs=best_epoch, validation_split=0.2, verbose=0)
        eval_result = hypermodel.evaluate(X_TEST, Y_TEST, verbose=0)
        results.append((units, learning_rate, best_epoch, eval_result))
    assert_same_schedule(kt, ours)
    (kt_units, kt_lr, kt_epoch, kt_eval), (units, lr, epoch, evaluated) = results
    assert (units, lr, epoch) == (kt_units, kt_lr, kt_epoch)
    assert evaluated == pytest.approx(kt_eval, rel=1e-5)


# -- HyperModel.fit ----------------------------------------------------------------------------
class TunedBatchSize(keras_tuner.HyperModel):
    """Keras Tuner's "tune model training": `fit` tunes the batch size."""

    def build(self, hp):
        keras.utils.set_random_seed(2)
        model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)])
        model.compile(
            optimizer=keras.optimizers.SGD(hp.Float("lr", 0.05, 0.5, sampling="log")),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, batch_size=hp.Choice("batch_size", [16, 64]), **kwargs)


class ReturnsANumber(TunedBatchSize):
    """Keras Tuner's custom training loop guide: `fit` returns the objective's value."""

    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, batch_size=hp.Choice("batch_size", [16, 64]), **kwargs)
        x_val, y_val = validation_data
        return float(model.evaluate(x_val, y_val, verbose=0)[0])  # the validation loss


class ReturnsADict(TunedBatchSize):
    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, batch_size=hp.Choice("batch_size", [16, 64]), **kwargs)
        x_val, y_val = validation_data
        loss, accuracy = model.evaluate(x_val, y_val, verbose=0)
        return {"my_loss": float(loss), "my_accuracy": float(accuracy)}


@pytest.mark.parametrize(
    ("hypermodel", "objective"),
    [
        (TunedBatchSize, "val_accuracy"),
        (ReturnsANumber, None),  # Keras Tuner's default objective: the number, minimised
        (ReturnsADict, keras_tuner.Objective("my_accuracy", "max")),
    ],
    ids=["history", "number", "dict"],
)
def test_hypermodel_fit_returns_a_history_a_number_or_a_dict(
    server, tmp_path, hypermodel, objective
):
    kt, ours = tuners(
        server, tmp_path, hypermodel, objective=objective, max_epochs=3, factor=3, seed=13
    )
    for tuner in (kt, ours):
        tuner.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), verbose=0)
    assert_same_schedule(kt, ours)
    ours.study().refresh()
    assert "batch_size" in {hp.name for hp in ours.study().space}
    assert_same_best_hyperparameters(kt, ours)


# -- objectives ----------------------------------------------------------------------------------
def true_class_probability(y_true, y_pred):
    """A custom metric (larger is better)."""
    y_true = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
    return keras.ops.mean(keras.ops.take_along_axis(y_pred, y_true[:, None], axis=1))


def custom_metric_model(hp):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    model.compile(
        optimizer=keras.optimizers.SGD(hp.Float("lr", 0.05, 0.5)),
        loss="sparse_categorical_crossentropy",
        metrics=[true_class_probability],
    )
    return model


@pytest.mark.parametrize(
    "objective",
    [
        keras_tuner.Objective("val_loss", "min"),
        keras_tuner.Objective("val_true_class_probability", direction="max"),
        [
            keras_tuner.Objective("val_loss", "min"),
            keras_tuner.Objective("val_true_class_probability", "max"),
        ],
    ],
    ids=["val_loss", "custom-metric", "list"],
)
def test_keras_tuner_objectives_and_a_custom_metric(server, tmp_path, objective):
    kt, ours = tuners(
        server, tmp_path, custom_metric_model, objective=objective, max_epochs=3, seed=17
    )
    for tuner in (kt, ours):
        tuner.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), verbose=0)
    assert_same_schedule(kt, ours)
    assert_same_best_hyperparameters(kt, ours)


def test_a_missing_objective_names_the_metrics_that_were_reported(server, tmp_path):
    ours = rung.keras.Tuner(
        build_model,
        objective="val_acc",  # a typo: Keras 3 reports val_accuracy
        max_epochs=3,
        max_consecutive_failed_trials=2,
        project_name=f"typo-{next(_names)}",
        server=server.url,
        verbose=0,
    )
    with pytest.raises(RuntimeError, match="limit of 2") as raised:
        ours.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), verbose=0)
    assert "val_acc was not reported" in str(raised.value)
    assert "val_accuracy" in str(raised.value)


# -- failures, resume, overwrite ----------------------------------------------------------------
def fails_with_many_units(hp):
    model = build_model(hp)
    if hp.get("units_0") >= 32:
        raise ValueError("a bug in build_model")
    return model


def test_failed_trials_stop_the_search_at_the_limit_then_the_study_resumes(server, tmp_path):
    kt, ours = tuners(
        server,
        tmp_path,
        fails_with_many_units,
        objective="val_accuracy",
        max_epochs=9,
        seed=19,
        max_consecutive_failed_trials=3,
    )
    for tuner in (kt, ours):
        with pytest.raises(
            RuntimeError, match="Number of consecutive failures exceeded the limit of 3"
        ):
            tuner.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), verbose=0)
    theirs = [t.status for t in kt.oracle.trials.values()]
    mine = ours.client.trials(ours.study().id, limit=1000).items
    assert [t.status for t in mine].count("failed") == 3 == theirs.count("FAILED")
    assert "a bug in build_model" in ours.study().refresh().reason

    # Search again without a fix: it raises at once, naming the reason.
    with pytest.raises(RuntimeError, match="a bug in build_model"):
        ours.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), verbose=0)
    # Fixed: the same study resumes with its results and runs to the end.
    fixed = rung.keras.Tuner(
        build_model,
        objective="val_accuracy",
        max_epochs=9,
        seed=19,
        max_consecutive_failed_trials=3,
        project_name=ours.project_name,
        server=server.url,
        verbose=0,
    )
    fixed.resume()
    fixed.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), verbose=0)
    study = fixed.study().refresh()
    assert study.id == ours.study().id and study.status == "done"
    trials = fixed.client.trials(study.id, limit=1000).items
    assert [t.id for t in mine] == [t.id for t in trials[: len(mine)]]  # the results kept
    assert sum(t.status == "completed" for t in trials) > len(trials) - 3 - 3


def test_running_again_continues_and_overwrite_starts_over(server, tmp_path):
    args = dict(objective="val_accuracy", max_epochs=3, seed=23)
    counts = {}
    for kind in ("kt", "rung"):
        project = f"again-{next(_names)}"

        def make(overwrite, kind=kind, project=project):
            if kind == "kt":
                return keras_tuner.Hyperband(
                    build_model,
                    directory=tmp_path / "kt",
                    project_name=project,
                    overwrite=overwrite,
                    **args,
                )
            return rung.keras.Tuner(
                build_model,
                directory=tmp_path / "rung",
                project_name=project,
                overwrite=overwrite,
                server=server.url,
                verbose=0,
                **args,
            )

        fits = []
        for overwrite in (False, False, True):
            tuner = make(overwrite)
            before = len(trial_list(tuner))
            tuner.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), verbose=0)
            fits.append((before, len(trial_list(tuner))))
        counts[kind] = fits
    # First run: 6 trials; again: continues (nothing left to run); overwrite: starts over.
    assert counts["kt"] == counts["rung"] == [(0, 6), (6, 6), (0, 6)]


def trial_list(tuner):
    if isinstance(tuner, rung.keras.Tuner):
        return tuner.client.trials(tuner.study().id, limit=1000).items
    return list(tuner.oracle.trials)


# -- summaries and executions ------------------------------------------------------------------
def test_summaries_print_like_keras_tuners(server, tmp_path, capsys):
    kt, ours = tuners(
        server, tmp_path, build_model, objective="val_accuracy", max_epochs=3, seed=29
    )
    printed = []
    for tuner in (kt, ours):
        tuner.search_space_summary()
        tuner.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), verbose=0)
        capsys.readouterr()
        tuner.search_space_summary()
        tuner.results_summary(num_trials=3)
        printed.append(capsys.readouterr().out.splitlines())
    theirs, mine = printed

    def shape(lines):
        return [
            line.split(":")[0] if ":" in line and not line.startswith("{") else line
            for line in lines
            if not line.startswith(("Results in", "{", "Trial ")) and "tuner/" not in line
        ]

    assert shape(mine) == shape(theirs)
    assert "Score: " in "\n".join(mine)
    assert [line for line in mine if line.startswith("Score")] == [
        line for line in theirs if line.startswith("Score")
    ] or all(
        float(a.split()[1]) == pytest.approx(float(b.split()[1]), rel=1e-5)
        for a, b in zip(
            [line for line in mine if line.startswith("Score")],
            [line for line in theirs if line.startswith("Score")],
            strict=True,
        )
    )


class CountsFits(keras_tuner.HyperModel):
    """Each fit returns the next number: the trial's objective is the executions' mean."""

    def __init__(self):
        super().__init__()
        self.fits = itertools.count()

    def build(self, hp):
        hp.Int("x", 0, 100)
        model = keras.Sequential([keras.layers.Dense(1)])
        model.compile(loss="mse")
        return model

    def fit(self, hp, model, *args, **kwargs):
        model.fit(*args, **kwargs)  # builds the model: Keras Tuner warm-starts from its weights
        return {"value": float(next(self.fits))}


def test_executions_per_trial_average_the_objective(server, tmp_path):
    kt, ours = tuners(
        server,
        tmp_path,
        CountsFits,
        objective=keras_tuner.Objective("value", "min"),
        max_epochs=3,
        seed=31,
        executions_per_trial=2,
    )
    for tuner in (kt, ours):
        tuner.search(np.zeros((4, 1)), np.zeros((4, 1)), verbose=0)
    assert_same_schedule(kt, ours)
    scores = [score for *_, score in rung_schedule(ours)]
    assert scores == [2 * i + 0.5 for i in range(len(scores))]


def test_the_readme_keras_example_runs_as_written(server, tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```python\nimport keras\nimport rung.keras")
    code = readme[start + len("```python\n") : readme.index("```", start + 10)]
    code = code.replace('"http://rung:8000"', repr(server.url))
    code = code.replace('"/shared/ckpt"', repr(str(tmp_path / "ckpt")))
    monkeypatch.chdir(tmp_path)
    namespace = {
        "x": X_TRAIN.reshape(-1, 64),
        "y": Y_TRAIN,
        "x_val": X_VAL.reshape(-1, 64),
        "y_val": Y_VAL,
    }
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["best_hp"].values
    assert isinstance(namespace["best_model"], keras.Model)
    with Client(server.url) as client:
        study = client.find_study("mnist")
        assert study is not None and study.status == "done"


def test_an_unbounded_search_is_stopped_from_the_tuner(server, tmp_path):
    ours = rung.keras.Tuner(
        build_model,
        objective="val_accuracy",
        max_epochs=3,
        hyperband_iterations=None,  # runs without end until stopped
        project_name=f"unbounded-{next(_names)}",
        server=server.url,
        verbose=0,
    )

    class StopAfterFour(keras.callbacks.Callback):
        trained = 0  # a class attribute: callbacks are copied per trial

        def on_train_end(self, logs=None):
            StopAfterFour.trained += 1
            if StopAfterFour.trained == 4:
                ours.stop()

    ours.search(X_TRAIN, Y_TRAIN, validation_data=(X_VAL, Y_VAL), callbacks=[StopAfterFour()])
    study = ours.study().refresh()
    assert study.status == "stopped" and study.progress.trials.completed == 4
    ours.resume()
    assert ours.study().refresh().status == "running"
