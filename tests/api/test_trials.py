"""Ask, report, heartbeat and tell over HTTP, in-process, on SQLite and PostgreSQL: every
answer and every error status."""

import time
from collections import Counter

from service.core.schedule import Schedule

from .helpers import ask, assert_error, create, tell


def trial_path(study_id, trial_id, action=""):
    return f"/v1/studies/{study_id}/trials/{trial_id}" + (f"/{action}" if action else "")


def test_a_whole_iteration_follows_the_schedule(client):
    study = create(client, max_epochs=9, factor=3)
    sid, handed = study["id"], []
    while (answer := ask(client, sid))["status"] == "run":
        trial = answer["trial"]
        handed.append(trial)
        assert trial["status"] == "running" and trial["worker_id"] == "w1"
        assert trial["lease_expires_at"] is not None
        assert tell(client, sid, trial["id"], float(trial["id"])).status_code == 200
    assert answer == {
        "status": "done",
        "trial": None,
        "retry_after_s": None,
        "reason": "completed: every bracket of every Hyperband iteration has finished",
    }
    schedule = Schedule(9, 3)
    counts = Counter((t["bracket"], t["round"], t["epochs"], t["initial_epoch"]) for t in handed)
    expected = Counter()
    for b in range(schedule.num_brackets):
        for r in range(b + 1):
            expected[(b, r, schedule.epochs(b, r), schedule.initial_epoch(b, r))] = schedule.size(
                b, r
            )
    assert counts == expected
    for t in handed:  # a promoted trial names its parent and keeps its values
        if t["parent_trial_id"] is not None:
            parent = client.get(trial_path(sid, t["parent_trial_id"])).json()
            assert parent["hyperparameters"] == t["hyperparameters"]
            assert parent["epochs"] == t["initial_epoch"]
    assert client.get(f"/v1/studies/{sid}").json()["status"] == "done"


def test_ask_is_idempotent_per_worker(client):
    sid = create(client)["id"]
    first = ask(client, sid, "gpu-0")["trial"]
    again = ask(client, sid, "gpu-0")["trial"]
    other = ask(client, sid, "gpu-1")["trial"]
    assert again["id"] == first["id"] and other["id"] != first["id"]


def test_wait_then_run_when_a_promotion_opens(client):
    sid = create(client, max_epochs=3, factor=3)["id"]  # brackets: 3 -> 1 trials, then 2
    trials = [ask(client, sid, f"w{i}")["trial"] for i in range(5)]
    waiting = ask(client, sid, "w5")
    assert waiting["status"] == "wait" and waiting["retry_after_s"] > 0
    for value, trial in zip((0.5, 0.2, 0.9), trials[:3], strict=True):
        tell(client, sid, trial["id"], value)
    promoted = ask(client, sid, "w5")["trial"]
    assert promoted["round"] == 1 and promoted["parent_trial_id"] == trials[1]["id"]
    assert (promoted["initial_epoch"], promoted["epochs"]) == (1, 3)


def test_ask_errors(client):
    assert_error(client.post("/v1/studies/42/ask", json={"worker_id": "w"}), 404, "not_found")
    sid = create(client)["id"]
    assert_error(client.post(f"/v1/studies/{sid}/ask", json={}), 422, "invalid", "worker_id")
    assert_error(
        client.post(f"/v1/studies/{sid}/ask", json={"worker_id": ""}), 422, "invalid", "worker_id"
    )
    assert_error(
        client.post(f"/v1/studies/{sid}/ask", json={"worker_id": 7}), 422, "invalid", "worker_id"
    )


def test_report_stores_history_and_renews_the_lease(client):
    sid = create(client, max_epochs=9, lease_seconds=60)["id"]
    trial = ask(client, sid)["trial"]
    before = trial["lease_expires_at"]
    time.sleep(0.01)
    for epoch, loss in ((0, 0.9), (0, 0.8)):  # the same epoch again overwrites it
        response = client.post(
            trial_path(sid, trial["id"], "report"),
            json={"epoch": epoch, "metrics": {"val_loss": loss, "loss": 1.0}, "worker_id": "w1"},
        )
        assert response.status_code == 200
    assert response.json()["lease_expires_at"] > before
    stored = client.get(trial_path(sid, trial["id"])).json()
    assert stored["history"] == [{"epoch": 0, "metrics": {"val_loss": 0.8, "loss": 1.0}}]


