"""End to end: a real `rung serve` process, 32 workers asking and telling at once over HTTP,
a whole Hyperband iteration (max_epochs=27, factor=3), on SQLite and PostgreSQL. Concurrency
bugs hide in timing, so it runs several times."""

import random
import threading
import time
from collections import Counter

import httpx
import pytest

from service.core.schedule import Schedule
from tests.api.helpers import study_body
from tests.faults.checks import audit_counters
from tests.servers import running_server

WORKERS = 32


def run_worker(base: str, study_id: str, name: str, handouts: list, told: dict, errors: list):
    rng = random.Random(name)
    with httpx.Client(base_url=base, timeout=30) as http:
        try:
            while True:
                answer = http.post(f"/v1/studies/{study_id}/ask", json={"worker_id": name})
                answer.raise_for_status()
                body = answer.json()
                if body["status"] == "done":
                    return
                if body["status"] == "wait":
                    time.sleep(body["retry_after_s"] * (0.5 + rng.random()))
                    continue
                trial = body["trial"]
                handouts.append((trial["id"], name, time.monotonic()))
                path = f"/v1/studies/{study_id}/trials/{trial['id']}"
                for epoch in range(trial["initial_epoch"], trial["epochs"]):
                    loss = rng.random()
                    http.post(
                        f"{path}/report",
                        json={"epoch": epoch, "worker_id": name, "metrics": {"val_loss": loss}},
                    ).raise_for_status()
                final = rng.random()
                response = http.post(
                    f"{path}/tell", json={"metrics": {"val_loss": final}, "worker_id": name}
                )
                response.raise_for_status()
                told[trial["id"]] = response.json()["score"]
        except Exception as exc:  # reported by the test
            errors.append(f"{name}: {exc!r}")


@pytest.mark.parametrize("repeat", range(3))
def test_32_workers_run_one_iteration(database_url, tmp_path, repeat):
    with (
        running_server(database_url, tmp_path) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        created = http.post(
            "/v1/studies",
            json=study_body(f"e2e-{repeat}", max_epochs=27, factor=3, seed=repeat + 1),
        )
        assert created.status_code == 201, created.text[:300]
        sid = created.json()["id"]
        handouts: list = []
        told: dict = {}
        errors: list = []
        threads = [
            threading.Thread(
                target=run_worker, args=(server.url, sid, f"w{i}", handouts, told, errors)
            )
            for i in range(WORKERS)
        ]
        for thread in threads:
            thread.start()
        audits = 0
        while any(thread.is_alive() for thread in threads):  # counters match rows meanwhile
            audit_counters(database_url, sid)
            audits += 1
            time.sleep(0.2)
        assert audits > 0
        for thread in threads:
            thread.join(timeout=300)
        assert not errors, errors[:5]
        audit_counters(database_url, sid)

        schedule = Schedule(27, 3)
        ids = [trial_id for trial_id, _, _ in handouts]
        assert len(ids) == len(set(ids)) == schedule.trials_per_iteration()  # never twice

        trials = []
        cursor = None
        while True:
            params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
            page = http.get(f"/v1/studies/{sid}/trials", params=params).json()
            trials += page["items"]
            if not (cursor := page["next_cursor"]):
                break
        assert len(trials) == schedule.trials_per_iteration()
        for trial in trials:  # every result recorded once, as told
            assert trial["status"] == "completed" and trial["runs"] == 1
            assert trial["score"] == told[trial["id"]]
            assert [h["epoch"] for h in trial["history"]] == list(
                range(trial["initial_epoch"], trial["epochs"])
            )
        shape = Counter((t["bracket"], t["round"], t["epochs"]) for t in trials)
        assert shape == Counter(
            {
                (b, r, schedule.epochs(b, r)): schedule.size(b, r)
                for b in range(schedule.num_brackets)
                for r in range(b + 1)
            }
        )
        study = http.get(f"/v1/studies/{sid}").json()
        assert study["status"] == "done"
        assert study["progress"]["trials"]["completed"] == schedule.trials_per_iteration()
