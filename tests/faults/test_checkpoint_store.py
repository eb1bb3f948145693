"""The checkpoint store stays consistent with the database: the collector never deletes a
checkpoint a tell has just made needed, a store that fails leaves rows to try again (never a
file nothing points to), files nothing references are swept, and a recorded checkpoint
whose file is gone is a clean 404."""

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.db import repository as repo
from service.errors import StoreUnavailable
from service.usecases import checkpoints
from tests.api.helpers import ask, assert_error, create, tell
from tests.api.test_checkpoints import path_of, put, raw_put, wait_for_partial
from tests.conftest import LOCAL
from tests.servers import running_server


@pytest.mark.parametrize("window", ["first look", "look under the study's lock"])
def test_the_collector_never_deletes_a_checkpoint_a_tell_just_made_the_best(
    settings, monkeypatch, window
):
    """A tell lands in the middle of a collection, just after the collector has read the
    study's best trials (on a real server this window is a millisecond wide; here it is held
    open for up to a second), in its first look at the study or in the look it takes holding
    the study's lock. The told trial becomes the study's best: its checkpoint must survive
    this collection and the next."""
    quiet = settings.model_copy(update={"checkpoint_gc_seconds": 3600})  # collect by hand
    with TestClient(create_app(quiet), base_url=LOCAL) as client:
        ctx = client.app.state.ctx
        sid = create(client, max_epochs=1, hyperband_iterations=3)["id"]  # 3 one-trial brackets
        _run_trials(client, sid, 2)  # the best so far, and one whose checkpoint can go
        tid = ask(client, sid, "w")["trial"]["id"]
        assert put(client, sid, tid, b"the best weights", worker="w").status_code == 201
        told = []
        teller = threading.Thread(target=lambda: told.append(tell(client, sid, tid, 0.01, "w")))
        best_trials = repo.best_trials

        def best_trials_then_a_tell(session, *args, **kwargs):
            best = best_trials(session, *args, **kwargs)
            locked = bool(session.info.get("locked_studies"))  # set by repo.lock_study
            if not teller.is_alive() and not told and (window == "first look" or locked):
                teller.start()
                teller.join(timeout=1.0)  # done at once, unless the collection holds it off
            return best

        monkeypatch.setattr(repo, "best_trials", best_trials_then_a_tell)
        checkpoints.collect(ctx)
        monkeypatch.undo()
        assert teller.ident is not None, "the collector never looked at the study"
        teller.join()
        assert told[0].status_code == 200, told[0].text
        checkpoints.collect(ctx)
        assert client.get(path_of(sid, tid)).content == b"the best weights"


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _rows(client, sid) -> int:
    """Checkpoints the database records for the study (downloads that answer 200)."""
    trials = client.get(f"/v1/studies/{sid}/trials", params={"limit": 100}).json()["items"]
    return sum(client.get(path_of(sid, t["id"])).status_code == 200 for t in trials)


def _run_trials(client, sid, n):
    """n one-epoch trials, each uploading a checkpoint; the first is the best."""
    for i in range(n):
        tid = ask(client, sid, "w")["trial"]["id"]
        assert put(client, sid, tid, f"weights {i}".encode(), worker="w").status_code == 201
        assert tell(client, sid, tid, 0.1 * (i + 1), worker="w").status_code == 200


