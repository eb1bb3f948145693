"""Operations: Prometheus metrics, structured logs with the study and trial ids, and a
graceful shutdown that finishes the requests in flight."""

import json
import signal
import sqlite3
import threading
import time

import httpx
from sqlalchemy import create_engine, text

from tests.api.helpers import ask, create, study_body, tell
from tests.servers import running_server


def test_metrics(client):
    sid = create(client, lease_seconds=0.2)["id"]
    first = ask(client, sid, "w1")["trial"]
    path = f"/v1/studies/{sid}/trials/{first['id']}"
    client.post(
        f"{path}/report", json={"epoch": 0, "metrics": {"val_loss": 0.5}, "worker_id": "w1"}
    )
    client.post(f"{path}/heartbeat", json={"worker_id": "w1"})
    tell(client, sid, first["id"], 0.5)
    ask(client, sid, "w2")
    time.sleep(0.4)
    ask(client, sid, "w3")  # w2's lease has expired: found and counted
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    for line in [
        'rung_asks_total{status="run"} 3.0',
        'rung_tells_total{status="completed"} 1.0',
        "rung_reports_total 1.0",
        "rung_heartbeats_total 1.0",
        "rung_lease_expiries_total 1.0",
        'rung_trials{status="completed"} 1.0',
        'rung_trials{status="running"} 1.0',
    ]:
        assert line in body, line
    ask_route = 'method="POST",route="/v1/studies/{study_id}/ask"'
    assert f"rung_request_seconds_count{{{ask_route}}} 3.0" in body


def test_json_logs_carry_study_and_trial_ids(database_url, tmp_path):
    env = {"RUNG_LOG_FORMAT": "json", "RUNG_LOG_LEVEL": "info"}
    with running_server(database_url, tmp_path, env=env) as server:
        with httpx.Client(base_url=server.url) as http:
            sid = http.post("/v1/studies", json=study_body()).json()["id"]
            trial = http.post(f"/v1/studies/{sid}/ask", json={"worker_id": "gpu-7"}).json()
            tid = trial["trial"]["id"]
            http.post(
                f"/v1/studies/{sid}/trials/{tid}/tell",
                json={"metrics": {"val_loss": 1}, "worker_id": "gpu-7"},
            )
        lines = [
            json.loads(line)
            for line in server.log_path.read_text().splitlines()
            if line.startswith("{")
        ]
    asked = [e for e in lines if e["message"] == "ask"]
    told = [e for e in lines if e["message"] == "tell"]
    assert asked and asked[0]["study_id"] == sid and asked[0]["trial_id"] == tid
    assert asked[0]["worker_id"] == "gpu-7" and asked[0]["status"] == "run"
    assert told and told[0]["trial_id"] == tid and told[0]["status"] == "completed"
    assert all({"time", "level", "logger", "message"} <= set(e) for e in lines)


def test_text_logs_quote_values_so_a_worker_id_cannot_forge_fields_or_lines(database_url, tmp_path):
    forged = "gpu-1 status=done study_id=666\u2028forged=1"
    env = {"RUNG_LOG_LEVEL": "info"}
    with running_server(database_url, tmp_path, env=env) as server:
        with httpx.Client(base_url=server.url) as http:
            sid = http.post("/v1/studies", json=study_body()).json()["id"]
            assert (
                http.post(f"/v1/studies/{sid}/ask", json={"worker_id": forged}).status_code == 200
            )
        log = server.log_path.read_text(encoding="utf-8")
    (line,) = [line for line in log.split("\n") if " ask " in line and "worker_id=" in line]
    assert f"worker_id={json.dumps(forged)}" in line
    assert "\u2028" not in log  # written escaped: the line is not split
    assert f"study_id={sid} " in line and "study_id=666 " not in line


def hold_the_database(url, study_id):
    """Block the server's transactions on this study until the returned release is called."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        return lambda: (conn.execute("COMMIT"), conn.close())
    engine = create_engine(url)
    conn = engine.connect()
    conn.execute(text("SELECT id FROM studies WHERE id = :id FOR UPDATE"), {"id": int(study_id)})
    return lambda: (conn.commit(), conn.close(), engine.dispose())


def test_shutdown_finishes_requests_in_flight(database_url, tmp_path):
    with running_server(database_url, tmp_path, env={"RUNG_LOG_LEVEL": "info"}) as server:
        sid = httpx.post(f"{server.url}/v1/studies", json=study_body()).json()["id"]
        release = hold_the_database(database_url, sid)
        answers: list = []

        def ask_once(worker):
            try:
                answers.append(
                    httpx.post(
                        f"{server.url}/v1/studies/{sid}/ask", json={"worker_id": worker}, timeout=60
                    )
                )
            except httpx.HTTPError as exc:
                answers.append(exc)

        threads = [threading.Thread(target=ask_once, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the four asks are in the server, waiting for the database
        assert not answers
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.process.poll() is None  # still finishing what it started
        release()
        for thread in threads:
            thread.join(timeout=60)
        code = server.process.wait(timeout=60)
    assert [a.status_code for a in answers] == [200] * 4, answers
    assert {a.json()["status"] for a in answers} == {"run"}
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log_path.read_text()
