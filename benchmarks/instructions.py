"""Instructions per request, counted by valgrind's callgrind: the same count for the same
code and inputs whatever else the machine is doing, so a change of a few per cent can be
seen here, where timings drift by ±30 %. A real `rung serve` and the floor
(benchmarks/floor_app.py) each run under callgrind on the same database; one client loops
ask -> tell; the server's counters are zeroed after a warm-up and dumped after the measured
pairs (`callgrind_control`). Then one more worker's trial gets reports and heartbeats,
counted the same way (the floor has neither). One worker, so every request is a
transaction of its own: this is the cost of one request alone, the server process only
(not the database's).

    python -m benchmarks.instructions [--smoke] [--pairs 60] [--databases postgresql,sqlite]
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from benchmarks.common import Process, database, parser, rung_server, serve, table
from benchmarks.throughput import STUDY

STARTUP_S = 600  # everything runs about 50 times slower under callgrind


def callgrind(out: Path) -> tuple[str, ...]:
    return ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.%p")


def count(server: Process, out: Path, pair: Callable[[int], None], warmup: int, pairs: int) -> int:
    """Instructions per request over `pairs` pairs of requests (ask -> tell), after
    `warmup` pairs."""
    for i in range(warmup):
        pair(i)
    pid = str(server.process.pid)
    subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
    for i in range(pairs):
        pair(warmup + i)
    dumped = len(list(out.glob(f"callgrind.{pid}.*")))  # by the counts before this one
    subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    dump = out / f"callgrind.{pid}.{dumped + 1}"
    for _ in range(600):
        text = dump.read_text() if dump.exists() else ""
        totals = [line for line in text.splitlines() if line.startswith(("totals:", "summary:"))]
        if totals:
            return int(totals[0].split()[1]) // (2 * pairs)
        time.sleep(0.1)
    raise RuntimeError(f"callgrind wrote no dump to {dump}")


def measure_rung(kind: str, warmup: int, pairs: int) -> dict[str, int]:
    """Instructions per request of ask -> tell pairs, then of reports and of heartbeats
    (two per pair) on a trial one more worker holds."""
    with database(kind) as url, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        with rung_server(url, prefix=callgrind(out), startup_s=STARTUP_S) as server:
            http = httpx.Client(base_url=server.url, timeout=120)
            study = http.post("/v1/studies", json=STUDY).json()["id"]
            rng = random.Random(1)

            def pair(i: int) -> None:
                worker = {"worker_id": f"w{i % 8}"}
                answer = http.post(f"/v1/studies/{study}/ask", json=worker).json()
                http.post(
                    f"/v1/studies/{study}/trials/{answer['trial']['id']}/tell",
                    json={"metrics": {"val_loss": rng.random()}, **worker},
                ).raise_for_status()

            costs = {"ask/tell": count(server, out, pair, warmup, pairs)}
            held = {"worker_id": "reporter"}
            trial = http.post(f"/v1/studies/{study}/ask", json=held).json()["trial"]
            path = f"/v1/studies/{study}/trials/{trial['id']}"
            epochs = range(trial["initial_epoch"], trial["epochs"])

            def reports(i: int) -> None:
                for epoch in (epochs[(2 * i) % len(epochs)], epochs[(2 * i + 1) % len(epochs)]):
                    metrics = {"val_loss": rng.random(), "loss": rng.random()}
                    body = {"epoch": epoch, "metrics": metrics, **held}
                    http.post(f"{path}/report", json=body).raise_for_status()

            def heartbeats(_i: int) -> None:
                for _ in range(2):
                    http.post(f"{path}/heartbeat", json=held).raise_for_status()

            costs["report"] = count(server, out, reports, warmup, pairs)
            costs["heartbeat"] = count(server, out, heartbeats, warmup, pairs)
            return costs


def measure_floor(kind: str, warmup: int, pairs: int) -> int:
    with database(kind) as url, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        command = [*callgrind(out), sys.executable, "benchmarks/floor_app.py"]
        with serve(command, {"FLOOR_DATABASE_URL": url}, startup_s=STARTUP_S) as server:
            http = httpx.Client(base_url=server.url, timeout=120)
            rng = random.Random(1)

            def pair(i: int) -> None:
                trial = http.post("/ask", json={"worker_id": f"w{i % 8}"}).json()
                http.post(f"/tell/{trial['id']}", json={"score": rng.random()}).raise_for_status()

            return count(server, out, pair, warmup, pairs)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--pairs", type=int, default=60)
    args = p.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("benchmarks.instructions needs valgrind (Debian: apt-get install valgrind)")
    warmup, pairs = (5, 5) if args.smoke else (30, args.pairs)
    kinds = args.databases.split(",")[:1] if args.smoke else args.databases.split(",")
    rows: list[list[object]] = []
    for kind in kinds:
        rung = measure_rung(kind, warmup, pairs)
        floor = measure_floor(kind, warmup, pairs)
        rows.append(
            [
                kind,
                f"{rung['ask/tell'] / 1e6:.2f}",
                f"{floor / 1e6:.2f}",
                f"{rung['ask/tell'] / floor:.2f}",
                f"{rung['report'] / 1e6:.2f}",
                f"{rung['heartbeat'] / 1e6:.2f}",
            ]
        )
        print(f"done: {kind}", file=sys.stderr, flush=True)
    header = [
        "db",
        "Rung M instructions/request",
        "floor M instructions/request",
        "Rung/floor",
        "Rung report M",
        "Rung heartbeat M",
    ]
    print(table(header, rows))


if __name__ == "__main__":
    main()
