"""Search efficiency: how soon each search option reaches a target quality with W workers.

Simulated workers train simulated models: a trial's loss after `t` epochs comes from a
multi-fidelity benchmark, and its training takes `(epochs - initial_epoch) × cost(config)`
time units (one unit: one epoch of the fastest configuration; the slowest train several
times slower). Workers ask, "train" and tell, exactly as `rung worker` does, warm-starting
promotions from their parent's epochs. Methods, all with factor=3 and
`hyperband_iterations=null` unless `--iterations` says otherwise:

- random: random search at the full budget (a single bracket of max_epochs trials);
- hyperband: Keras Tuner's Hyperband (Rung's default);
- bohb: `"sampler": "bohb"`;  async: `"scheduler": "async"`;  bohb+async: both.

Benchmarks (the target of each fixed in advance: the loss that a share of random
configurations reach at the full budget, from 20,000 draws with seed 0; the runs' seeds are
10⁷ apart, so that no two draw the same configurations):

- curves (max_epochs 81, 0.1 %): a parametric learning-curve family of Rung's own,
  loss(x, t) = f(x) + c(x)·t^-a(x): a high learning rate converges fast and ends worse, so
  ranks change between budgets;
- hartmann6 (81, 0.1 %): MF-Hartmann 6-D (Kandasamy et al. 2017, as in
  mfhpo-benchmark-api): the coefficients α shifted by bias·(1 - t/R), bias 0.1;
- digits (27, 2 %): the Keras digits classifier, real validation-loss curves and real
  seconds per epoch, tabulated for all 224 configurations of a grid by
  `benchmarks/digits_table.py` (data/digits_curves.json).

Three clocks, the same loop:
- `--clock sim` (default): the decisions of the in-memory store (the same core the server
  runs), in virtual time — for many seeds and 64 workers on a small machine;
- `--clock server`: a real `rung serve` (SQLite) makes every decision over HTTP, in
  virtual time: the same numbers as `sim` when the server decides as the core does;
- `--clock real`: a real `rung serve`, workers' training as real sleeps of `--scale`
  seconds per unit (requests from one dispatcher; the measured time is the wall time, so
  the server's latency counts).

The report gives, per benchmark and W, each option's speed-up over Hyperband (and
Hyperband's over random search) beside the most any method could have: the baseline's time
over the least time in which any run can tell a result at the target (`with_target`).

`--iterations N` measures a finite budget instead: each study runs to its end, and the
report gives its wall time, utilisation and best loss (the straggler question).

    python -m benchmarks.search_efficiency --plot docs/images/search-efficiency.png
    python -m benchmarks.search_efficiency --iterations 3
    python -m benchmarks.search_efficiency --clock real --seeds 10 --workers 16 --benchmarks curves
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import database, parser, rung_server, table

R, FACTOR = 81, 3
METHODS: dict[str, dict[str, Any]] = {
    "random": {},  # factor max_epochs + 1: one bracket, every trial trains max_epochs
    "hyperband": {},
    "bohb": {"sampler": "bohb"},
    "async": {"scheduler": "async"},
    "bohb+async": {"sampler": "bohb", "scheduler": "async"},
}
FIXED_TIMES = (500, 1000, 2000)  # units: the best loss reached by then
# Run k's study seed. Keras Tuner's sampling draws with `Random(state)` for states `seed`,
# `seed + 1`, … (one per hyperparameter drawn), so the seeds 1 and 6 of a space of five
# hyperparameters would draw the same configurations but the first: far-apart seeds keep
# the runs independent (and apart from the target's draws, from state 0).
SEED_SPACING = 10_000_000


def noise(values: dict[str, Any], epochs: int, scale: float) -> float:
    """Deterministic noise per (configuration, epochs): a repeated evaluation agrees."""
    text = json.dumps([sorted(values.items()), epochs]).encode()
    u = int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2**64
    return scale * math.sqrt(-2 * math.log(max(u, 1e-300))) * math.cos(2 * math.pi * u * 7919)


@dataclass(frozen=True)
class Benchmark:
    name: str
    space: list[dict[str, Any]]
    loss: Callable[[dict[str, Any], int], float]
    cost: Callable[[dict[str, Any]], float]
    max_epochs: int = R
    quantile: float = 0.001  # the target: the loss this share of random configurations reach
    target: float = math.nan
    least_time: float = math.nan  # no run of any method can reach the target sooner


def _curves_loss(v: dict[str, Any], t: int) -> float:
    lr = math.log10(v["learning_rate"])
    best_lr = -2.5 if v["optimizer"] == "adam" else -1.5
    final = 0.05 + 0.06 * (lr - best_lr) ** 2 + 0.4 * (v["dropout"] - 0.25) ** 2
    final += 0.08 * (1 - min(1.0, math.log2(v["units"] / 16) / 5)) + 0.03 * (not v["batch_norm"])
    speed = 0.25 + 0.9 / (1 + math.exp(-2.5 * (lr + 2.2)))  # a high rate converges fast
    return final + 0.6 * t ** (-speed) + noise(v, t, 0.004)


CURVES = Benchmark(
    "curves",
    [
        {
            "type": "float",
            "name": "learning_rate",
            "min_value": 1e-4,
            "max_value": 1.0,
            "sampling": "log",
        },
        {"type": "int", "name": "units", "min_value": 16, "max_value": 1024, "sampling": "log"},
        {"type": "float", "name": "dropout", "min_value": 0.0, "max_value": 0.8},
        {"type": "choice", "name": "optimizer", "values": ["adam", "sgd"]},
        {"type": "boolean", "name": "batch_norm"},
    ],
    _curves_loss,
    lambda v: 0.5 + v["units"] / 256,  # 0.56 … 4.5: up to 8× slower
)

_ALPHA = (1.0, 1.2, 3.0, 3.2)
_A = ((10, 3, 17, 3.5, 1.7, 8), (0.05, 10, 17, 0.1, 8, 14), (3, 3.5, 1.7, 10, 17, 8),
      (17, 8, 0.05, 10, 0.1, 14))  # fmt: skip
_P = ((0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886), (0.2329, 0.4135, 0.8307, 0.3736, 0.1004,
      0.9991), (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650), (0.4047, 0.8828, 0.8732, 0.5743,
      0.1091, 0.0381))  # fmt: skip


def _hartmann_loss(v: dict[str, Any], t: int) -> float:
    x = [v[f"x{j}"] for j in range(6)]
    z = t / R
    total = 0.0
    for i in range(4):
        alpha = _ALPHA[i] - 0.1 * (1 - z)
        total -= alpha * math.exp(-sum(_A[i][j] * (x[j] - _P[i][j]) ** 2 for j in range(6)))
    return total + noise(v, t, 0.02)


HARTMANN = Benchmark(
    "hartmann6",
    [{"type": "float", "name": f"x{j}", "min_value": 0.0, "max_value": 1.0} for j in range(6)],
    _hartmann_loss,
    lambda v: 0.5 + 3 * v["x5"],  # 0.5 … 3.5: up to 7× slower
)


DIGITS_TABLE = Path(__file__).parent / "data" / "digits_curves.json"


def digits() -> Benchmark:
    """Real Keras curves, tabulated by `benchmarks/digits_table.py` for every configuration
    of its grid: the validation loss after t epochs, and the measured seconds per epoch."""
    table = json.loads(DIGITS_TABLE.read_text())
    names = list(table["grid"])
    rows = {tuple(row["values"][n] for n in names): row for row in table["configurations"]}
    fastest = min(row["seconds_per_epoch"] for row in rows.values())

    def row(v: dict[str, Any]) -> dict[str, Any]:
        return rows[tuple(v[n] for n in names)]

    return Benchmark(
        "digits",
        [{"type": "choice", "name": n, "values": vs} for n, vs in table["grid"].items()],
        lambda v, t: row(v)["val_loss"][t - 1],
        lambda v: row(v)["seconds_per_epoch"] / fastest,
        max_epochs=table["epochs"],
        quantile=0.02,  # fixed before any run (224 configurations: 0.1 % is the best one)
    )


def with_target(bench: Benchmark) -> Benchmark:
    """The loss that `bench.quantile` of random configurations reach at the full budget, and
    the least time in which any method could tell a result that good.

    A result at t epochs is told no sooner than t × cost(config) after the trial (or its
    first rung) started, whatever the schedule: so no run reaches the target before the
    cheapest (configuration, budget of the epoch ladder) that reaches it. It is taken over
    the same random configurations; on digits they cover the whole grid, so it is exact."""
    from rung.space import SearchSpace
    from service.core.sampler import sample_values
    from service.core.schedule import Schedule

    ladder = Schedule(bench.max_epochs, FACTOR)
    budgets = {ladder.epochs(b, r) for b in range(ladder.num_brackets) for r in range(b + 1)}
    space, state, draws = SearchSpace.from_dicts(bench.space), 0, []
    for _ in range(20_000):
        values, state = sample_values(space, state)
        draws.append(values)
    losses = sorted(bench.loss(values, bench.max_epochs) for values in draws)
    target = losses[int(len(losses) * bench.quantile)]
    least = min(t * bench.cost(v) for v in draws for t in budgets if bench.loss(v, t) <= target)
    return replace(bench, target=target, least_time=least)


# -- the tuner, behind two clocks -----------------------------------------------------------


class MemoryTuner:
    """The in-memory store: the server's decisions without the server."""

    def __init__(self, settings: dict[str, Any], seed: int):
        from service.core.memory import MemoryStudy
        from service.usecases.context import build_config

        self.study = MemoryStudy(build_config(settings, settings["hyperparameters"]), seed=seed)

    def ask(self, worker: str) -> dict[str, Any] | None:
        from service.core.memory import MemoryTrial

        trial = self.study.ask(worker)
        if not isinstance(trial, MemoryTrial):
            return None
        return {"id": trial.number, "values": trial.values, "epochs": trial.epochs,
                "initial_epoch": trial.initial_epoch}  # fmt: skip

    def tell(self, trial: dict[str, Any], worker: str, loss: float) -> None:
        self.study.tell(trial["id"], score=loss)


