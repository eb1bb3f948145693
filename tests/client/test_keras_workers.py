"""Real Keras training (PyTorch backend, CPU): worker processes against a real server run a
whole Hyperband iteration; promoted trials really resume; a killed worker's trial is taken
over; a missing parent checkpoint means training from scratch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.core.schedule import Schedule
from tests.servers import running_server, wait_until

pytestmark = [pytest.mark.keras, pytest.mark.slow]
JOB = str(Path(__file__).with_name("digits_job.py"))


def start_worker(server, tmp_path, name, *, shared_dir=True, **env):
    environment = dict(
        os.environ,
        RUNG_TEST_RECORD=str(tmp_path / "records.jsonl"),
        OMP_NUM_THREADS="1",
        KERAS_BACKEND="torch",
        **env,
    )
    with open(tmp_path / f"{name}.log", "wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rung.cli",
                "worker",
                JOB,
                "--server",
                server.url,
                "--worker-id",
                name,
                *(["--checkpoint-dir", str(tmp_path / "checkpoints")] if shared_dir else []),
            ],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    worker.log_path = tmp_path / f"{name}.log"
    return worker


def records(tmp_path):
    path = tmp_path / "records.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def all_trials(http, study_id):
    return http.get(f"/v1/studies/{study_id}/trials", params={"limit": 1000}).json()["items"]


def finished(workers, timeout=240):
    for worker in workers:
        code = worker.wait(timeout=timeout)
        assert code == 0, worker.log_path.read_text()[-3000:]
    return [worker.log_path.read_text() for worker in workers]


def test_two_workers_run_an_iteration_and_promoted_trials_resume(tmp_path, sqlite_template):
    import shutil

    database = tmp_path / "rung.db"
    shutil.copy(sqlite_template, database)
    with running_server(f"sqlite:///{database}", tmp_path) as server:
        workers = [
            start_worker(server, tmp_path, f"worker-{i}", RUNG_TEST_START_TOGETHER="2")
            for i in range(2)
        ]
        logs = finished(workers)
        http = httpx.Client(base_url=server.url)
        study = http.get("/v1/studies").json()["items"][0]
        assert http.get(f"/v1/studies/{study['id']}").json()["status"] == "done"
        trials = all_trials(http, study["id"])
    schedule = Schedule(9, 3)
    assert len(trials) == schedule.trials_per_iteration()
    assert all(t["status"] == "completed" for t in trials)
    assert {t["worker_id"] for t in trials} == {"worker-0", "worker-1"}  # both worked
    for log in logs:  # a progress line per trial and a summary
        assert "trial" in log and "score" in log and "time outside fit per trial" in log

    checkpoints = tmp_path / "checkpoints" / f"study-{study['id']}"
    promoted = [r for r in records(tmp_path) if "weights" in r and r["parent"] is not None]
    assert len(promoted) == sum(1 for t in trials if t["parent_trial_id"] is not None) > 0
    from tests.client.digits_job import weights_digest

    for record in promoted:
        with np.load(checkpoints / f"trial-{record['parent']}.npz") as parent:
            weights = [parent[f"w{i}"] for i in range(sum(k.startswith("w") for k in parent.files))]
            parent_steps = int(parent["o0"])  # the optimizer's iteration counter
        assert record["weights"] == weights_digest(weights), "did not start from the parent"
        assert record["iterations"] == parent_steps > 0, "optimizer state was not restored"
        assert record["ran"] == list(range(record["initial_epoch"], record["epochs"]))
    fresh = [r for r in records(tmp_path) if "weights" in r and r["parent"] is None]
    assert all(r["iterations"] == 0 and r["ran"][0] == 0 for r in fresh)


def test_a_killed_worker_does_not_stop_the_study(tmp_path, sqlite_template):
    import shutil

    database = tmp_path / "rung.db"
    shutil.copy(sqlite_template, database)
    env = {"RUNG_TEST_LEASE": "2", "RUNG_TEST_STUDY": "kill"}
    with running_server(f"sqlite:///{database}", tmp_path) as server:
        victim = start_worker(server, tmp_path, "victim", RUNG_TEST_HANG_AT_TRIAL="3", **env)
        survivor = start_worker(server, tmp_path, "survivor", **env)
        deadline = time.monotonic() + 120
        killed_trial = None
        while killed_trial is None and time.monotonic() < deadline:  # the victim's 3rd trial
            hanging = [r["hanging"] for r in records(tmp_path) if "hanging" in r]
            if hanging:  # it holds the trial's lease and waits inside it: kill it there
                killed_trial = hanging[0]
                victim.send_signal(signal.SIGKILL)
            time.sleep(0.05)
        assert killed_trial is not None, "the victim never got to its third trial"
        victim.wait(timeout=10)
        finished([survivor])
        http = httpx.Client(base_url=server.url)
        study = http.get("/v1/studies").json()["items"][0]
        assert http.get(f"/v1/studies/{study['id']}").json()["status"] == "done"
        trials = all_trials(http, study["id"])
    assert len(trials) == Schedule(9, 3).trials_per_iteration()
    assert all(t["status"] == "completed" for t in trials)
    taken_over = next(t for t in trials if t["id"] == killed_trial)
    assert taken_over["lost_leases"] == 1 and taken_over["worker_id"] == "survivor"


def test_a_missing_parent_checkpoint_means_training_from_scratch(client, tmp_path, monkeypatch):
    import rung.keras
    from rung.client import Client
    from tests.client import digits_job

    monkeypatch.setenv("RUNG_TEST_RECORD", str(tmp_path / "records.jsonl"))
    monkeypatch.setattr(rung.keras.checkpoint, "save", lambda model, path, **_: None)
    sdk = Client("http://localhost", transport=client._transport)
    tuner = rung.keras.Tuner(
        digits_job.build_model,
        objective="val_accuracy",
        max_epochs=3,
        study="no-checkpoints",
        client=sdk,
        checkpoint_dir=tmp_path,
        worker_id="solo",
        verbose=0,
    )
    with pytest.warns(UserWarning, match="cannot be loaded.*training from scratch to epoch 3"):
        tuner.search(**digits_job.fit_kwargs())
    promoted = [r for r in records(tmp_path) if "weights" in r and r["parent"] is not None]
    assert promoted and all(r["ran"] == [0, 1, 2] for r in promoted)
    best = tuner.get_best_hyperparameters(2)
    assert len(best) == 2 and "units" in best[0].values
    assert all(t.overhead_s >= 0 for t in tuner.timings)


def test_workers_that_share_no_directory_resume_through_the_service(tmp_path, sqlite_template):
    """Checkpoints travel through the server: a promoted trial starts from the weights and
    optimizer step its parent ended with, also when another worker trained the parent.

    worker-0 runs alone and quits when it is handed its first promoted trial, whose parents
    it trained; worker-1 then takes that trial over and finishes the study, so at least one
    promoted trial continues a parent trained by the other worker, whatever the timing."""
    import shutil

    from tests.client.digits_job import QUIT_AT_PROMOTED

    database = tmp_path / "rung.db"
    shutil.copy(sqlite_template, database)
    env = {"RUNG_DATA_DIR": str(tmp_path / "server-data"), "RUNG_CHECKPOINT_GC_SECONDS": "0.5"}
    study_env = {"RUNG_TEST_STUDY": "no-shared-dir", "RUNG_TEST_LEASE": "2"}
    with running_server(f"sqlite:///{database}", tmp_path, env=env) as server:
        first = start_worker(
            server,
            tmp_path,
            "worker-0",
            shared_dir=False,
            RUNG_TEST_QUIT_AT_PROMOTED="1",
            **study_env,
        )
        assert first.wait(timeout=240) == QUIT_AT_PROMOTED, first.log_path.read_text()[-3000:]
        finished([start_worker(server, tmp_path, "worker-1", shared_dir=False, **study_env)])
        http = httpx.Client(base_url=server.url)
        study = http.get("/v1/studies").json()["items"][0]
        trials = all_trials(http, study["id"])
        stored = tmp_path / "server-data" / "checkpoints"
        wait_until(  # the collector runs in the background after the last tell
            lambda: len(list(stored.rglob("*.ckpt"))) <= 10, "the collector to keep the best 10"
        )
        best = http.get(f"/v1/studies/{study['id']}/best", params={"k": 10}).json()["items"]
        kept = [
            http.get(f"/v1/studies/{study['id']}/trials/{t['id']}/checkpoint").status_code
            for t in best
        ]
    assert all(t["status"] == "completed" for t in trials)
    ended = {r["trial"]: r for r in records(tmp_path) if "final_weights" in r}
    owner = {t["id"]: t["worker_id"] for t in trials}
    promoted = [r for r in ended.values() if r["parent"] is not None]
    assert promoted
    crossed = 0
    for record in promoted:
        parent = ended[record["parent"]]
        assert record["weights"] == parent["final_weights"], "did not start from the parent"
        assert record["iterations"] == parent["final_iterations"] > 0
        assert record["ran"] == list(range(record["initial_epoch"], record["epochs"]))
        crossed += owner[record["trial"]] != owner[record["parent"]]
    assert crossed > 0, "no trial continued another worker's parent: nothing was shown"
    assert any(t["lost_leases"] == 1 and t["worker_id"] == "worker-1" for t in trials)
    # only the 10 best trials' checkpoints are kept at the end (the tuner's
    # keep_best_checkpoints=10, for get_best_models)
    assert study["settings"]["keep_best_checkpoints"] == 10
    assert kept == [200] * 10
    assert len(list((tmp_path / "server-data" / "checkpoints").rglob("*.ckpt"))) == 10
    assert not (tmp_path / "checkpoints").exists()  # no shared directory was used


def test_three_workers_started_at_once_with_a_conditional_space_finish_one_study(tmp_path):
    """`discover_space` used to fill values at random: each process described another
    space, and all but one were refused (409). Now every process joins the same study."""
    job = str(Path(__file__).with_name("conditional_job.py"))
    with running_server(f"sqlite:///{tmp_path / 'rung.db'}", tmp_path) as server:
        env = dict(os.environ, OMP_NUM_THREADS="1", KERAS_BACKEND="torch")
        workers = []
        for i in range(3):
            log = open(tmp_path / f"worker-{i}.log", "wb")  # noqa: SIM115 (closed below)
            workers.append(
                (
                    subprocess.Popen(
                        [sys.executable, job, server.url, f"worker-{i}", "conditional"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    ),
                    log,
                )
            )
        for i, (worker, log) in enumerate(workers):
            code = worker.wait(timeout=300)
            log.close()
            assert code == 0, (tmp_path / f"worker-{i}.log").read_text()[-3000:]
        http = httpx.Client(base_url=server.url)
        studies = http.get("/v1/studies").json()["items"]
        assert [s["name"] for s in studies] == ["conditional"]
        study = http.get(f"/v1/studies/{studies[0]['id']}").json()
        assert study["status"] == "done"
        assert study["progress"]["trials"]["completed"] == Schedule(9, 3).trials_per_iteration()
        names = {hp["name"] for hp in study["hyperparameters"]}
        assert {"layers", "units_0", "dropout", "rate", "optimizer", "momentum", "beta_1"} <= names
