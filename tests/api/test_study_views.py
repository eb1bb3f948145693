"""What the dashboard reads, over HTTP on SQLite and PostgreSQL: each study's summary, the
best score as it improved, and trials narrowed by place, with or without histories."""

from __future__ import annotations

from datetime import datetime

from .helpers import ask, assert_error, create, tell

SCORES = [0.9, 0.5, 0.7, 0.5, 0.2, 0.8, 0.3, 0.1, 0.6, 0.4, 0.05, 0.95, 0.15, 0.35]


def run(
    client, study_id: str, count: int, fail: set[int] = frozenset(), *, report: bool = True
) -> list[dict]:
    """Hand out `count` trials and tell each (a failure for the positions in `fail`); with
    `report`, 2 epochs reported before each tell (worse than any told score if minimised)."""
    handed = []
    for i in range(count):
        trial = ask(client, study_id)["trial"]
        path = f"/v1/studies/{study_id}/trials/{trial['id']}"
        for epoch in range(trial["initial_epoch"], trial["epochs"])[: 2 if report else 0]:
            body = {"epoch": epoch, "metrics": {"val_loss": 1.0 + epoch}, "worker_id": "w1"}
            assert client.post(f"{path}/report", json=body).status_code == 200
        if i in fail:
            body = {"status": "failed", "error": "boom", "worker_id": "w1"}
            assert client.post(f"{path}/tell", json=body).status_code == 200
        else:
            assert tell(client, study_id, trial["id"], SCORES[i % len(SCORES)]).status_code == 200
        handed.append(trial)
    return handed


def all_trials(client, study_id: str, **params) -> list[dict]:
    found = client.get(f"/v1/studies/{study_id}/trials", params={"limit": 1000, **params})
    assert found.status_code == 200, found.text
    return found.json()["items"]


def test_summaries_count_trials_and_brackets_and_name_the_best(client):
    busy = create(client, "busy")
    idle = create(client, "idle")
    run(client, busy["id"], 12, fail={3})
    running = ask(client, busy["id"], worker="w2")["trial"]

    plain = client.get("/v1/studies").json()["items"]
    assert [s["summary"] for s in plain] == [None, None]
    listed = {
        s["name"]: s["summary"]
        for s in client.get("/v1/studies", params={"summary": "true"}).json()["items"]
    }
    trials = all_trials(client, busy["id"])
    counts = {status: 0 for status in ("pending", "running", "completed", "failed")}
    for t in trials:
        counts[t["status"]] += 1
    assert counts["running"] == 1 and counts["failed"] == 1
    summary = listed["busy"]
    assert summary["trials"] == counts
    brackets = client.get(f"/v1/studies/{busy['id']}").json()["progress"]["brackets"]
    assert summary["brackets_open"] == sum(b["open"] for b in brackets) > 0
    assert summary["brackets_closed"] == sum(not b["open"] for b in brackets)
    completed = [t for t in trials if t["status"] == "completed"]
    best = min(completed, key=lambda t: (t["score"], int(t["id"])))
    assert (summary["best_score"], summary["best_trial_id"]) == (best["score"], best["id"])
    times = [t[k] for t in trials for k in ("created_at", "finished_at") if t[k]]
    assert datetime.fromisoformat(summary["last_activity_at"]) >= max(
        datetime.fromisoformat(t) for t in times
    )
    assert summary["last_activity_at"] >= running["created_at"]
    assert listed["idle"] == {
        "trials": {"pending": 0, "running": 0, "completed": 0, "failed": 0},
        "brackets_open": 0,
        "brackets_closed": 0,
        "best_score": None,
        "best_trial_id": None,
        "last_activity_at": None,
    }
    assert client.get(f"/v1/studies/{busy['id']}").json()["summary"] == summary
    assert client.get(f"/v1/studies/{idle['id']}").json()["summary"] == listed["idle"]


