"""How many checkpoints a whole Hyperband iteration keeps at once, with the retention rule of
service/core/retention.py: its peak, against the trials the iteration runs. Simulated on the
core's in-memory store (every trial uploads one checkpoint when it finishes training).

    python -m benchmarks.checkpoints [--smoke] [--max-epochs 81]
"""

from __future__ import annotations

import random

from benchmarks.common import parser, table
from benchmarks.core_decision import SPACE
from service.core.decisions import Done, Wait
from service.core.memory import MemoryStudy, MemoryTrial
from service.core.objective import parse_objective
from service.core.retention import CheckpointOwner, needed
from service.core.schedule import Schedule
from service.core.state import StudyConfig


def alive(study: MemoryStudy, uploaded: set[int], keep_best: int) -> int:
    key = study.config.objective.key
    done = sorted(
        (t for t in study.trials if t.status == "completed"), key=lambda t: (key(t.score), t.number)
    )  # type: ignore[arg-type]
    best = {t.number for t in done[:keep_best]}
    children = {t.parent_number: t.status for t in study.trials if t.parent_number is not None}
    count = 0
    for number in uploaded:
        trial = study.trials[number]
        bracket = study.brackets[trial.bracket_id]
        owner = CheckpointOwner(
            status=trial.status,
            promoted=trial.promoted,
            round=trial.round,
            bracket_open=bracket.is_open,
            sizes=bracket.sizes,
            created=tuple(bracket.created),
            child_status=children.get(number),
            among_best=number in best,
        )
        count += needed(owner)
    return count


def peak_checkpoints(max_epochs: int, workers: int, keep_best: int = 1) -> tuple[int, int]:
    config = StudyConfig(
        schedule=Schedule(max_epochs, 3), objective=parse_objective("val_loss"), space=SPACE
    )
    study = MemoryStudy(config, seed=1)
    rng = random.Random(workers)
    running: dict[str, MemoryTrial] = {}
    uploaded: set[int] = set()
    peak, idle = 0, [f"w{i}" for i in range(workers)]
    while True:
        while idle:
            answer = study.ask(idle[-1])
            if isinstance(answer, Wait | Done):
                break
            running[idle.pop()] = answer
        if not running:
            return peak, alive(study, uploaded, keep_best)
        worker = rng.choice(sorted(running))
        trial = running.pop(worker)
        uploaded.add(trial.number)  # uploaded after training, before the tell
        study.tell(trial.number, score=rng.random())
        idle.append(worker)
        peak = max(peak, alive(study, uploaded, keep_best))


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--max-epochs", type=int, default=81)
    args = p.parse_args()
    max_epochs = 9 if args.smoke else args.max_epochs
    schedule = Schedule(max_epochs, 3)
    rows = []
    for workers in [1, 8] if args.smoke else [1, 8, 64]:
        peak, end = peak_checkpoints(max_epochs, workers)
        rows.append([max_epochs, workers, schedule.trials_per_iteration(), peak, end])
    print(
        table(
            [
                "max_epochs",
                "workers",
                "trials run",
                "peak checkpoints kept",
                "kept at the end (keep_best_checkpoints=1)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
