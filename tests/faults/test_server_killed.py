"""The server is killed (SIGKILL) and restarted again and again while 16 workers run a study
against it, on SQLite and on PostgreSQL; and two replicas share one PostgreSQL database, each
killed in turn. The workers ride it out through the SDK's retries; at the end every result
is recorded exactly once, no trial was held by two workers, and the schedule is Keras
Tuner's."""

import threading
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import TABLES
from tests.faults import sim_worker
from tests.faults.checks import check_study, records
from tests.servers import Server

WORKERS = 16


def start_workers(urls, record, name="faults"):
    threads = [
        threading.Thread(
            target=sim_worker.run,
            daemon=True,
            args=(urls[i % len(urls)], name, f"w{i}", str(record)),
            kwargs={"epoch_seconds": 0.04},
        )
        for i in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    return threads


def study_id(url, name="faults"):
    created = httpx.post(f"{url}/v1/studies", json={"name": name, **sim_worker.STUDY})
    assert created.status_code in (200, 201), created.text[:300]
    return created.json()["id"]


def kill_while_running(servers, threads, *, kills: int, every: float = 0.8) -> int:
    done = 0
    while done < kills and any(t.is_alive() for t in threads):
        time.sleep(every)
        server = servers[done % len(servers)]
        server.kill()
        server.start()
        done += 1
    return done


def test_a_killed_server_loses_nothing(database_url, tmp_path):
    record = tmp_path / "record.jsonl"
    server = Server(database_url, log_path=tmp_path / "server.log").start()
    try:
        sid = study_id(server.url)
        threads = start_workers([server.url], record)
        kills = kill_while_running([server], threads, kills=5)
        for thread in threads:
            thread.join(timeout=180)
        assert not any(t.is_alive() for t in threads), "workers did not finish"
        assert kills >= 3, f"the study ended after {kills} kills: make it longer"
        check_study(server.url, sid, record, database_url=database_url)
    finally:
        server.stop()


@pytest.mark.postgres
def test_two_replicas_on_one_database(postgres_database, tmp_path):
    engine = create_engine(postgres_database)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    record = tmp_path / "record.jsonl"
    replicas = [
        Server(postgres_database, log_path=tmp_path / f"replica-{i}.log").start() for i in range(2)
    ]
    try:
        sid = study_id(replicas[0].url)
        threads = start_workers([r.url for r in replicas], record)
        kills = kill_while_running(replicas, threads, kills=4)
        for thread in threads:
            thread.join(timeout=180)
        assert not any(t.is_alive() for t in threads), "workers did not finish"
        assert kills >= 2
        check_study(replicas[1].url, sid, record, database_url=postgres_database)
        # the workers were spread over both replicas: each served some of the results
        told = {e["worker"] for e in records(record) if e["event"] == "told"}
        assert {f"w{i}" for i in range(0, WORKERS, 2)} & told  # replica 0's workers
        assert {f"w{i}" for i in range(1, WORKERS, 2)} & told  # replica 1's workers
    finally:
        for replica in replicas:
            replica.stop()
