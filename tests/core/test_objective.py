"""Objectives: Keras Tuner's direction inference (with its three fixes), explicit directions,
lists, and scores as the best value over the reported epochs."""

import math

import keras
import pytest
from keras_tuner.src.engine.metrics_tracking import infer_metric_direction

from service.core.objective import ObjectiveError, infer_direction, parse_objective

# Where Keras Tuner infers "min" for a metric whose larger values are better.
FIXED = {
    "f1_score",
    "F1Score",
    "FBetaScore",
    "r2_score",
    "R2Score",
    "cosine_similarity",
    "CosineSimilarity",
    "BinaryIoU",
    "pearson_correlation",
    "PearsonCorrelation",
    "concordance_correlation",
    "ConcordanceCorrelation",
}


def keras_names():
    names = set()
    for module in (keras.metrics, keras.losses):
        for name in dir(module):
            if not name.startswith("_") and name not in {
                "deserialize",
                "serialize",
                "get",
                "Metric",
                "Loss",
                "Reduction",
            }:
                names.add(name)
    return sorted(names)


@pytest.mark.parametrize("prefix", ["", "val_", "val_weighted_"])
def test_inference_agrees_with_keras_tuner_on_every_keras_name(prefix):
    disagreements = {}
    for name in keras_names():
        try:
            theirs = infer_metric_direction(prefix + name)
        except Exception:  # Keras Tuner crashes on metrics that need arguments (IoU, …)
            theirs = None
        if theirs is None:
            continue  # Keras Tuner cannot infer it either: Rung may know it or ask for it
        ours = infer_direction(prefix + name)
        if ours != theirs and name not in FIXED:
            disagreements[name] = (ours, theirs)
    assert not disagreements


@pytest.mark.parametrize(
    "name, direction",
    [
        ("val_loss", "min"),
        ("loss", "min"),
        ("val_acc", "max"),
        ("accuracy", "max"),
        ("val_accuracy", "max"),
        ("val_weighted_accuracy", "max"),
        ("auc", "max"),
        ("AUC", "max"),
        ("val_precision", "max"),
        ("recall", "max"),
        ("mse", "min"),
        ("val_mae", "min"),
        ("false_positives", "min"),
        ("true_negatives", "max"),
        ("SparseCategoricalAccuracy", "max"),
        ("f1_score", "max"),
        ("val_r2_score", "max"),
        ("cosine_similarity", "max"),
        ("crossentropy", "min"),
        ("ce", "min"),
        ("mean_iou", "max"),
        ("MeanIoU", "max"),
        ("FBetaScore", "max"),
        ("BinaryIoU", "max"),
        ("pearson_correlation", "max"),
    ],
)
def test_direction(name, direction):
    assert infer_direction(name) == direction


def test_unknown_metric_asks_for_a_direction():
    with pytest.raises(ObjectiveError, match=r"cannot infer whether 'my_score'.*\"direction\""):
        parse_objective("my_score")
    assert parse_objective({"name": "my_score", "direction": "max"}).direction == "max"
    with pytest.raises(ObjectiveError, match=r"objective\[1\]: cannot infer"):
        parse_objective(["val_loss", "bleu"])
    with pytest.raises(ObjectiveError, match="direction: must be"):
        parse_objective({"name": "x", "direction": "up"})
    with pytest.raises(ObjectiveError, match="must not be empty"):
        parse_objective([])
    with pytest.raises(ObjectiveError, match="appears twice"):
        parse_objective(["val_loss", "val_loss"])


def test_a_list_is_minimised_as_min_minus_max():
    objective = parse_objective(["val_loss", {"name": "val_accuracy", "direction": "max"}])
    assert (objective.name, objective.direction) == ("multi_objective", "min")
    assert objective.value({"val_loss": 0.5, "val_accuracy": 0.75, "other": 9}) == -0.25
    assert objective.value({"val_loss": 0.5}) is None


def test_score_is_the_best_over_epochs_ignoring_nan():
    maximise = parse_objective("val_accuracy")
    assert maximise.best([0.5, 0.9, 0.7]) == 0.9
    assert maximise.best([math.nan, 0.2]) == 0.2
    assert maximise.best([math.nan]) is None
    minimise = parse_objective("val_loss")
    assert minimise.best([0.5, 0.1, 0.7]) == 0.1
    assert minimise.key(0.1) < minimise.key(0.5)
    assert maximise.key(0.9) < maximise.key(0.5)