def test_report_errors(client):
    sid = create(client, max_epochs=9)["id"]
    trial = ask(client, sid, "w1")["trial"]  # round 0 of bracket 2: epochs [0, 1)
    path = trial_path(sid, trial["id"], "report")
    assert_error(
        client.post(path, json={"epoch": 1, "metrics": {"val_loss": 1}, "worker_id": "w1"}),
        422,
        "invalid",
        "epoch: 1 is outside this trial's budget [0, 1)",
    )
    assert_error(
        client.post(path, json={"epoch": -1, "metrics": {"val_loss": 1}, "worker_id": "w1"}),
        422,
        "invalid",
        "epoch",
    )
    assert_error(
        client.post(path, json={"epoch": 0.5, "metrics": {"val_loss": 1}, "worker_id": "w1"}),
        422,
        "invalid",
        "epoch",
    )
    assert_error(client.post(path, json={"epoch": 0, "worker_id": "w1"}), 422, "invalid", "metrics")
    for bad in ("NaN", "Infinity", "-Infinity"):
        response = client.post(
            path,
            content=f'{{"epoch": 0, "metrics": {{"val_loss": {bad}}}, "worker_id": "w1"}}',
            headers={"content-type": "application/json"},
        )
        assert_error(response, 422, "invalid", "metrics.val_loss", "finite")
    assert_error(
        client.post(path, json={"epoch": 0, "metrics": {"val_loss": "low"}, "worker_id": "w1"}),
        422,
        "invalid",
        "metrics.val_loss",
    )
    assert_error(
        client.post(path, json={"epoch": 0, "metrics": {"val_loss": 1}, "worker_id": "intruder"}),
        409,
        "lease_lost",
    )
    assert_error(
        client.post(path, json={"epoch": 0, "metrics": {"val_loss": 1}}),
        422,
        "invalid",
        "worker_id: trial",
        "only that worker may report",
    )
    assert_error(
        client.post(trial_path(sid, 99, "report"), json={"epoch": 0, "metrics": {"val_loss": 1}}),
        404,
        "not_found",
    )
    tell(client, sid, trial["id"], 0.5)
    assert_error(
        client.post(path, json={"epoch": 0, "metrics": {"val_loss": 1}}),
        409,
        "not_running",
        "completed",
    )


def test_heartbeat(client):
    sid = create(client, lease_seconds=30)["id"]
    trial = ask(client, sid, "w1")["trial"]
    path = trial_path(sid, trial["id"], "heartbeat")
    renewed = client.post(path, json={"worker_id": "w1"})
    assert renewed.status_code == 200
    assert renewed.json()["lease_expires_at"] >= trial["lease_expires_at"]
    assert_error(client.post(path, json={"worker_id": "w2"}), 409, "lease_lost")
    assert_error(client.post(path, json={}), 422, "invalid", "worker_id")
    assert_error(
        client.post(trial_path(sid, 12345, "heartbeat"), json={"worker_id": "w1"}), 404, "not_found"
    )
    assert_error(
        client.post(trial_path(sid, "x", "heartbeat"), json={"worker_id": "w1"}), 404, "not_found"
    )
    tell(client, sid, trial["id"], 0.1)
    assert_error(client.post(path, json={"worker_id": "w1"}), 409, "not_running")


def test_tell_scores_the_best_epoch_and_is_idempotent(client):
    sid = create(client, max_epochs=9)["id"]
    trial = ask(client, sid, "w1")["trial"]
    while trial["epochs"] < 3:  # take a trial with a few epochs
        tell(client, sid, trial["id"], 1.0)
        trial = ask(client, sid, "w1")["trial"]
    epochs = range(trial["initial_epoch"], trial["epochs"])
    for epoch, loss in zip(epochs, (0.4, 0.2, 0.3), strict=False):
        client.post(
            trial_path(sid, trial["id"], "report"),
            json={"epoch": epoch, "metrics": {"val_loss": loss}, "worker_id": "w1"},
        )
    body = {"metrics": {"val_loss": 0.35}, "worker_id": "w1"}
    told = client.post(trial_path(sid, trial["id"], "tell"), json=body)
    assert told.status_code == 200
    result = told.json()
    assert result["status"] == "completed" and result["score"] == 0.2
    assert result["best_epoch"] == trial["initial_epoch"] + 1
    again = client.post(trial_path(sid, trial["id"], "tell"), json=body)
    assert again.status_code == 200 and again.json()["score"] == 0.2
    different = client.post(
        trial_path(sid, trial["id"], "tell"),
        json={"metrics": {"val_loss": 0.01}, "worker_id": "w1"},
    )
    error = assert_error(different, 409, "already_finished")
    assert error["details"]["trial"]["score"] == 0.2


