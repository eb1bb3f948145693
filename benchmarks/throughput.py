"""Throughput and latency of ask -> tell with W concurrent workers, side by side in one run:
Rung (a real `rung serve`), the floor (FastAPI + SQLAlchemy inserting and updating one row
at its best, benchmarks/floor_app.py) and Optuna's RDB storage with its defaults, in two
loops from W processes: the loop its documentation shows for Hyperband (RandomSampler +
HyperbandPruner; ask, 3 suggests, report, should_prune, tell) and the storage alone (ask
with the 3 distributions, tell; no pruner). All on the same database server, each on its
own database. Rung and the floor run side by side, are warmed up for `--warmup` seconds,
then take turns of `--seconds`, `--rounds` times each, who goes first alternating (the
machine's speed drifts within a run); then each of Optuna's two loops runs as many turns
as long (alone: its processes' connections do not fit beside the servers'). The table gives
the median of the rates, and of the per-round ratios of Rung to the floor.

    python -m benchmarks.throughput [--smoke] [--workers 1,8,32] [--studies 1] [--seconds 4]
                                    [--rounds 12] [--warmup 3]

With `--studies 8 --workers 32`, Rung's 32 workers are 8 studies' 4 workers each (as are
Optuna's), against the floor with the same 32 workers.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from benchmarks.common import (
    Connection,
    Latencies,
    database,
    parser,
    run_clients,
    rung_server,
    serve,
    table,
)

STUDY = {
    "name": "throughput",
    "objective": "val_loss",
    "max_epochs": 81,
    "factor": 3,
    "hyperband_iterations": None,  # never "wait", never "done": asks always get a trial
    "seed": 1,
    "hyperparameters": [
        {
            "type": "float",
            "name": "learning_rate",
            "min_value": 1e-5,
            "max_value": 1e-1,
            "sampling": "log",
        },
        {"type": "int", "name": "units", "min_value": 16, "max_value": 1024},
        {"type": "choice", "name": "activation", "values": ["relu", "tanh", "gelu"]},
    ],
}


def study_name(index: int) -> str:
    """The name of the benchmark's `index`th study: the first is the one growth.py loads."""
    return STUDY["name"] if index == 0 else f"{STUDY['name']}-{index}"


async def measure_rung(
    url: str, workers: int, seconds: float, studies: int = 1
) -> tuple[float, Latencies]:
    """Pairs/s of `workers` workers, worker i on study i % `studies`."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        # Creating is idempotent: a study loaded beforehand (benchmarks/growth.py) is reused.
        ids = [
            (await http.post("/v1/studies", json={**STUDY, "name": study_name(i)})).json()["id"]
            for i in range(studies)
        ]

    async def loop(worker: int, deadline: float, lat: Latencies) -> int:
        rng, done, name = random.Random(worker), 0, f"w{worker}"
        study = ids[worker % studies]
        http = await Connection.open(url)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                answer = await http.post(f"/v1/studies/{study}/ask", {"worker_id": name})
                lat.add("ask", time.perf_counter() - t0)
                if answer["status"] != "run":
                    raise RuntimeError(f"unexpected answer {answer}")
                t1 = time.perf_counter()
                await http.post(
                    f"/v1/studies/{study}/trials/{answer['trial']['id']}/tell",
                    {"metrics": {"val_loss": rng.random()}, "worker_id": name},
                )
                lat.add("tell", time.perf_counter() - t1)
                done += 1
        finally:
            await http.close()
        return done

    return await run_clients(workers, seconds, loop)


async def measure_floor(url: str, workers: int, seconds: float) -> tuple[float, Latencies]:
    async def loop(worker: int, deadline: float, lat: Latencies) -> int:
        rng, done = random.Random(worker), 0
        http = await Connection.open(url)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                trial = await http.post("/ask", {"worker_id": f"w{worker}"})
                lat.add("ask", time.perf_counter() - t0)
                t1 = time.perf_counter()
                await http.post(f"/tell/{trial['id']}", {"score": rng.random()})
                lat.add("tell", time.perf_counter() - t1)
                done += 1
        finally:
            await http.close()
        return done

    return await run_clients(workers, seconds, loop)


OPTUNA_LOOPS = {
    # The loop Optuna's documentation shows for Hyperband: RandomSampler + HyperbandPruner,
    # ask, three suggests, one report and a pruning check (the pruner reads the study's
    # trials), tell.
    "loop": "RandomSampler + HyperbandPruner: ask, 3 suggests, report, should_prune, tell",
    # The storage alone: ask with the three distributions (sampled at ask), tell; no pruner.
    "ask-tell": "RandomSampler, no pruner: ask(distributions), tell",
}


def _optuna_worker(
    url: str, loop: str, study_name: str, commands: mp.Queue, results: mp.Queue
) -> None:
    """One Optuna worker process on `study_name`: on each command (start time, seconds), run
    `loop` for that long and put (trials, errors, ask latencies, tell latencies)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)  # Optuna's defaults
    pruner = (
        optuna.pruners.HyperbandPruner(max_resource=81)
        if loop == "loop"
        else optuna.pruners.NopPruner()
    )
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=pruner,
    )
    distributions = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
        "units": optuna.distributions.IntDistribution(16, 1024),
        "activation": optuna.distributions.CategoricalDistribution(["relu", "tanh", "gelu"]),
    }
    rng = random.Random()
    while (command := commands.get()) is not None:
        start, seconds = command
        done, errors, asks, tells = 0, 0, [], []
        time.sleep(max(0.0, start - time.time()))
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            try:
                t0 = time.perf_counter()
                if loop == "loop":
                    trial = study.ask()
                    asks.append(time.perf_counter() - t0)
                    trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
                    trial.suggest_int("units", 16, 1024)
                    trial.suggest_categorical("activation", ["relu", "tanh", "gelu"])
                    value = rng.random()
                    trial.report(value, step=1)
                    trial.should_prune()
                else:
                    trial = study.ask(distributions)
                    asks.append(time.perf_counter() - t0)
                    value = rng.random()
                t1 = time.perf_counter()
                study.tell(trial, value)
                tells.append(time.perf_counter() - t1)
                done += 1
            except Exception:  # e.g. "database is locked" on SQLite (Optuna #820)
                errors += 1
        results.put((done, errors, asks, tells))