def test_a_failing_store_leaves_rows_to_retry_and_no_orphan(settings, monkeypatch):
    """While the store cannot delete, neither the collector nor DELETE drops a row whose file
    is still there; once it can, both finish the job."""
    with TestClient(create_app(settings), base_url=LOCAL) as client:
        store = client.app.state.ctx.store
        root = Path(store.root)
        sid = create(client, max_epochs=1, hyperband_iterations=3, keep_best_checkpoints=1)["id"]
        _run_trials(client, sid, 3)
        working_rm = store.fs.rm

        def read_only(path, *args, **kwargs):
            raise PermissionError(13, "Read-only file system", path)

        monkeypatch.setattr(store.fs, "rm", read_only)
        with pytest.raises(StoreUnavailable):
            checkpoints.collect(client.app.state.ctx)
        assert len(_files(root)) == _rows(client, sid) == 3
        failed = client.delete(f"/v1/studies/{sid}")
        assert_error(failed, 503, "store_unavailable", "checkpoint store", "Read-only")
        assert failed.headers["retry-after"]
        assert client.get(f"/v1/studies/{sid}").status_code == 200  # kept: try again
        assert len(_files(root)) == _rows(client, sid) == 3

        monkeypatch.setattr(store.fs, "rm", working_rm)
        assert checkpoints.collect(client.app.state.ctx) == 2
        assert len(_files(root)) == _rows(client, sid) == 1
        assert client.delete(f"/v1/studies/{sid}").status_code == 204
        assert _files(root) == []


def test_a_recorded_checkpoint_whose_file_is_gone_is_a_clean_404(client):
    sid = create(client)["id"]
    tid = ask(client, sid, "w1")["trial"]["id"]
    assert put(client, sid, tid, b"weights", worker="w1").status_code == 201
    for path in _files(Path(client.app.state.ctx.store.root)):
        path.unlink()  # lost by the store (an operator, a bucket's lifecycle rule)
    got = client.get(path_of(sid, tid))
    assert_error(got, 404, "not_found", f"trial {tid}", "missing from the checkpoint store")


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_files_nothing_references_are_swept(database_url, tmp_path):
    """What a crash leaves (an upload renamed into place but never recorded, a `.partial`) is
    removed at start and by the periodic sweep once older than RUNG_CHECKPOINT_ORPHAN_SECONDS;
    recorded checkpoints and young files are left alone."""
    data = tmp_path / "data"
    env = {
        "RUNG_DATA_DIR": str(data),
        "RUNG_CHECKPOINT_ORPHAN_SECONDS": "2",
        "RUNG_CHECKPOINT_GC_SECONDS": "0.2",
    }
    store = data / "checkpoints"
    (store / "study-1").mkdir(parents=True)
    crashed = [
        store / "study-1" / "trial-0-dead.ckpt",
        store / "study-1" / "trial-0-x.ckpt.partial",
    ]
    for path in crashed:
        path.write_bytes(b"debris")
        _age(path, 60)
    with running_server(database_url, tmp_path, env=env) as server:
        assert not any(p.exists() for p in crashed)  # swept at start
        http = httpx.Client(base_url=server.url)
        sid = create(http, max_epochs=1, hyperband_iterations=1)["id"]
        tid = ask(http, sid, "w")["trial"]["id"]
        assert put(http, sid, tid, b"kept", worker="w").status_code == 201
        orphan = store / f"study-{sid}" / "trial-9-orphan.ckpt"
        orphan.write_bytes(b"orphan")
        deadline = time.monotonic() + 15
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not orphan.exists()  # swept while serving, once old enough
        assert http.get(path_of(sid, tid)).content == b"kept"
        http.close()


def test_a_server_killed_mid_upload_leaves_no_debris_for_long(database_url, tmp_path):
    data = tmp_path / "data"
    env = {
        "RUNG_DATA_DIR": str(data),
        "RUNG_CHECKPOINT_ORPHAN_SECONDS": "1",
        "RUNG_CHECKPOINT_GC_SECONDS": "0.2",
    }
    with running_server(database_url, tmp_path, env=env) as server:
        http = httpx.Client(base_url=server.url)
        sid = create(http, max_epochs=1, hyperband_iterations=1)["id"]
        tid = ask(http, sid, "w")["trial"]["id"]
        sock = raw_put(server.port, sid, tid, "w", total=5_000_000, sent=2_000_000)
        wait_for_partial(data / "checkpoints")
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        sock.close()
        assert list((data / "checkpoints").rglob("*.partial"))  # the crash's debris
        server.start()
        deadline = time.monotonic() + 15
        while _files(data / "checkpoints") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _files(data / "checkpoints") == []
        assert_error(http.get(path_of(sid, tid)), 404, "not_found", "has no checkpoint")
        http.close()