class HttpTuner:
    """A study on a real `rung serve`, over HTTP."""

    def __init__(self, client: httpx.Client, settings: dict[str, Any], seed: int, name: str):
        self.client = client
        body = {**settings, "name": name, "seed": seed}
        response = client.post("/v1/studies", json=body)
        response.raise_for_status()
        self.study_id = response.json()["id"]

    def ask(self, worker: str) -> dict[str, Any] | None:
        answer = self.client.post(f"/v1/studies/{self.study_id}/ask", json={"worker_id": worker})
        answer.raise_for_status()
        data = answer.json()
        if data["status"] != "run":
            return None
        t = data["trial"]
        return {"id": t["id"], "values": t["hyperparameters"], "epochs": t["epochs"],
                "initial_epoch": t["initial_epoch"]}  # fmt: skip

    def tell(self, trial: dict[str, Any], worker: str, loss: float) -> None:
        url = f"/v1/studies/{self.study_id}/trials/{trial['id']}/tell"
        self.client.post(
            url, json={"metrics": {"loss": loss}, "worker_id": worker}
        ).raise_for_status()


class SimClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        self.t = max(self.t, t)


class RealClock:
    def __init__(self, scale: float) -> None:
        self.scale, self.start = scale, time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self.start) / self.scale

    def wait_until(self, t: float) -> None:
        time.sleep(max(0.0, t - self.now()) * self.scale)