class OptunaSide:
    """W Optuna worker processes, worker i on study i % `studies`, kept alive for the whole
    cell so that they take turns, as Rung and the floor do with each other."""

    def __init__(self, url: str, workers: int, loop: str, studies: int = 1) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        for i in range(studies):
            optuna.create_study(study_name=study_name(i), storage=url)
        context = mp.get_context("spawn")
        self.results: mp.Queue = context.Queue()
        self.commands: list[mp.Queue] = [context.Queue() for _ in range(workers)]
        self.processes = [
            context.Process(
                target=_optuna_worker,
                args=(url, loop, study_name(i % studies), queue, self.results),
            )
            for i, queue in enumerate(self.commands)
        ]
        for process in self.processes:
            process.start()
        self.errors = 0

    def measure(self, seconds: float, lead: float = 0.2) -> tuple[float, Latencies]:
        start = time.time() + lead
        for queue in self.commands:
            queue.put((start, seconds))
        done, latencies = 0, Latencies()
        for _ in self.processes:
            n, errors, asks, tells = self.results.get(timeout=seconds + lead + 300)
            done, self.errors = done + n, self.errors + errors
            latencies.extend(Latencies({"ask": asks, "tell": tells}))
        return done / seconds, latencies

    def close(self) -> None:
        for queue in self.commands:
            queue.put(None)
        for process in self.processes:
            process.join()


@dataclass
class SideBySide:
    """Every side measured in turns: the medians of their rates, each round's rates, and
    the latencies of all rounds together."""

    rates: dict[str, list[float]]
    latencies: dict[str, Latencies]
    errors: dict[str, int]

    def rate(self, side: str) -> float:
        return statistics.median(self.rates[side])

    def ratios(self, side: str, other: str) -> list[float]:
        return [
            a / b if b else math.inf
            for a, b in zip(self.rates[side], self.rates[other], strict=True)
        ]

    def ratio(self, side: str, other: str) -> float:
        return statistics.median(self.ratios(side, other))


def take_turns(
    measures: dict[str, Callable[[float], tuple[float, Latencies]]],
    seconds: float,
    rounds: int,
    warmup: float,
) -> tuple[dict[str, list[float]], dict[str, Latencies]]:
    """Warm each side up for `warmup` seconds (not measured: connections, prepared
    statements, caches), then let them take turns, `rounds` times, `seconds` each, the
    order rotating so that each goes first as often. Short turns put all under the same
    machine: its speed drifts by tens of per cent within a minute."""
    if warmup > 0:
        for measure in measures.values():
            measure(warmup)
    sides = list(measures)
    rates: dict[str, list[float]] = {side: [] for side in sides}
    latencies = {side: Latencies() for side in sides}
    for i in range(rounds):
        for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
            rate, lat = measures[side](seconds)
            rates[side].append(rate)
            latencies[side].extend(lat)
    return rates, latencies