def test_tell_errors(client):
    sid = create(client)["id"]
    trial = ask(client, sid, "w1")["trial"]
    path = trial_path(sid, trial["id"], "tell")
    assert_error(
        client.post(path, json={"metrics": {"loss": 1.0}, "worker_id": "w1"}),
        422,
        "invalid",
        "objective 'val_loss'",
    )
    assert_error(
        client.post(path, json={"status": "failed", "metrics": {"val_loss": 1}, "worker_id": "w1"}),
        422,
        "invalid",
        "failed trial carries an error",
    )
    assert_error(client.post(path, json={"status": "lost"}), 422, "invalid", "status")
    assert_error(
        client.post(path, json={"metrics": {"val_loss": 1}, "worker_id": "w9"}), 409, "lease_lost"
    )
    assert_error(
        client.post(path, json={"metrics": {"val_loss": 1}}), 422, "invalid", "worker_id: trial"
    )
    assert_error(
        client.post(trial_path(sid, 77, "tell"), json={"metrics": {"val_loss": 1}}),
        404,
        "not_found",
    )
    assert_error(
        client.post(trial_path(999, 0, "tell"), json={"metrics": {"val_loss": 1}}), 404, "not_found"
    )
    stored = client.get(trial_path(sid, trial["id"])).json()
    assert stored["status"] == "running"  # nothing was lost or changed


def test_failed_runs_are_retried_then_failed(client):
    sid = create(client, max_retries_per_trial=1, max_consecutive_failed_trials=5)["id"]
    trial = ask(client, sid, "w1")["trial"]
    path = trial_path(sid, trial["id"], "tell")
    retried = client.post(
        path, json={"status": "failed", "error": "CUDA OOM", "worker_id": "w1"}
    ).json()
    assert retried["status"] == "pending" and retried["failed_runs"] == 1
    again = ask(client, sid, "w2")["trial"]
    assert again["id"] == trial["id"] and again["hyperparameters"] == trial["hyperparameters"]
    assert again["runs"] == 2
    failed = client.post(
        path, json={"status": "failed", "error": "CUDA OOM again", "worker_id": "w2"}
    ).json()
    assert failed["status"] == "failed" and "CUDA OOM again" in failed["error"]


def test_consecutive_failures_fail_the_study(client):
    sid = create(client, max_consecutive_failed_trials=2)["id"]
    for worker in ("a", "b"):
        trial = ask(client, sid, worker)["trial"]
        client.post(
            trial_path(sid, trial["id"], "tell"),
            json={"status": "failed", "error": f"broken on {worker}", "worker_id": worker},
        )
    answer = ask(client, sid, "c")
    assert answer["status"] == "done" and "2 trials failed in a row" in answer["reason"]
    study = client.get(f"/v1/studies/{sid}").json()
    assert study["status"] == "failed" and "broken on b" in study["reason"]


def test_an_expired_lease_offers_the_trial_again(client):
    sid = create(client, lease_seconds=0.3, max_lost_leases_per_trial=1)["id"]
    lost = ask(client, sid, "dead-worker")["trial"]
    time.sleep(0.5)
    again = ask(client, sid, "w2")["trial"]
    assert again["id"] == lost["id"] and again["hyperparameters"] == lost["hyperparameters"]
    assert again["lost_leases"] == 1 and again["failed_runs"] == 0
    # the dead worker comes back: its lease is gone
    assert_error(
        client.post(trial_path(sid, lost["id"], "heartbeat"), json={"worker_id": "dead-worker"}),
        409,
        "lease_lost",
    )
    assert_error(tell(client, sid, lost["id"], 0.1, worker="dead-worker"), 409, "lease_lost")
    time.sleep(0.6)  # lost a second time: over the limit of 1, the trial fails
    ask(client, sid, "w3")
    stored = client.get(trial_path(sid, lost["id"])).json()
    assert stored["status"] == "failed" and "lost its lease 2 time(s)" in stored["error"]


def test_a_late_tell_of_a_trial_not_yet_offered_again_is_taken(client):
    sid = create(client, lease_seconds=0.2)["id"]
    first = ask(client, sid, "slow-1")["trial"]
    second = ask(client, sid, "slow-2")["trial"]
    time.sleep(0.6)
    reoffered = ask(client, sid, "fresh")["trial"]  # reclaims both, offers the newest again
    assert reoffered["id"] == second["id"]
    assert client.get(trial_path(sid, first["id"])).json()["status"] == "pending"
    late = tell(client, sid, first["id"], 0.3, worker="slow-1")
    assert late.status_code == 200 and late.json()["status"] == "completed"
    assert_error(tell(client, sid, second["id"], 0.3, worker="slow-2"), 409, "lease_lost")
    assert tell(client, sid, second["id"], 0.2, worker="fresh").status_code == 200


