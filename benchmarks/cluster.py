"""A simulated cluster: W workers against a real `rung serve`, each trial's training replaced
by a sleep proportional to the epochs it trains (a few 5x stragglers), on a synthetic
learning-curve objective. Reports worker utilisation (busy time / (W x wall time)), the wall
time of one Hyperband iteration against the ideal, and the best score. The ideal counts the
work actually done, stragglers' extra time included: the larger of (all trials' training
time) / W and the longest trial. The study runs Rung's default scheduler (Keras Tuner's);
the asynchronous one is measured in benchmarks/search_efficiency.py (`--iterations`).

    python -m benchmarks.cluster [--smoke] [--workers 4,16,64] [--epoch-seconds 0.1]
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time

import httpx

from benchmarks.common import database, parser, rung_server, table
from service.core.schedule import Schedule

MAX_EPOCHS, FACTOR = 81, 3
SPACE = [
    {
        "type": "float",
        "name": "learning_rate",
        "min_value": 1e-5,
        "max_value": 1e-1,
        "sampling": "log",
    },
    {"type": "int", "name": "units", "min_value": 16, "max_value": 1024},
    {"type": "float", "name": "dropout", "min_value": 0.0, "max_value": 0.6},
]


def learning_curve(values: dict, epoch: int, rng: random.Random) -> float:
    """loss(x, t) = f(x) + c(x) * t^-a(x) + noise: f is the floor a configuration converges
    to, c and a how fast it gets there."""
    lr, units, dropout = values["learning_rate"], values["units"], values["dropout"]
    floor = 0.1 + 0.05 * (math.log10(lr) + 2.5) ** 2 + 0.1 * (math.log2(units) - 8) ** 2 / 9
    floor += 0.2 * (dropout - 0.3) ** 2
    scale = 1.0 + 0.5 * dropout
    rate = 0.3 + 0.6 * min(1.0, lr * 100)
    return floor + scale * epoch ** (-rate) + rng.gauss(0, 0.005)


async def simulate(url: str, workers: int, epoch_seconds: float, seed: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        body = {
            "name": f"cluster-{workers}",
            "objective": "val_loss",
            "max_epochs": MAX_EPOCHS,
            "factor": FACTOR,
            "seed": seed,
            "hyperparameters": SPACE,
        }
        study = (await http.post("/v1/studies", json=body)).json()["id"]
        busy = [0.0] * workers
        longest = 0.0
        rng = random.Random(seed)
        started = time.perf_counter()

        async def worker(index: int) -> None:
            nonlocal longest
            name = f"sim-{index}"
            while True:
                answer = (
                    await http.post(f"/v1/studies/{study}/ask", json={"worker_id": name})
                ).json()
                if answer["status"] == "done":
                    return
                if answer["status"] == "wait":
                    await asyncio.sleep(answer["retry_after_s"] * rng.uniform(0.5, 1.5))
                    continue
                trial = answer["trial"]
                epochs = trial["epochs"] - trial["initial_epoch"]
                straggler = 5.0 if rng.random() < 0.05 else 1.0
                t0 = time.perf_counter()
                await asyncio.sleep(epochs * epoch_seconds * straggler)
                busy[index] += time.perf_counter() - t0
                longest = max(longest, time.perf_counter() - t0)
                loss = learning_curve(trial["hyperparameters"], trial["epochs"], rng)
                (
                    await http.post(
                        f"/v1/studies/{study}/trials/{trial['id']}/tell",
                        json={"metrics": {"val_loss": loss}, "worker_id": name},
                    )
                ).raise_for_status()

        await asyncio.gather(*(worker(i) for i in range(workers)))
        wall = time.perf_counter() - started
        best = (await http.get(f"/v1/studies/{study}/best")).json()["items"][0]
    ideal = max(sum(busy) / workers, longest)
    return {
        "utilisation": sum(busy) / (workers * wall),
        "wall": wall,
        "ideal": ideal,
        "best": best["score"],
    }


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--workers", default="4,16,64")
    p.add_argument("--epoch-seconds", type=float, default=0.1)
    args = p.parse_args()
    workers = [4] if args.smoke else [int(w) for w in args.workers.split(",")]
    epoch_seconds = 0.001 if args.smoke else args.epoch_seconds
    rows = []
    for kind in args.databases.split(","):
        for w in workers:
            # "wait" answers scaled like the epochs (1 s against minutes-long epochs in use)
            wait = str(max(0.01, 5 * epoch_seconds))
            with database(kind) as url, rung_server(url, RUNG_WAIT_SECONDS=wait) as server:
                result = asyncio.run(simulate(server.url, w, epoch_seconds, seed=7))
            rows.append(
                [
                    kind,
                    w,
                    f"{result['utilisation'] * 100:.0f}%",
                    result["wall"],
                    result["ideal"],
                    f"{result['wall'] / result['ideal']:.2f}",
                    f"{result['best']:.4f}",
                ]
            )
            print(f"done: {kind} W={w}", file=sys.stderr, flush=True)
    print(
        f"one Hyperband iteration, max_epochs={MAX_EPOCHS}, factor={FACTOR}: "
        f"{Schedule(MAX_EPOCHS, FACTOR).epochs_per_iteration()} epochs, "
        f"{epoch_seconds}s per epoch, 5% of trials 5x slower, 'wait' hints of "
        f"{max(0.01, 5 * epoch_seconds)}s; ideal: max(training time / workers, longest trial)"
    )
    print(
        table(
            ["db", "workers", "utilisation", "wall s", "ideal s", "wall/ideal", "best val_loss"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