def side_by_side(
    kind: str, workers: int, studies: int, seconds: float, rounds: int, warmup: float
) -> SideBySide:
    """Rung and the floor take turns, each on its own database of `kind`, Rung's workers
    spread over `studies` studies (the floor has none: one row per ask); then each of
    Optuna's two loops runs as many turns, as long, once the servers are gone: W Optuna
    processes hold about 2 W connections, and beside the servers' pools they exceed
    PostgreSQL's 100 at W=32."""
    command = [sys.executable, "benchmarks/floor_app.py"]
    with (
        database(kind) as rung_url,
        rung_server(rung_url) as rung,
        database(kind) as floor_url,
        serve(command, {"FLOOR_DATABASE_URL": floor_url}) as floor,
    ):
        rates, latencies = take_turns(
            {
                "rung": lambda t: asyncio.run(measure_rung(rung.url, workers, t, studies)),
                "floor": lambda t: asyncio.run(measure_floor(floor.url, workers, t)),
            },
            seconds,
            rounds,
            warmup,
        )
    errors = {}
    for loop in OPTUNA_LOOPS:  # one at a time: W processes hold about 2 W connections
        name = f"optuna {loop}"
        with database(kind) as url:
            side = OptunaSide(url, workers, loop, studies)
            try:
                side.measure(warmup, lead=10 + 0.3 * workers)  # it imports and connects first
                more_rates, more_latencies = take_turns({name: side.measure}, seconds, rounds, 0)
            finally:
                side.close()
        rates.update(more_rates)
        latencies.update(more_latencies)
        errors[name] = side.errors
    return SideBySide(rates, latencies, errors)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--workers", default="1,8,32")
    p.add_argument(
        "--studies", type=int, default=1, help="Rung's and Optuna's workers spread over this many"
    )
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument(
        "--warmup", type=float, default=3.0, help="seconds each server runs before its turns"
    )
    args = p.parse_args()
    seconds = 1.0 if args.smoke else args.seconds
    rounds = 1 if args.smoke else args.rounds
    warmup = 0.5 if args.smoke else args.warmup
    workers = [4] if args.smoke else [int(w) for w in args.workers.split(",")]
    rows = []
    for kind in args.databases.split(","):
        for w in workers:
            cell = side_by_side(kind, w, args.studies, seconds, rounds, warmup)
            lat = cell.latencies
            rows.append(
                [
                    kind,
                    w,
                    args.studies,
                    cell.rate("rung"),
                    cell.rate("floor"),
                    f"{cell.ratio('rung', 'floor'):.2f} "
                    f"({', '.join(f'{r:.2f}' for r in cell.ratios('rung', 'floor'))})",
                    cell.rate("optuna loop"),
                    cell.rate("optuna ask-tell"),
                    f"{cell.rate('rung') / cell.rate('optuna loop'):.1f}",
                    f"{cell.rate('rung') / cell.rate('optuna ask-tell'):.1f}",
                    lat["rung"].p50("ask"),
                    lat["rung"].p99("ask"),
                    lat["floor"].p50("ask"),
                    lat["floor"].p99("ask"),
                    f"{lat['rung'].p99('ask') / lat['floor'].p99('ask'):.2f}",
                    lat["rung"].p50("tell"),
                    lat["rung"].p99("tell"),
                    lat["optuna ask-tell"].p50("ask"),
                    lat["optuna ask-tell"].p99("ask"),
                    f"{cell.errors['optuna loop']}, {cell.errors['optuna ask-tell']}",
                ]
            )
            print(f"done: {kind} W={w}", file=sys.stderr, flush=True)
    print(
        table(
            [
                "db",
                "W",
                "studies",
                "Rung pairs/s",
                "floor pairs/s",
                "Rung/floor (each round)",
                "Optuna loop trials/s",
                "Optuna ask-tell trials/s",
                "Rung/Optuna loop",
                "Rung/Optuna ask-tell",
                "Rung ask p50 ms",
                "Rung ask p99 ms",
                "floor ask p50 ms",
                "floor ask p99 ms",
                "ask p99 Rung/floor",
                "Rung tell p50 ms",
                "Rung tell p99 ms",
                "Optuna ask-tell ask p50 ms",
                "Optuna ask-tell ask p99 ms",
                "Optuna errors (loop, ask-tell)",
            ],
            rows,
        )
    )
    for loop, what in OPTUNA_LOOPS.items():
        print(f"Optuna {loop}: {what}; RDBStorage with Optuna's defaults")


if __name__ == "__main__":
    main()
