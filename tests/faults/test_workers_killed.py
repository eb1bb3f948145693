"""Workers die and stall mid-trial: killed ones (SIGKILL) lose their lease and their trial is
offered again; frozen ones (SIGSTOP, like a pre-empted VM) come back after their trial went
to another worker and are told so (409 lease_lost) — their late results are not counted. The
study finishes with every result recorded once."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.faults import sim_worker
from tests.faults.checks import check_study, records
from tests.servers import running_server

ROOT = Path(__file__).resolve().parents[2]
LEASE = 1.5


def spawn(url, name, record, tmp_path):
    with open(tmp_path / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.faults.sim_worker",
                url,
                "faults",
                name,
                str(record),
                "--epoch-seconds",
                "0.05",
                "--lease-seconds",
                str(LEASE),
            ],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def create_study(url):
    body = {"name": "faults", **sim_worker.STUDY, "lease_seconds": LEASE}
    created = httpx.post(f"{url}/v1/studies", json=body)
    assert created.status_code == 201, created.text[:300]
    return created.json()["id"]


def wait_for_running(record, name, deadline):
    """Wait until worker `name` has started a trial it has not finished."""
    while time.monotonic() < deadline:
        entries = records(record)
        started = [e["trial"] for e in entries if e["event"] == "run" and e["worker"] == name]
        ended = {e["trial"] for e in entries if e["event"] != "run" and e["worker"] == name}
        if started and started[-1] not in ended:
            return started[-1]
        time.sleep(0.02)
    raise AssertionError(f"{name} never started a trial")


def test_killed_workers_trials_are_taken_over(database_url, tmp_path):
    record = tmp_path / "record.jsonl"
    rng = random.Random(3)
    with running_server(database_url, tmp_path) as server:
        sid = create_study(server.url)
        workers = {f"w{i}": spawn(server.url, f"w{i}", record, tmp_path) for i in range(6)}
        dead, killed, deadline = set(), {}, time.monotonic() + 120
        while len(killed) < 4:
            victim = rng.choice(sorted(set(workers) - dead))
            trial = wait_for_running(record, victim, deadline)
            workers[victim].send_signal(signal.SIGKILL)  # in the middle of `trial`
            workers[victim].wait()
            dead.add(victim)
            killed[victim] = trial
            replacement = f"r{len(killed)}"
            workers[replacement] = spawn(server.url, replacement, record, tmp_path)
        for name, process in workers.items():
            if name not in dead:
                assert process.wait(timeout=180) == 0, (tmp_path / f"{name}.log").read_text()
        trials = check_study(server.url, sid, record, dead=dead, database_url=database_url)
    stored = {t["id"]: t for t in trials}
    taken_over = 0
    for victim, trial_id in killed.items():
        trial = stored[trial_id]
        if trial["worker_id"] == victim:
            continue  # killed just after its tell was taken: the result stands, once
        assert trial["lost_leases"] >= 1  # the killed trial lost its lease…
        assert trial["worker_id"] not in dead  # …and a live worker finished it
        taken_over += 1
    assert taken_over >= 1


def test_a_frozen_worker_comes_back_too_late(database_url, tmp_path):
    record = tmp_path / "record.jsonl"
    with running_server(database_url, tmp_path) as server:
        sid = create_study(server.url)
        frozen = spawn(server.url, "frozen", record, tmp_path)
        trial = wait_for_running(record, "frozen", time.monotonic() + 60)
        frozen.send_signal(signal.SIGSTOP)  # pre-empted: no heartbeats, no progress
        others = [spawn(server.url, f"w{i}", record, tmp_path) for i in range(3)]
        deadline = time.monotonic() + 60
        while not any(
            e["event"] == "run" and e["trial"] == trial and e["worker"] != "frozen"
            for e in records(record)
        ):
            assert time.monotonic() < deadline, "the frozen worker's trial was not taken over"
            time.sleep(0.05)
        frozen.send_signal(signal.SIGCONT)  # back, after its trial went to another worker
        for process in [frozen, *others]:
            assert process.wait(timeout=180) == 0
        trials = check_study(server.url, sid, record, dead={"frozen"}, database_url=database_url)
    late = [e for e in records(record) if e["worker"] == "frozen" and e["trial"] == trial]
    assert {e["event"] for e in late} & {"lost", "refused"}, late  # told it lost the trial
    assert not any(e["event"] == "told" for e in late)  # and its result was not counted
    stored = next(t for t in trials if t["id"] == trial)
    assert stored["lost_leases"] == 1 and stored["worker_id"] != "frozen"
