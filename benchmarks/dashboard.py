"""The dashboard's requests on a big study: a study of 100k trials (loaded in bulk from a real
Hyperband run of the core, each with its per-epoch history, 64 of them held by workers) behind
a real `rung serve`; each request the study page and the studies page make when they load,
timed at the client on the same machine (an upper bound on the server's time), median of
`--rounds`.

    python -m benchmarks.dashboard [--smoke] [--trials 100000] [--rounds 5]
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert, select, text, update

from benchmarks.common import database, parser, rung_server, table
from benchmarks.growth import bulk_load
from service.db.models import TrialMetricRow, TrialRow
from service.db.transactions import Database

RUNNING = 64  # trials held by workers (the page's workers table)


def add_histories_and_workers(url: str) -> int:
    """Every trial gets one metrics row per epoch it trained; the newest RUNNING trials are
    put in workers' hands. The count of metric rows."""
    db = Database(url, pool_size=2)
    now = datetime.now(UTC)
    count = 0
    with db.write() as session:
        trials = session.execute(
            select(TrialRow.id, TrialRow.initial_epoch, TrialRow.epochs, TrialRow.score)
        ).all()
        batch: list[dict] = []
        for trial_id, first, last, score in trials:
            for epoch in range(first, last):
                value = score + 1 / (epoch + 1)
                batch.append(
                    {
                        "trial_id": trial_id,
                        "epoch": epoch,
                        "created_at": now,
                        "metrics": {"val_loss": value, "loss": value * 0.9},
                    }
                )
            if len(batch) >= 20_000:
                session.execute(insert(TrialMetricRow), batch)
                count += len(batch)
                batch = []
        if batch:
            session.execute(insert(TrialMetricRow), batch)
            count += len(batch)
        newest = [t[0] for t in sorted(trials)[-RUNNING:]]
        for n, trial_id in enumerate(newest):
            session.execute(
                update(TrialRow)
                .where(TrialRow.id == trial_id)
                .values(
                    status="running",
                    worker_id=f"worker-{n}",
                    score=None,
                    score_key=None,
                    lease_expires_at=now + timedelta(minutes=2),
                    finished_at=None,
                )
            )
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    db.dispose()
    return count


def page_requests(http: httpx.Client) -> list[tuple[str, str, dict]]:
    """The requests the studies page and the study page make when they load (app.js)."""
    study = http.get("/v1/studies", params={"limit": 1}).json()["items"][0]["id"]
    best = http.get(f"/v1/studies/{study}").json()["progress"]["best_trial"]
    base = f"/v1/studies/{study}"
    return [
        ("studies page: studies with summaries", "/v1/studies", {"summary": "true", "limit": 1000}),
        ("study with progress and summary", base, {}),
        ("best so far", f"{base}/best-so-far", {}),
        (
            "workers: running trials",
            f"{base}/trials",
            {"status": "running", "history": "false", "limit": 1000},
        ),
        (
            "the best trial's bracket, histories",
            f"{base}/trials",
            {"iteration": best["iteration"], "bracket": best["bracket"], "limit": 1000},
        ),
        (
            "charts: completed trials 1-1000",
            f"{base}/trials",
            {"status": "completed", "history": "false", "limit": 1000},
        ),
        (
            "charts: completed trials 1001-2000",
            f"{base}/trials",
            {"status": "completed", "history": "false", "limit": 1000, "cursor": "__next__"},
        ),
        ("table: first page", f"{base}/trials", {"history": "false", "limit": 100}),
    ]


def measure(url: str, rounds: int) -> list[tuple[str, float, int]]:
    """(request, median ms, bytes) for each page request."""
    with rung_server(url) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        requests = page_requests(http)
        times: dict[str, list[float]] = {name: [] for name, _, _ in requests}
        sizes: dict[str, int] = {}
        for _ in range(rounds):
            cursor = None
            for name, path, params in requests:
                if params.get("cursor") == "__next__":
                    params = {**params, "cursor": cursor}
                started = time.perf_counter()
                response = http.get(path, params=params)
                times[name].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text[:300]
                sizes[name] = len(response.content)
                if name.startswith("charts") and cursor is None:
                    cursor = response.json()["next_cursor"]
    return [(name, statistics.median(times[name]), sizes[name]) for name, _, _ in requests]


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--trials", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    trials = 3000 if args.smoke else args.trials
    rounds = 2 if args.smoke else args.rounds
    for kind in args.databases.split(","):
        with database(kind) as url:
            started = time.perf_counter()
            bulk_load(url, trials)
            metric_rows = add_histories_and_workers(url)
            loaded = time.perf_counter() - started
            rows = measure(url, rounds)
        total = sum(ms for _, ms, _ in rows[1:])
        print(
            f"\n{kind}: {trials} trials, {metric_rows} epoch rows, {RUNNING} running "
            f"(loaded in {loaded:.0f} s); median of {rounds} rounds"
        )
        body = [[name, f"{ms:.1f}", f"{size / 1024:.0f}"] for name, ms, size in rows]
        body.append(["the study page, all requests", f"{total:.1f}", ""])
        print(table(["request", "ms", "KiB"], body))


if __name__ == "__main__":
    main()
