"""Time a tuner spends outside `fit` per trial: Keras Tuner's Hyperband and `rung.keras.Tuner`
on the same model and data, side by side in one run (one worker, the digits demo's model).

    python -m benchmarks.keras_overhead [--rounds 3] [--max-epochs 9] [--smoke]

Each round runs one whole Hyperband iteration with each tuner, in turns. Outside `fit` is the
search's wall time minus the time spent in `model.fit`, divided by the trials: building the
model, loading and saving checkpoints, asking and telling (Rung: over HTTP to a local `rung
serve` on SQLite, checkpoints through the server), bookkeeping. Keras runs on the CPU here
(KERAS_BACKEND, default torch).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

from benchmarks.common import database, parser, rung_server, table


def _timed_hypermodel(keras_tuner: Any) -> Any:
    """The digits demo's model, whose `fit` adds up the time spent in `model.fit`."""
    from rung.examples import digits

    class Timed(keras_tuner.HyperModel):
        fit_seconds = 0.0

        def build(self, hp: Any) -> Any:
            return digits.build_model(hp)

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return model.fit(*args, **kwargs)
            finally:
                Timed.fit_seconds += time.perf_counter() - started

    return Timed


def one_search(
    make_tuner: Any, settings: dict[str, Any], data: dict[str, Any], timed: Any
) -> tuple[float, float, int]:
    """(wall s, fit s, trials) of one search by `make_tuner(hypermodel, **settings)`."""
    timed.fit_seconds = 0.0
    tuner = make_tuner(timed(), **settings)
    started = time.perf_counter()
    tuner.search(**data)
    wall = time.perf_counter() - started
    return wall, timed.fit_seconds, tuner_trials(tuner)


def tuner_trials(tuner: Any) -> int:
    if hasattr(tuner, "oracle"):
        return len(tuner.oracle.trials)
    return len(tuner.client.trials(tuner.study().id, limit=1000).items)


def measure(
    server_url: str, directory: Path, *, rounds: int, max_epochs: int
) -> dict[str, list[tuple[float, float, int]]]:
    """Each round, one search with each tuner, in turns."""
    import keras_tuner

    import rung.keras
    from rung.examples import digits

    data = digits.fit_kwargs()
    timed = _timed_hypermodel(keras_tuner)
    results: dict[str, list[tuple[float, float, int]]] = {"Keras Tuner": [], "Rung": []}
    for round_ in range(rounds):
        settings = {"objective": "val_accuracy", "max_epochs": max_epochs, "seed": 1}
        settings["project_name"] = f"round-{round_}"
        results["Keras Tuner"].append(
            one_search(
                keras_tuner.Hyperband, {**settings, "directory": directory / "kt"}, data, timed
            )
        )
        results["Rung"].append(
            one_search(
                rung.keras.Tuner, {**settings, "server": server_url, "verbose": 0}, data, timed
            )
        )
    return results


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-epochs", type=int, default=9)
    args = p.parse_args()
    rounds, max_epochs = (1, 3) if args.smoke else (args.rounds, args.max_epochs)
    with (
        tempfile.TemporaryDirectory() as tmp,
        database("sqlite") as url,
        rung_server(url) as server,
    ):
        results = measure(server.url, Path(tmp), rounds=rounds, max_epochs=max_epochs)
    rows: list[list[object]] = []
    medians = {}
    for name, runs in results.items():
        per_trial = [(wall - fit) / trials for wall, fit, trials in runs]
        medians[name] = statistics.median(per_trial)
        rows.append(
            [
                name,
                runs[0][2],
                statistics.median(wall for wall, _, _ in runs),
                statistics.median(fit for _, fit, _ in runs),
                medians[name] * 1000,
                ", ".join(f"{v * 1000:.0f}" for v in per_trial),
            ]
        )
    header = ["tuner", "trials", "search wall s", "in fit s", "outside fit ms/trial (median)"]
    print(table([*header, "each round"], rows))
    ratio = medians["Rung"] / medians["Keras Tuner"]
    print(f"\nRung / Keras Tuner, time outside fit per trial: {ratio:.2f}")


if __name__ == "__main__":
    main()