@dataclass
class Run:
    hit: float | None  # time units to reach the target; None: not within the cap
    best_at: dict[int, float] = field(default_factory=dict)
    utilisation: float = 0.0
    trials: int = 0
    wall: float = 0.0  # time units until the run stopped (the study's end, with a budget)
    best: float = math.inf
    trace: list[tuple[float, float]] = field(default_factory=list)  # (time, best) on a gain


def run(tuner: Any, bench: Benchmark, workers: int, clock: Any, cap: float, finite: bool) -> Run:
    """Workers ask, train and tell until the target is reached (or, with a finite budget,
    until the study is done) or the time cap."""
    idle = [f"w{i}" for i in range(workers)]
    running: list[tuple[float, int, str, dict[str, Any], float]] = []
    best, hit, busy, seq, trials = math.inf, None, 0.0, 0, 0
    best_at: dict[int, float] = {}
    trace: list[tuple[float, float]] = []
    while True:
        now = clock.now()
        waiting = []
        for worker in idle:
            trial = tuner.ask(worker)
            if trial is None:
                waiting.append(worker)
                continue
            duration = (trial["epochs"] - trial["initial_epoch"]) * bench.cost(trial["values"])
            heapq.heappush(running, (now + duration, seq, worker, trial, duration))
            seq, trials = seq + 1, trials + 1
        idle = waiting
        if not running:
            break
        if running[0][0] > cap:
            break
        end, _, worker, trial, duration = heapq.heappop(running)
        clock.wait_until(end)
        for t in FIXED_TIMES:
            if t < end and t not in best_at:
                best_at[t] = best
        loss = bench.loss(trial["values"], trial["epochs"])
        tuner.tell(trial, worker, loss)
        busy += duration
        idle.append(worker)
        if loss < best:
            best = loss
            trace.append((clock.now(), best))
        if hit is None and best <= bench.target:
            hit = clock.now()
            if not finite:
                break
    stop = min(cap, clock.now()) if not running or (hit is not None and not finite) else cap
    busy += sum(min(d, stop - (e - d)) for e, _, _, _, d in running if e - d < stop)
    for t in FIXED_TIMES:
        best_at.setdefault(t, best)  # stopped earlier: at least this good
    return Run(hit, best_at, busy / (workers * stop), trials, stop, best, trace)


