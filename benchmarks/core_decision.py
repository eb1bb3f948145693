"""The scheduling core's cost per decision, with 1k, 10k and 100k trials of history.

The core reads a compact view (open brackets' counters and indexed look-ups), so a decision
should cost the same however long the study has run. Measured on the in-memory reference
store (service.core.memory), which keeps the same indexes as the SQL one. With
`"sampler": "bohb"` and `"scheduler": "async"` (1k and 10k trials) a new configuration fits
BOHB's model on the results of its largest budget: that part grows with the history.

    python -m benchmarks.core_decision [--smoke]
"""

from __future__ import annotations

import gc
import random
import time

from benchmarks.common import parser, table
from rung.space import Choice, Float, Int, SearchSpace
from service.core.decisions import Done, Wait
from service.core.hyperband import decide
from service.core.memory import MemoryStudy
from service.core.objective import parse_objective
from service.core.schedule import Schedule
from service.core.state import StudyConfig

SPACE = SearchSpace(
    (
        Float("learning_rate", 1e-5, 1e-1, sampling="log"),
        Int("units", 16, 1024),
        Choice("activation", ("relu", "tanh", "gelu")),
    )
)


def study_with_history(trials: int, **options: str) -> MemoryStudy:
    config = StudyConfig(
        schedule=Schedule(81, 3, None),
        objective=parse_objective("val_loss"),
        space=SPACE,
        **options,  # type: ignore[arg-type]
    )
    study = MemoryStudy(config, seed=1)
    rng = random.Random(0)
    while len(study.trials) < trials:
        trial = study.ask("w")
        study.tell(trial.number, score=rng.random())  # type: ignore[union-attr]
    return study


def microseconds_per_decision(study: MemoryStudy, decisions: int) -> float:
    """Mean cost of one decision over `decisions` ask/tell cycles (every kind of decision in
    its Hyperband proportion: new configurations, promotions, new brackets)."""
    # The history's objects are long-lived, as in a server's database: keep Python's cyclic
    # garbage collector from re-scanning them, which would measure the heap, not the core.
    gc.collect()
    gc.freeze()
    rng, spent = random.Random(1), 0.0
    for _ in range(decisions):
        started = time.perf_counter()
        decision = decide(study.config, study)
        spent += time.perf_counter() - started
        assert not isinstance(decision, Wait | Done)
        trial = study.ask("w")  # applies the same decision (the core is deterministic)
        study.tell(trial.number, score=rng.random())  # type: ignore[union-attr]
    gc.unfreeze()
    return spent / decisions * 1e6


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    sizes = [1_000, 5_000] if args.smoke else [1_000, 10_000, 100_000]
    decisions = 500 if args.smoke else 20_000
    rows = []
    for options, chosen in (({}, sizes), ({"sampler": "bohb", "scheduler": "async"}, sizes[:2])):
        base = None
        for size in chosen:
            study = study_with_history(size, **options)
            cost = microseconds_per_decision(study, decisions if not options else decisions // 10)
            base = base or cost
            shown = " + ".join(options.values()) or "hyperband, random"
            rows.append([shown, size, cost, f"{cost / base:.2f}"])
    print(table(["options", "trials in the study", "µs per decision", "ratio to 1k"], rows))


if __name__ == "__main__":
    main()
