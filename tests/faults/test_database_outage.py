"""PostgreSQL becomes unreachable for 20 s while four SDK workers run a study through a real
`rung serve`: every call in the meantime answers 503 with Retry-After (not 500), the server
logs one line about it (no traceback per request), the workers wait with the SDK's default
retry budget and finish the study when the database is back, and nothing is lost."""

import threading
import time

import httpx
import pytest
from sqlalchemy.engine import make_url

from rung import RetryPolicy
from service.db import migrate
from tests.faults import sim_worker
from tests.faults.checks import check_study, records
from tests.faults.proxy import TcpProxy
from tests.servers import Server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
OUTAGE_S = 20.0


def test_a_database_outage_is_a_503_with_retry_after_that_workers_ride_out(
    empty_postgres_url, tmp_path
):
    migrate.upgrade(empty_postgres_url)
    real = make_url(empty_postgres_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432).start()
    through_proxy = real.set(host="127.0.0.1", port=proxy.port)
    url = through_proxy.render_as_string(hide_password=False)
    server = Server(url, log_path=tmp_path / "server.log").start()
    record = tmp_path / "record.jsonl"
    failures: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            sim_worker.run(
                server.url, "outage", name, str(record), epoch_seconds=0.15, retry=RetryPolicy()
            )
        except BaseException as exc:  # a worker that gave up
            failures.append(exc)

    try:
        created = httpx.post(
            f"{server.url}/v1/studies", json={"name": "outage", **sim_worker.STUDY}
        )
        assert created.status_code == 201, created.text[:300]
        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        told_before = len([r for r in records(record) if r["event"] == "told"])

        proxy.stop()
        started = time.monotonic()
        time.sleep(1.0)
        probe = httpx.post(
            f"{server.url}/v1/studies/{created.json()['id']}/ask", json={"worker_id": "probe"}
        )
        assert probe.status_code == 503, probe.text[:300]
        assert probe.headers["retry-after"] == "5"
        assert probe.json()["error"]["code"] == "unavailable"
        assert "database cannot be reached" in probe.json()["error"]["message"]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
        proxy.start()

        for thread in threads:
            thread.join(timeout=240)
        assert not any(thread.is_alive() for thread in threads)
        assert failures == [], failures  # no worker gave up
        assert 0 < told_before < len([r for r in records(record) if r["event"] == "told"])
        check_study(server.url, created.json()["id"], record, database_url=empty_postgres_url)
    finally:
        server.stop()
        proxy.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    outage_lines = [line for line in log.splitlines() if "database cannot be reached" in line]
    # one line per outage from the API (not one per call), and at most one from the
    # checkpoint collector, which also waited for the database
    assert len([line for line in outage_lines if "answering 503" in line]) == 1, outage_lines
    assert len([line for line in outage_lines if "checkpoint collection" in line]) <= 1
    assert len(outage_lines) <= 2, outage_lines