def settings_of(bench: Benchmark, method: str, iterations: int | None) -> dict[str, Any]:
    settings = {
        "hyperparameters": bench.space,
        "objective": {"name": "loss", "direction": "min"},
        "max_epochs": bench.max_epochs,
        "factor": FACTOR,
        "hyperband_iterations": iterations,
        **METHODS[method],
    }
    if method == "random":
        settings["factor"] = bench.max_epochs + 1
    return settings


def full_settings(settings: dict[str, Any]) -> dict[str, Any]:
    from rung.schemas import StudySettings

    return StudySettings.model_validate(settings).model_dump(mode="json")


BENCHMARKS: dict[str, Callable[[], Benchmark]] = {
    "curves": lambda: CURVES,
    "hartmann6": lambda: HARTMANN,
    "digits": digits,
}


Results = dict[tuple[str, int, str], list[Run]]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clock", choices=("sim", "server", "real"), default="sim")
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--workers", default="16,64")
    p.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--iterations", type=int, help="hyperband_iterations (default: null)")
    p.add_argument("--cap", type=float, default=20000.0, help="time units per run at most")
    p.add_argument("--scale", type=float, default=0.05, help="real seconds per time unit")
    p.add_argument("--json", type=Path, help="write every run's result here")
    p.add_argument("--plot", type=Path, help="draw the median best loss against time (PNG)")
    args = p.parse_args()
    if args.smoke:  # the server path, for a second: 4 workers, one seed, two methods
        args.clock, args.seeds, args.workers, args.cap, args.scale = "real", 1, "4", 300.0, 0.002
        args.methods, args.benchmarks = "hyperband,bohb+async", "curves,digits"
    benches = [with_target(BENCHMARKS[name]()) for name in args.benchmarks.split(",")]
    methods = args.methods.split(",")
    workers = [int(w) for w in args.workers.split(",")]
    results: Results = {}
    started = time.monotonic()
    finite = args.iterations is not None

    def each_run(tuner_for: Callable[[dict[str, Any], int, str], Any]) -> None:
        for bench in benches:
            for w in workers:
                for method in methods:
                    settings = full_settings(settings_of(bench, method, args.iterations))
                    for seed in range(args.seeds):
                        name = f"{bench.name}-{w}-{method}-{seed}-{time.time_ns()}"
                        tuner = tuner_for(settings, (seed + 1) * SEED_SPACING, name)
                        clock = RealClock(args.scale) if args.clock == "real" else SimClock()
                        results.setdefault((bench.name, w, method), []).append(
                            run(tuner, bench, w, clock, args.cap, finite)
                        )

    if args.clock == "sim":
        each_run(lambda settings, seed, name: MemoryTuner(settings, seed))
    else:
        with (
            database("sqlite") as url,
            rung_server(url) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            each_run(lambda settings, seed, name: HttpTuner(client, settings, seed, name))
    elapsed = time.monotonic() - started
    print(f"search efficiency: clock={args.clock}"
          + (f" ({args.scale:g} s per unit)" if args.clock == "real" else "")
          + f", {args.seeds} seeds, cap {args.cap:g} units, factor={FACTOR}, "
          f"hyperband_iterations={args.iterations}, {elapsed:.0f} s")  # fmt: skip
    print("targets: " + ", ".join(
        f"{b.name} {b.target:.4f} (max_epochs {b.max_epochs})" for b in benches))  # fmt: skip
    (report_budget if finite else report)(benches, workers, methods, results)
    if args.json:
        args.json.write_text(json.dumps(
            {f"{b}|{w}|{m}": [run.__dict__ for run in runs] for (b, w, m), runs in results.items()}
        ))  # fmt: skip
    if args.plot:
        plot(benches, workers, methods, results, args.cap, args.plot)


def time_to_target(run: Run) -> float:
    return run.hit if run.hit is not None else math.inf


def per_seed_ratios(base: list[Run], runs: list[Run], cost: Callable[[Run], float]) -> list[float]:
    """For each seed, the base run's cost over this run's (above 1: this one is cheaper; 0
    where this one never got there)."""
    return [
        cost(b) / cost(r) if cost(r) < math.inf else 0.0 for b, r in zip(base, runs, strict=True)
    ]


def report(
    benches: list[Benchmark], workers: list[int], methods: list[str], results: Results
) -> None:
    rows = []
    for bench in benches:
        for w in workers:
            for method in methods:
                runs = results[(bench.name, w, method)]
                times = [time_to_target(r) for r in runs]
                q = quartiles(times)
                rows.append([
                    bench.name, w, method, f"{q[1]:.0f}", f"{q[0]:.0f}–{q[2]:.0f}",
                    f"{sum(t < math.inf for t in times)}/{len(times)}",
                    *(f"{statistics.median(r.best_at[t] for r in runs):.4f}" for t in FIXED_TIMES),
                    f"{statistics.median(r.utilisation for r in runs):.2f}",
                ])  # fmt: skip
    header = ["benchmark", "workers", "method", "time to target (median)", "quartiles",
              "reached", *(f"best at {t}" for t in FIXED_TIMES), "utilisation"]  # fmt: skip
    print(table(header, rows))
    if "hyperband" in methods:
        print(speedups(benches, workers, methods, results))


def speedups(
    benches: list[Benchmark], workers: list[int], methods: list[str], results: Results
) -> str:
    """Per benchmark and W, each method's speed-up over Hyperband: the median over seeds of
    the per-seed ratio of times to target. Beside it, the most any method could have had:
    the baseline's time over the least time in which any run can reach the target
    (`with_target`). Random search's column is Hyperband's speed-up over it. The last row
    pools every benchmark, W and seed."""
    options = [m for m in methods if m not in ("random", "hyperband")]
    columns = [*((m, "hyperband") for m in options), ("fastest", "hyperband")]
    if "random" in methods:
        columns += [("hyperband", "random"), ("fastest", "random")]
    pooled: list[list[float]] = [[] for _ in columns]
    rows = []
    for bench in benches:
        for w in workers:
            row: list[Any] = [bench.name, w]
            for ratios, (method, base) in zip(pooled, columns, strict=True):
                bases = results[(bench.name, w, base)]
                if method == "fastest":  # a run that reaches the target in the least time
                    runs = [Run(bench.least_time)] * len(bases)
                else:
                    runs = results[(bench.name, w, method)]
                cell = per_seed_ratios(bases, runs, time_to_target)
                ratios += cell
                row.append(f"{statistics.median(cell):.2f}×")
            rows.append(row)
    rows.append(["all", "", *(f"**{statistics.median(c):.2f}×**" for c in pooled)])
    header = ["benchmark", "workers", *(f"{m} over hyperband" for m in options),
              "most possible over hyperband"]  # fmt: skip
    if "random" in methods:
        header += ["hyperband over random", "most possible over random"]
    return table(header, rows)


def report_budget(
    benches: list[Benchmark], workers: list[int], methods: list[str], results: Results
) -> None:
    """A finite budget: how long the whole study takes (and against Hyperband's: the median
    of the per-seed ratios of its wall time to this one's), how busy the workers were, and
    how good its best trial is."""
    rows = []
    for bench in benches:
        for w in workers:
            base = results.get((bench.name, w, "hyperband"))
            for method in methods:
                runs = results[(bench.name, w, method)]
                q = quartiles([r.wall for r in runs])
                shorter = "–"
                if base is not None:
                    ratios = per_seed_ratios(base, runs, lambda r: r.wall)
                    shorter = f"{statistics.median(ratios):.2f}×"
                rows.append([
                    bench.name, w, method, f"{q[1]:.0f}", f"{q[0]:.0f}–{q[2]:.0f}", shorter,
                    f"{statistics.median(r.utilisation for r in runs):.2f}",
                    f"{statistics.median(r.best for r in runs):.4f}",
                    f"{sum(r.hit is not None for r in runs)}/{len(runs)}",
                    f"{statistics.median(r.trials for r in runs):.0f}",
                ])  # fmt: skip
    header = ["benchmark", "workers", "method", "study wall time (median)", "quartiles",
              "Hyperband's / this", "utilisation", "best loss (median)", "reached target",
              "trials"]  # fmt: skip
    print(table(header, rows))


def plot(
    benches: list[Benchmark], workers: list[int], methods: list[str], results: Results,
    cap: float, path: Path,
) -> None:  # fmt: skip
    """Median (over seeds) best loss so far against time, one panel per benchmark and W."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [10 ** (k / 50) for k in range(int(50 * math.log10(cap)) + 1)]
    fig, axes = plt.subplots(len(benches), len(workers), figsize=(5 * len(workers),
                             3.2 * len(benches)), squeeze=False)  # fmt: skip
    for i, bench in enumerate(benches):
        for j, w in enumerate(workers):
            ax = axes[i][j]
            for method in methods:
                runs = results[(bench.name, w, method)]
                medians = [statistics.median(best_before(r, t) for r in runs) for t in grid]
                ax.plot(grid, [m if m < math.inf else math.nan for m in medians], label=method)
            ax.axhline(bench.target, color="grey", linestyle=":", linewidth=1)
            ax.set_xscale("log")
            ax.set_title(f"{bench.name}, {w} workers", fontsize=10)
            ax.set_xlabel("time (units: one epoch of the fastest configuration)", fontsize=8)
            ax.set_ylabel("best loss so far (median)", fontsize=8)
            seen = [m for r in results[(bench.name, w, methods[0])] for _, m in r.trace]
            if seen:
                span = statistics.median(seen) - bench.target
                ax.set_ylim(bench.target - 0.5 * abs(span), bench.target + 2 * abs(span))
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def best_before(run: Run, t: float) -> float:
    """The best loss told by time t; a run that stopped at the target keeps its best."""
    best = math.inf
    for when, value in run.trace:
        if when > t:
            break
        best = value
    return best


def quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0], ordered[0], ordered[0]
    q = statistics.quantiles(ordered, n=4, method="inclusive")
    return q[0], q[1], q[2]


if __name__ == "__main__":
    main()
