"""Throughput and latency of ask -> tell with W concurrent workers, side by side in one run:
Rung (a real `rung serve`), the floor (FastAPI + SQLAlchemy inserting and updating one row,
benchmarks/floor_app.py) and Optuna's RDB storage (RandomSampler + HyperbandPruner; ask ->
3 suggests -> report -> tell, from W processes), on the same database server. Rung and the
floor run side by side, are warmed up for `--warmup` seconds, then take turns of
`--seconds`, `--rounds` times each (the machine's speed drifts within a run); the table
gives the median of their rates and of the per-round ratios.

    python -m benchmarks.throughput [--smoke] [--workers 1,8,32] [--seconds 4] [--rounds 12]
                                    [--warmup 3]
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
import statistics
import sys
import time
from dataclasses import dataclass

import httpx

from benchmarks.common import (
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


async def measure_rung(url: str, workers: int, seconds: float) -> tuple[float, Latencies]:
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        # Creating is idempotent: a study loaded beforehand (benchmarks/growth.py) is reused.
        study = (await http.post("/v1/studies", json=STUDY)).json()["id"]

        async def loop(worker: int, deadline: float, lat: Latencies) -> int:
            rng, done, name = random.Random(worker), 0, f"w{worker}"
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                answer = (
                    await http.post(f"/v1/studies/{study}/ask", json={"worker_id": name})
                ).json()
                lat.add("ask", time.perf_counter() - t0)
                if answer["status"] != "run":
                    raise RuntimeError(f"unexpected answer {answer}")
                t1 = time.perf_counter()
                told = await http.post(
                    f"/v1/studies/{study}/trials/{answer['trial']['id']}/tell",
                    json={"metrics": {"val_loss": rng.random()}, "worker_id": name},
                )
                told.raise_for_status()
                lat.add("tell", time.perf_counter() - t1)
                done += 1
            return done

        return await run_clients(workers, seconds, loop)


async def measure_floor(url: str, workers: int, seconds: float) -> tuple[float, Latencies]:
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def loop(worker: int, deadline: float, lat: Latencies) -> int:
            rng, done = random.Random(worker), 0
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                trial = (await http.post("/ask", json={"worker_id": f"w{worker}"})).json()
                lat.add("ask", time.perf_counter() - t0)
                t1 = time.perf_counter()
                (
                    await http.post(f"/tell/{trial['id']}", json={"score": rng.random()})
                ).raise_for_status()
                lat.add("tell", time.perf_counter() - t1)
                done += 1
            return done

        return await run_clients(workers, seconds, loop)


def _optuna_worker(url: str, start: float, seconds: float, results: mp.Queue) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    study = optuna.load_study(
        study_name="throughput",
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=optuna.pruners.HyperbandPruner(max_resource=81),
    )
    rng, done, errors, asks, tells = random.Random(), 0, 0, [], []
    time.sleep(max(0.0, start - time.time()))
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        try:
            t0 = time.perf_counter()
            trial = study.ask()
            asks.append(time.perf_counter() - t0)
            trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
            trial.suggest_int("units", 16, 1024)
            trial.suggest_categorical("activation", ["relu", "tanh", "gelu"])
            value = rng.random()
            trial.report(value, step=1)
            trial.should_prune()
            t1 = time.perf_counter()
            study.tell(trial, value)
            tells.append(time.perf_counter() - t1)
            done += 1
        except Exception:  # e.g. "database is locked" on SQLite (Optuna #820)
            errors += 1
    results.put((done, errors, asks, tells))


def measure_optuna(
    url: str, workers: int, seconds: float, *, warmup: float = 5.0
) -> tuple[float, Latencies, int]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="throughput", storage=url)
    results: mp.Queue = mp.get_context("spawn").Queue()
    start = time.time() + warmup + 0.1 * workers  # every process imported and connected then
    processes = [
        mp.get_context("spawn").Process(target=_optuna_worker, args=(url, start, seconds, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    done = errors = 0
    latencies = Latencies()
    for _ in processes:
        n, e, asks, tells = results.get(timeout=seconds + 120)
        done, errors = done + n, errors + e
        latencies.samples.setdefault("ask", []).extend(asks)
        latencies.samples.setdefault("tell", []).extend(tells)
    for process in processes:
        process.join()
    return done / seconds, latencies, errors


@dataclass
class SideBySide:
    """Rung and the floor measured in turns: the medians of their rates and of the ratios
    of each round, and the latencies of all rounds together."""

    rung: float
    floor: float
    ratios: list[float]
    rung_lat: Latencies
    floor_lat: Latencies

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def rung_and_floor(
    kind: str, workers: int, seconds: float, rounds: int, warmup: float
) -> SideBySide:
    """Both servers run side by side, each on its own database, and are warmed up for
    `warmup` seconds (not measured: connections, prepared statements, caches); then they
    take turns, `rounds` times, `seconds` each, who goes first alternating. Short turns put
    both under the same machine: its speed drifts by tens of per cent within a minute."""
    command = [sys.executable, "benchmarks/floor_app.py"]
    with (
        database(kind) as rung_url,
        rung_server(rung_url) as rung,
        database(kind) as floor_url,
        serve(command, {"FLOOR_DATABASE_URL": floor_url}) as floor,
    ):
        sides = {
            "rung": lambda t: asyncio.run(measure_rung(rung.url, workers, t)),
            "floor": lambda t: asyncio.run(measure_floor(floor.url, workers, t)),
        }
        for measure in sides.values():
            measure(warmup)
        rates: dict[str, list[float]] = {"rung": [], "floor": []}
        latencies = {"rung": Latencies(), "floor": Latencies()}
        for i in range(rounds):
            for name in ("rung", "floor") if i % 2 == 0 else ("floor", "rung"):
                rate, lat = sides[name](seconds)
                rates[name].append(rate)
                latencies[name].extend(lat)
    return SideBySide(
        rung=statistics.median(rates["rung"]),
        floor=statistics.median(rates["floor"]),
        ratios=[r / f for r, f in zip(rates["rung"], rates["floor"], strict=True)],
        rung_lat=latencies["rung"],
        floor_lat=latencies["floor"],
    )


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--workers", default="1,8,32")
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
            pair = rung_and_floor(kind, w, seconds, rounds, warmup)
            rung, rung_lat, floor_lat = pair.rung, pair.rung_lat, pair.floor_lat
            with database(kind) as url:
                optuna, optuna_lat, optuna_errors = measure_optuna(
                    url, w, seconds, warmup=2.0 if args.smoke else 5.0
                )
            rows.append(
                [
                    kind,
                    w,
                    rung,
                    pair.floor,
                    optuna,
                    f"{pair.ratio:.2f} ({', '.join(f'{r:.2f}' for r in pair.ratios)})",
                    f"{rung / optuna:.1f}" if optuna else "inf",
                    rung_lat.p50("ask"),
                    rung_lat.p99("ask"),
                    floor_lat.p50("ask"),
                    floor_lat.p99("ask"),
                    f"{rung_lat.p99('ask') / floor_lat.p99('ask'):.2f}",
                    rung_lat.p50("tell"),
                    rung_lat.p99("tell"),
                    optuna_lat.p50("ask"),
                    optuna_lat.p99("ask"),
                    optuna_errors,
                ]
            )
            print(f"done: {kind} W={w}", file=sys.stderr, flush=True)
    print(
        table(
            [
                "db",
                "W",
                "Rung pairs/s",
                "floor pairs/s",
                "Optuna trials/s",
                "Rung/floor (each round)",
                "Rung/Optuna",
                "Rung ask p50 ms",
                "Rung ask p99 ms",
                "floor ask p50 ms",
                "floor ask p99 ms",
                "ask p99 Rung/floor",
                "Rung tell p50 ms",
                "Rung tell p99 ms",
                "Optuna ask p50 ms",
                "Optuna ask p99 ms",
                "Optuna errors",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