def test_best_so_far_lists_each_improvement_in_the_order_trials_finished(client):
    study = create(client)
    empty = client.get(f"/v1/studies/{study['id']}/best-so-far").json()
    assert empty == {"points": [], "epochs_trained": 0, "last_finished_at": None}
    run(client, study["id"], len(SCORES), fail={2})

    completed = sorted(
        all_trials(client, study["id"], status="completed"),
        key=lambda t: (t["finished_at"], int(t["id"])),
    )
    expected, best, trained = [], None, 0
    for t in completed:
        trained += t["epochs"] - t["initial_epoch"]
        if best is None or t["score"] < best:
            best = t["score"]
            expected.append(
                {
                    "trial_id": t["id"],
                    "finished_at": t["finished_at"],
                    "epochs_trained": trained,
                    "score": t["score"],
                }
            )
    answer = client.get(f"/v1/studies/{study['id']}/best-so-far").json()
    assert answer["points"] == expected
    assert [p["score"] for p in expected] == sorted({p["score"] for p in expected}, reverse=True)
    assert len(expected) >= 4  # 0.9, 0.5, 0.2, 0.1 at least
    assert answer["epochs_trained"] == trained
    assert answer["last_finished_at"] == completed[-1]["finished_at"]


def test_best_so_far_of_a_maximised_objective_rises(client):
    study = create(client, objective={"name": "val_loss", "direction": "max"})
    run(client, study["id"], 8, report=False)
    points = client.get(f"/v1/studies/{study['id']}/best-so-far").json()["points"]
    scores = [p["score"] for p in points]
    assert scores == sorted(scores) and scores[-1] == max(SCORES[:8])


def test_trials_narrowed_by_iteration_bracket_round_and_status(client):
    study = create(client, hyperband_iterations=2)
    run(client, study["id"], 30, fail={4})
    every = all_trials(client, study["id"])
    assert {t["round"] for t in every} >= {0, 1} and {t["iteration"] for t in every} == {0, 1}
    for params in (
        {"iteration": 0},
        {"bracket": 2},
        {"round": 1},
        {"iteration": 1, "bracket": 1, "round": 0},
        {"bracket": 2, "status": "completed"},
        {"round": 2, "status": "failed"},
    ):
        narrowed = all_trials(client, study["id"], **params)
        assert [t["id"] for t in narrowed] == [
            t["id"] for t in every if all(str(t[k]) == str(v) for k, v in params.items())
        ], params
    paged = client.get(f"/v1/studies/{study['id']}/trials", params={"round": 0, "limit": 3}).json()
    assert len(paged["items"]) == 3 and paged["next_cursor"] == paged["items"][-1]["id"]
    following = all_trials(client, study["id"], round=0, cursor=paged["next_cursor"])
    assert [t["id"] for t in paged["items"] + following] == [
        t["id"] for t in every if t["round"] == 0
    ]


def test_trials_without_histories(client):
    study = create(client)
    run(client, study["id"], 3)
    full = all_trials(client, study["id"])
    bare = all_trials(client, study["id"], history="false")
    assert all(t["history"] for t in full)
    assert [t["history"] for t in bare] == [None] * 3
    assert [{**t, "history": None} for t in full] == bare


def test_bad_narrowing_and_unknown_studies_are_refused(client):
    study = create(client)
    for name, value in (("round", -1), ("bracket", "two"), ("iteration", 10**10)):
        assert_error(
            client.get(f"/v1/studies/{study['id']}/trials", params={name: value}),
            422,
            "invalid",
            name,
        )
    assert_error(
        client.get(f"/v1/studies/{study['id']}/trials", params={"history": "maybe"}),
        422,
        "invalid",
        "history",
    )
    assert_error(client.get("/v1/studies", params={"summary": "perhaps"}), 422, "invalid")
    assert_error(client.get("/v1/studies/999/best-so-far"), 404, "not_found", "999")
