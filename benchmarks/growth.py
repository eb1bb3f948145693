"""Ask and tell cost as the study grows: 1k, 10k, 100k and 1M trials already in it (loaded
in bulk from a real Hyperband run of the core), against a real `rung serve`; the server's
peak memory at each size; Optuna's RDB storage at the largest sizes it reaches in the time.

    python -m benchmarks.growth [--smoke] [--sizes 1000,10000,100000,1000000] [--seconds 6]
                                [--rounds 3]
"""

from __future__ import annotations

import asyncio
import functools
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, text, update

from benchmarks.common import database, parser, rung_server, table
from benchmarks.core_decision import study_with_history
from benchmarks.throughput import STUDY, measure_rung
from rung.schemas import StudyCreate
from service.core.memory import MemoryStudy
from service.db import migrate
from service.db.models import BracketRow, StudyRow, TrialRow
from service.db.transactions import Database
from service.usecases import studies
from service.usecases.context import Context


def bulk_load(url: str, trials: int) -> None:
    """A study named like the throughput one, with `trials` completed trials, brackets and
    sampler state exactly as a real run leaves them."""
    migrate.upgrade(url)
    memory = _history(trials)
    db = Database(url, pool_size=2)
    ctx = Context(db=db)
    study_id = int(studies.create_study(ctx, StudyCreate(**STUDY))[0].id)
    now = datetime.now(UTC)
    with db.write() as session:
        bracket_ids = {}
        for b in memory.brackets:
            bracket_ids[b.id] = session.execute(
                insert(BracketRow)
                .values(
                    study_id=study_id,
                    iteration=b.iteration,
                    bracket=b.bracket,
                    sizes=list(b.sizes),
                    created=b.created,
                    completed=b.completed,
                    active=0,
                    is_open=b.is_open,
                    created_at=now,
                )
                .returning(BracketRow.id)
            ).scalar_one()
        rows = [
            {
                "id": t.number + 1,
                "study_id": study_id,
                "number": t.number,
                "bracket_id": bracket_ids[t.bracket_id],
                "iteration": t.iteration,
                "bracket": t.bracket,
                "round": t.round,
                "epochs": t.epochs,
                "initial_epoch": t.initial_epoch,
                "parent_id": None if t.parent_number is None else t.parent_number + 1,
                "parent_number": t.parent_number,
                "values": t.values,
                "values_hash": t.values_hash,
                "status": "completed",
                "worker_id": "bulk",
                "runs": 1,
                "failed_runs": 0,
                "lost_leases": 0,
                "score": t.score,
                "score_key": t.score,
                "promoted": t.promoted,
                "created_at": now,
                "finished_at": now,
            }
            for t in memory.trials
        ]
        for start in range(0, len(rows), 5000):
            session.execute(insert(TrialRow), rows[start : start + 5000])
        last = memory.brackets[-1]
        session.execute(
            update(StudyRow)
            .where(StudyRow.id == study_id)
            .values(
                seed_state=memory.seed_state,
                last_iteration=last.iteration,
                last_bracket=last.bracket,
                trial_count=len(memory.trials),
            )
        )
        if db.dialect == "postgresql":
            session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('trials', 'id'), "
                    "(SELECT max(id) FROM trials))"
                )
            )
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    db.dispose()


@functools.cache
def _history(trials: int) -> MemoryStudy:
    """The core's run of `trials` trials, made once per size (1M take about a minute)."""
    return study_with_history(trials)


