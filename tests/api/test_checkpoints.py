"""Checkpoints through the API: upload and download (streamed, hashed), limits, who may
upload, crashes mid-upload, and garbage collection over a whole iteration."""

import hashlib
import os
import signal
import socket

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.usecases import checkpoints
from tests.api.helpers import ask, assert_error, create, tell
from tests.conftest import LOCAL
from tests.servers import running_server, wait_until


def path_of(sid, tid):
    return f"/v1/studies/{sid}/trials/{tid}/checkpoint"


def put(client, sid, tid, body, worker="w1", sha=True, **headers):
    if sha:
        headers["X-Checkpoint-SHA256"] = hashlib.sha256(body).hexdigest()
    return client.put(path_of(sid, tid), content=body, headers={"X-Rung-Worker": worker, **headers})


def test_upload_download_and_replace(client):
    sid = create(client)["id"]
    tid = ask(client, sid, "w1")["trial"]["id"]
    assert_error(client.get(path_of(sid, tid)), 404, "not_found", "has no checkpoint")
    first = os.urandom(300_000)
    stored = put(client, sid, tid, first)
    assert stored.status_code == 201, stored.text
    assert stored.json() == {
        "trial_id": tid,
        "size": len(first),
        "sha256": hashlib.sha256(first).hexdigest(),
    }
    got = client.get(path_of(sid, tid))
    assert got.content == first
    assert got.headers["x-checkpoint-sha256"] == hashlib.sha256(first).hexdigest()
    second = b"newer weights" * 1000
    assert put(client, sid, tid, second).status_code == 201
    assert client.get(path_of(sid, tid)).content == second
    assert client.app.state.ctx.store.count() == 1  # the old one is gone


def test_limits_hash_and_who_may_upload(client, settings):
    sid = create(client)["id"]
    tid = ask(client, sid, "w1")["trial"]["id"]
    other = ask(client, sid, "w2")["trial"]["id"]
    assert_error(
        put(client, sid, tid, b"x" * 10, worker="w2"),
        409,
        "lease_lost",
        "only the worker holding its lease",
    )
    assert_error(client.put(path_of(sid, tid), content=b"x"), 422, "invalid", "x-rung-worker")
    bad = client.put(
        path_of(sid, tid),
        content=b"abc",
        headers={"X-Rung-Worker": "w1", "X-Checkpoint-SHA256": "0" * 64},
    )
    assert_error(bad, 422, "invalid", "x-checkpoint-sha256: the upload's SHA-256 is")
    assert_error(client.get(path_of(sid, tid)), 404, "not_found")  # nothing was stored
    assert_error(put(client, "999", tid, b"x"), 404, "not_found")
    assert_error(put(client, sid, "777", b"x"), 404, "not_found")
    assert_error(client.get(path_of(sid, "777")), 404, "not_found")
    assert put(client, sid, other, b"w2's", worker="w2").status_code == 201
    tell(client, sid, other, 0.5)
    assert_error(put(client, sid, other, b"late", worker="w2"), 409, "not_running")
    assert client.get(path_of(sid, other)).content == b"w2's"
    assert client.app.state.ctx.store.count() == 1
    assert not list(settings.data_dir.rglob("*.partial"))


def test_size_limit(settings):
    small = settings.model_copy(update={"max_checkpoint_bytes": 1000})
    with TestClient(create_app(small), base_url=LOCAL) as client:
        sid = create(client)["id"]
        tid = ask(client, sid, "w1")["trial"]["id"]
        assert_error(put(client, sid, tid, b"x" * 1001), 413, "too_large", "larger than")

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(5):
                yield b"y" * 400

        streamed = client.put(path_of(sid, tid), content=chunks(), headers={"X-Rung-Worker": "w1"})
        assert_error(streamed, 413, "too_large")
        assert put(client, sid, tid, b"z" * 1000).status_code == 201
        assert client.app.state.ctx.store.count() == 1
    assert not list(settings.data_dir.rglob("*.partial"))


def test_garbage_collection_over_a_whole_iteration(settings):
    """Every trial uploads; at the end only the best `keep_best_checkpoints` remain, and
    while the iteration runs the parents of running promoted trials are kept."""
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        sid = create(client, max_epochs=9, keep_best_checkpoints=2)["id"]
        ctx = client.app.state.ctx
        peak = 0
        while (answer := ask(client, sid, "w"))["status"] == "run":
            trial = answer["trial"]
            if trial["parent_trial_id"] is not None:  # its parent's checkpoint is still there
                got = client.get(path_of(sid, trial["parent_trial_id"]))
                assert got.status_code == 200, trial
            assert (
                put(
                    client, sid, trial["id"], f"weights of {trial['id']}".encode(), worker="w"
                ).status_code
                == 201
            )
            tell(client, sid, trial["id"], 1.0 / (1 + int(trial["id"])))
            checkpoints.collect(ctx)
            peak = max(peak, ctx.store.count())
        checkpoints.collect(ctx)
        best = client.get(f"/v1/studies/{sid}/best", params={"k": 2}).json()["items"]
        assert ctx.store.count() == 2  # the files themselves
        for trial in best:
            assert client.get(path_of(sid, trial["id"])).status_code == 200
        assert peak <= 12  # bracket 2's round 0 (9 trials) + promoted parents + the best two
        assert client.delete(f"/v1/studies/{sid}").status_code == 204
        assert ctx.store.count() == 0


def partials(root):
    return list(root.rglob("*.partial"))


def wait_for_partial(root):
    """Return once the server has started writing an upload (a `.partial` with bytes)."""
    wait_until(lambda: any(p.stat().st_size > 0 for p in partials(root)), "an upload to begin")


def raw_put(port, sid, tid, worker, total, sent):
    """Start an upload of `total` bytes and send only `sent` of them."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"PUT /v1/studies/{sid}/trials/{tid}/checkpoint HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nX-Rung-Worker: {worker}\r\nContent-Length: {total}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    sock.sendall(head + b"p" * sent)
    return sock


@pytest.mark.parametrize("crash", ["client disconnects", "server killed"])
def test_a_crash_mid_upload_never_shows_half_a_checkpoint(database_url, tmp_path, crash):
    with running_server(
        database_url, tmp_path, env={"RUNG_DATA_DIR": str(tmp_path / "data")}
    ) as server:
        http = httpx.Client(base_url=server.url)
        sid = http.post("/v1/studies", json={"name": "c", "objective": "val_loss"}).json()["id"]
        tid = http.post(f"/v1/studies/{sid}/ask", json={"worker_id": "w"}).json()["trial"]["id"]
        old = b"complete old checkpoint"
        assert put(http, sid, tid, old, worker="w").status_code == 201
        sock = raw_put(server.port, sid, tid, "w", total=5_000_000, sent=2_000_000)
        wait_for_partial(tmp_path / "data" / "checkpoints")
        if crash == "client disconnects":
            sock.close()
            store = tmp_path / "data" / "checkpoints"
            wait_until(lambda: not partials(store), "the cut upload to be removed")
        else:
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            sock.close()
            server.start()
        got = http.get(path_of(sid, tid))
        assert got.status_code == 200 and got.content == old  # the old one, whole
        http.close()
    files = list((tmp_path / "data" / "checkpoints").rglob("*.ckpt"))
    assert len(files) == 1 and files[0].read_bytes() == old
    debris = partials(tmp_path / "data" / "checkpoints")
    assert crash == "server killed" or not debris  # a killed server's debris is invisible