def test_new_entries_join_the_space_when_tuned(client):
    sid = create(client)["id"]
    trial = ask(client, sid, "w1")["trial"]
    new = [{"type": "int", "name": "depth", "min_value": 1, "max_value": 8, "default": 2}]
    told = client.post(
        trial_path(sid, trial["id"], "tell"),
        json={"metrics": {"val_loss": 0.5}, "hyperparameters": new, "worker_id": "w1"},
    )
    assert told.json()["hyperparameters"]["depth"] == 2
    study = client.get(f"/v1/studies/{sid}").json()
    assert "depth" in [hp["name"] for hp in study["hyperparameters"]]
    assert "depth" in ask(client, sid, "w2")["trial"]["hyperparameters"]


def test_a_tells_new_entries_are_parsed_once(client, monkeypatch):
    """The wire specs hand each definition to `rung.space` once; the use case takes the
    parsed entries from the validated request rather than parsing them again."""
    import rung.schemas

    parsed = []
    real = rung.schemas.from_dict
    monkeypatch.setattr(rung.schemas, "from_dict", lambda d: parsed.append(d) or real(d))
    sid = create(client)["id"]
    trial = ask(client, sid, "w1")["trial"]
    new = [
        {"type": "int", "name": "depth", "min_value": 1, "max_value": 8},
        {"type": "boolean", "name": "wide"},
    ]
    told = client.post(
        trial_path(sid, trial["id"], "tell"),
        json={"metrics": {"val_loss": 0.5}, "hyperparameters": new, "worker_id": "w1"},
    )
    assert told.status_code == 200
    assert [d["name"] for d in parsed] == ["depth", "wide"]


def test_new_entries_refused_or_kept_at_default(client):
    new = [{"type": "boolean", "name": "extra"}]
    strict = create(client, name="strict", allow_new_entries=False)["id"]
    trial = ask(client, strict)["trial"]
    assert_error(
        client.post(
            trial_path(strict, trial["id"], "tell"),
            json={"metrics": {"val_loss": 1}, "hyperparameters": new, "worker_id": "w1"},
        ),
        422,
        "invalid",
        "allow_new_entries is false",
        "'extra'",
    )
    fixed = create(client, name="fixed", tune_new_entries=False)["id"]
    trial = ask(client, fixed)["trial"]
    client.post(
        trial_path(fixed, trial["id"], "tell"),
        json={"metrics": {"val_loss": 1}, "hyperparameters": new, "worker_id": "w1"},
    )
    study = client.get(f"/v1/studies/{fixed}").json()
    assert "extra" not in [hp["name"] for hp in study["hyperparameters"]]


def test_list_filter_and_best(client):
    sid = create(client, max_epochs=3)["id"]
    trials = [ask(client, sid, f"w{i}")["trial"] for i in range(4)]
    for value, trial in zip((0.3, 0.1, 0.2), trials[:3], strict=True):
        tell(client, sid, trial["id"], value)
    page = client.get(f"/v1/studies/{sid}/trials", params={"limit": 2}).json()
    assert [t["id"] for t in page["items"]] == ["0", "1"] and page["next_cursor"]
    rest = client.get(
        f"/v1/studies/{sid}/trials", params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert [t["id"] for t in rest["items"]] == ["2", "3"] and rest["next_cursor"] is None
    running = client.get(f"/v1/studies/{sid}/trials", params={"status": "running"}).json()
    assert [t["id"] for t in running["items"]] == [trials[3]["id"]]
    assert_error(
        client.get(f"/v1/studies/{sid}/trials", params={"status": "zombie"}),
        422,
        "invalid",
        "status",
    )
    for cursor in ("2147483648", "999999999999999999", "-1"):  # past a 32-bit trial number
        assert_error(
            client.get(f"/v1/studies/{sid}/trials", params={"cursor": cursor}),
            422,
            "invalid",
            "cursor",
        )
    best = client.get(f"/v1/studies/{sid}/best", params={"k": 2}).json()["items"]
    assert [t["score"] for t in best] == [0.1, 0.2]
    assert_error(client.get(f"/v1/studies/{sid}/best", params={"k": 0}), 422, "invalid", "k")
    assert_error(client.get("/v1/studies/404/best"), 404, "not_found")
    assert_error(client.get("/v1/studies/404/trials"), 404, "not_found")
