"""Rung's BOHB generator against HpBandSter's own, on the same history.

Feeds the same results (a space of floats, log-scaled floats and choices, whose encodings
Rung and ConfigSpace share) to HpBandSter's `BOHB` config generator and to
`service.core.bohb`, then compares: the budget modelled, the good and bad points, the
bandwidths, both densities at 1,000 points, and the candidate each picks from the same 64
candidates. It prints the largest differences and exits 1 if any exceeds 1e-9 (relative).

HpBandSter is unmaintained and needs old packages, so it runs in a virtual environment of
its own (not in the test suite):

    python3 -m venv /tmp/hpb && /tmp/hpb/bin/pip install hpbandster 'ConfigSpace<1' \
        'numpy<2' 'scipy<1.14' 'statsmodels<0.15' httpx pydantic
    /tmp/hpb/bin/python benchmarks/bohb_check.py
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "client")]

import ConfigSpace as CS  # noqa: E402
import numpy as np  # noqa: E402
from hpbandster.optimizers.config_generators.bohb import BOHB  # noqa: E402

from rung.space import SearchSpace  # noqa: E402
from service.core import bohb  # noqa: E402

SPACE = SearchSpace.from_dicts(
    [
        {"type": "float", "name": "dropout", "min_value": 0.0, "max_value": 0.9},
        {"type": "float", "name": "lr", "min_value": 1e-5, "max_value": 1e-1, "sampling": "log"},
        {"type": "float", "name": "decay", "min_value": 1e-6, "max_value": 1e-2, "sampling": "log"},
        {"type": "choice", "name": "act", "values": ["relu", "tanh", "gelu", "selu"]},
        {"type": "choice", "name": "opt", "values": ["adam", "sgd"]},
    ]
)


def config_space() -> CS.ConfigurationSpace:
    cs = CS.ConfigurationSpace(seed=1)
    cs.add_hyperparameters(
        [
            CS.UniformFloatHyperparameter("dropout", 0.0, 0.9),
            CS.UniformFloatHyperparameter("lr", 1e-5, 1e-1, log=True),
            CS.UniformFloatHyperparameter("decay", 1e-6, 1e-2, log=True),
            CS.CategoricalHyperparameter("act", ["relu", "tanh", "gelu", "selu"]),
            CS.CategoricalHyperparameter("opt", ["adam", "sgd"]),
        ]
    )
    return cs


def loss(values: dict, budget: int) -> float:
    lr = math.log10(values["lr"])
    base = (lr + 2.5) ** 2 + 3 * (values["dropout"] - 0.3) ** 2
    base += {"relu": 0.0, "tanh": 0.3, "gelu": 0.1, "selu": 0.5}[values["act"]]
    return base + (values["opt"] == "sgd") * 0.4 + 2.0 / budget


def main() -> int:
    rnd = random.Random(7)
    cs = config_space()
    theirs = BOHB(cs)
    history = bohb.History()
    results = []
    for i in range(200):
        budget = (1, 3, 9, 27)[i % 4] if i < 120 else 27
        values = {
            "dropout": rnd.uniform(0, 0.9),
            "lr": 10 ** rnd.uniform(-5, -1),
            "decay": 10 ** rnd.uniform(-6, -2),
            "act": rnd.choice(["relu", "tanh", "gelu", "selu"]),
            "opt": rnd.choice(["adam", "sgd"]),
        }
        score = loss(values, budget)
        job = SimpleNamespace(
            kwargs={"budget": budget, "config": values},
            result={"loss": score},
            timestamps={},
            exception=None,
            id=(0, 0, i),
        )
        theirs.new_result(job)
        results.append(SimpleNamespace(epochs=budget, values=values, score_key=score))
    bohb.read_results(history, SPACE, results)
    dims = bohb.dimensions(SPACE)
    ours = bohb.fit(history, dims, np.random.default_rng(0))
    assert ours is not None
    budget = max(theirs.kde_models)
    good, bad = theirs.kde_models[budget]["good"], theirs.kde_models[budget]["bad"]
    rows = []

    def compare(name: str, a: np.ndarray, b: np.ndarray) -> None:
        diff = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
        rows.append((name, diff))

    # ConfigSpace orders the hyperparameters by name: their column j is our column order[j].
    names = [hp.name for hp in dims]
    order = [names.index(name) for name in cs.get_hyperparameter_names()]
    print(f"budget modelled: ours {ours.budget}, HpBandSter {budget}")
    compare("good points", ours.good.data[:, order], good.data)
    compare("bad points", ours.bad.data[:, order], bad.data)
    compare("good bandwidths", ours.good.bandwidth[order], good.bw)
    compare("bad bandwidths", ours.bad.bandwidth[order], bad.bw)
    rng = np.random.default_rng(3)
    points = np.column_stack(
        [rng.random(1000), rng.random(1000), rng.random(1000), rng.integers(0, 4, 1000),
         rng.integers(0, 2, 1000)]
    )  # fmt: skip
    compare("good density", ours.good.pdf(points), good.pdf(points[:, order]))
    compare("bad density", ours.bad.pdf(points), bad.pdf(points[:, order]))
    same = 0
    for trial in range(100):
        candidates = bohb.candidates(ours, np.random.default_rng(trial))

        def minimize_me(x: np.ndarray) -> float:  # HpBandSter's objective, as it writes it
            return max(1e-32, bad.pdf(x)) / max(good.pdf(x), 1e-32)

        their_pick = int(np.argmin([minimize_me(c[order]) for c in candidates]))
        our_pick = int(np.argmin(ours.ratio(candidates)))
        same += their_pick == our_pick
    for name, diff in rows:
        print(f"{name:18s} largest relative difference {diff:.2e}")
    print(f"same candidate picked from the same 64 candidates: {same}/100 draws")
    ok = ours.budget == budget and all(d <= 1e-9 for _, d in rows) and same == 100
    print("MATCH" if ok else "DIFFERENT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