def optuna_rate(url: str, trials: int, seconds: float) -> float:
    """Optuna trials/s (ask -> 3 suggests -> report -> tell, one process) with `trials`
    completed trials already in the study."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="growth",
        storage=url,
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.HyperbandPruner(max_resource=81),
    )
    rng = random.Random(0)
    distributions = {
        "learning_rate": FloatDistribution(1e-5, 1e-1, log=True),
        "units": IntDistribution(16, 1024),
        "activation": CategoricalDistribution(["relu", "tanh", "gelu"]),
    }
    batch = []
    for _ in range(trials):
        params = {
            "learning_rate": 10 ** rng.uniform(-5, -1),
            "units": rng.randint(16, 1024),
            "activation": rng.choice(["relu", "tanh", "gelu"]),
        }
        batch.append(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=rng.random(),
                intermediate_values={1: rng.random()},
            )
        )
    study.add_trials(batch)
    done, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
        trial.suggest_int("units", 16, 1024)
        trial.suggest_categorical("activation", ["relu", "tanh", "gelu"])
        trial.report(rng.random(), step=1)
        trial.should_prune()
        study.tell(trial, rng.random())
        done += 1
    return done / (time.perf_counter() - started)


@dataclass
class Run:
    rate1: float  # pairs/s, 1 worker
    ask_p50: float
    tell_p50: float
    rate8: float  # pairs/s, 8 workers
    rss: float  # the server's peak RSS, MiB
    loaded: float  # seconds to load the study


def measure_size(kind: str, size: int, seconds: float) -> Run:
    """A new database with a study of `size` trials, then a real server on it."""
    with database(kind) as url:
        loaded = time.perf_counter()
        bulk_load(url, size)
        loaded = time.perf_counter() - loaded
        with rung_server(url) as server:
            rate1, lat1 = asyncio.run(measure_rung(server.url, 1, seconds))
            rate8, _ = asyncio.run(measure_rung(server.url, 8, seconds))
            rss = server.peak_rss_mib()
    return Run(rate1, lat1.p50("ask"), lat1.p50("tell"), rate8, rss, loaded)


def _slowdown(first: list[float], these: list[float]) -> str:
    """The median over rounds of (rate at the smallest size / rate at this size), and each."""
    ratios = [a / r for a, r in zip(first, these, strict=True)]
    each = ", ".join(f"{r:.2f}" for r in ratios)
    return f"{statistics.median(ratios):.2f}" + (f" ({each})" if len(ratios) > 1 else "")


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--sizes", default="1000,10000,100000,1000000")
    p.add_argument("--optuna-sizes", default="1000,10000")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    sizes = [200, 2000] if args.smoke else [int(s) for s in args.sizes.split(",")]
    optuna_sizes = [200] if args.smoke else [int(s) for s in args.optuna_sizes.split(",")]
    seconds = 1.0 if args.smoke else args.seconds
    rounds = 1 if args.smoke else args.rounds
    rows = []
    for kind in args.databases.split(","):
        # The sizes take turns, `rounds` times (the machine's speed drifts within a run):
        # medians of the rates, and of each round's ratio to the smallest size.
        runs: dict[int, list[Run]] = {size: [] for size in sizes}
        for _ in range(rounds):
            for size in sizes:
                runs[size].append(measure_size(kind, size, seconds))
        for size in sizes:
            first, these = runs[sizes[0]], runs[size]
            rows.append(
                [
                    kind,
                    "Rung",
                    size,
                    statistics.median(r.rate1 for r in these),
                    _slowdown([a.rate1 for a in first], [r.rate1 for r in these]),
                    statistics.median(r.ask_p50 for r in these),
                    statistics.median(r.tell_p50 for r in these),
                    statistics.median(r.rate8 for r in these),
                    _slowdown([a.rate8 for a in first], [r.rate8 for r in these]),
                    max(r.rss for r in these),
                    f"{statistics.median(r.loaded for r in these):.0f}s",
                ]
            )
            print(f"done: {kind} Rung {size}", file=sys.stderr, flush=True)
        optuna_base = None
        for size in optuna_sizes:
            with database(kind) as url:
                loaded = time.perf_counter()
                rate = optuna_rate(url, size, seconds)
                loaded = time.perf_counter() - loaded - seconds
            optuna_base = optuna_base or rate
            rows.append(
                [
                    kind,
                    "Optuna",
                    size,
                    rate,
                    f"{optuna_base / rate:.2f}",
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"{loaded:.0f}s",
                ]
            )
            print(f"done: {kind} Optuna {size}", file=sys.stderr, flush=True)
    print(
        table(
            [
                "db",
                "system",
                "trials already in",
                "pairs/s (1 worker)",
                f"slowdown vs {sizes[0]}",
                "ask p50 ms",
                "tell p50 ms",
                "pairs/s (8 workers)",
                "slowdown (8)",
                "server peak RSS MiB",
                "bulk load",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
