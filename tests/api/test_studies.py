"""Studies over HTTP, in-process, on SQLite and PostgreSQL: create / list / get / stop /
resume / delete and their error statuses."""

import json

from sqlalchemy import create_engine, text

from .helpers import SPACE, ask, assert_error, create, study_body, tell


def test_create_returns_201_then_200_for_the_same_settings(client):
    first = client.post("/v1/studies", json=study_body())
    assert first.status_code == 201
    study = first.json()
    assert study["status"] == "running" and study["seed"] == 7
    assert study["objective"] == {"name": "val_loss", "direction": "min"}
    assert study["settings"]["max_epochs"] == 9
    assert [hp["name"] for hp in study["hyperparameters"]] == [hp["name"] for hp in SPACE]
    again = client.post("/v1/studies", json=study_body())
    assert again.status_code == 200 and again.json()["id"] == study["id"]


def test_create_with_other_settings_is_409(client):
    create(client)
    error = assert_error(
        client.post("/v1/studies", json=study_body(max_epochs=27)),
        409,
        "conflict",
        "exists with other settings",
    )
    assert error["details"]["study_id"]


def test_a_409_names_each_differing_setting_with_both_values(client):
    create(client)
    other_space = [dict(SPACE[0], max_value=0.5), *SPACE[1:]]
    error = assert_error(
        client.post(
            "/v1/studies",
            json=study_body(max_epochs=27, lease_seconds=30, hyperparameters=other_space),
        ),
        409,
        "conflict",
        "max_epochs: stored 9, requested 27",
        "lease_seconds: stored 120.0, requested 30.0",
        "hyperparameters[learning_rate]",
    )
    differences = error["details"]["differences"]
    assert set(differences) == {"max_epochs", "lease_seconds", "hyperparameters[learning_rate]"}
    assert differences["max_epochs"] == {"stored": 9, "requested": 27}
    assert differences["hyperparameters[learning_rate]"]["stored"]["max_value"] == 0.1
    assert differences["hyperparameters[learning_rate]"]["requested"]["max_value"] == 0.5


def test_settings_stored_by_an_older_version_are_read_with_todays_defaults(client, settings):
    """A study created before a setting existed: its stored settings lack it. The same
    request after the upgrade joins it (200), and the study shows the setting's default."""
    study = create(client)
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        stored = conn.execute(text("SELECT settings FROM studies")).scalar_one()
        stored = stored if isinstance(stored, dict) else json.loads(stored)
        del stored["keep_best_checkpoints"], stored["max_collisions"]
        conn.execute(text("UPDATE studies SET settings = :s"), {"s": json.dumps(stored)})
    engine.dispose()
    again = client.post("/v1/studies", json=study_body())
    assert again.status_code == 200, again.text
    assert again.json()["settings"]["keep_best_checkpoints"] == 1
    assert again.json()["settings"]["max_collisions"] == 20
    assert ask(client, study["id"])["status"] == "run"


def test_a_stopped_study_hands_out_nothing_new_and_running_trials_finish(client):
    study = create(client)
    running = ask(client, study["id"], "w1")["trial"]
    stopped = client.post(f"/v1/studies/{study['id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert stopped.json()["reason"] == "stopped on request"
    answer = ask(client, study["id"], "w2")
    assert answer["status"] == "done" and answer["reason"] == "stopped on request"
    assert ask(client, study["id"], "w1")["trial"]["id"] == running["id"]  # still its own
    told = tell(client, study["id"], running["id"], 0.5, worker="w1")
    assert told.status_code == 200 and told.json()["status"] == "completed"
    assert client.post(f"/v1/studies/{study['id']}/stop").json()["status"] == "stopped"

    resumed = client.post(f"/v1/studies/{study['id']}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    assert resumed.json()["reason"] is None
    assert ask(client, study["id"], "w2")["status"] == "run"
    progress = client.get(f"/v1/studies/{study['id']}").json()["progress"]
    assert progress["trials"]["completed"] == 1  # the results kept


def test_an_unbounded_study_can_be_stopped(client):
    study = create(client, hyperband_iterations=None, max_epochs=3)
    for _ in range(20):
        trial = ask(client, study["id"])["trial"]
        assert tell(client, study["id"], trial["id"], 0.5, worker="w1").status_code == 200
    client.post(f"/v1/studies/{study['id']}/stop")
    assert ask(client, study["id"])["status"] == "done"


def test_a_failed_study_resumes_with_its_results_and_a_fresh_failure_count(client):
    study = create(client, max_consecutive_failed_trials=2)
    for _ in range(2):
        trial = ask(client, study["id"])["trial"]
        failed = client.post(
            f"/v1/studies/{study['id']}/trials/{trial['id']}/tell",
            json={"status": "failed", "error": "a bug", "worker_id": "w1"},
        )
        assert failed.status_code == 200
    answer = ask(client, study["id"])
    assert answer["status"] == "done" and "2 trials failed in a row" in answer["reason"]
    assert client.get(f"/v1/studies/{study['id']}").json()["status"] == "failed"

    resumed = client.post(f"/v1/studies/{study['id']}/resume").json()
    assert resumed["status"] == "running" and resumed["reason"] is None
    trial = ask(client, study["id"])["trial"]
    assert trial["id"] == "2"  # the failed trials stay; a new one is handed out
    failed = client.post(
        f"/v1/studies/{study['id']}/trials/{trial['id']}/tell",
        json={"status": "failed", "error": "a bug", "worker_id": "w1"},
    )
    assert failed.status_code == 200
    assert ask(client, study["id"])["status"] == "run"  # one failure since the resume: on


def test_resume_of_a_done_study_is_409_and_unknown_studies_are_404(client):
    study = create(client, max_epochs=1)
    while (answer := ask(client, study["id"]))["status"] == "run":
        tell(client, study["id"], answer["trial"]["id"], 0.5, worker="w1")
    assert answer["status"] == "done"
    assert_error(client.post(f"/v1/studies/{study['id']}/resume"), 409, "conflict", "is done")
    for call in ("stop", "resume"):
        assert_error(client.post(f"/v1/studies/999/{call}"), 404, "not_found")


def test_defaults_and_a_random_seed(client):
    study = create(client, seed=None, max_epochs=100)
    assert 1 <= study["seed"] <= 2**31 - 1
    settings = study["settings"]
    assert (settings["factor"], settings["hyperband_iterations"]) == (3, 1)
    assert settings["max_retries_per_trial"] == 0
    assert settings["max_consecutive_failed_trials"] == 3
    assert settings["max_collisions"] == 20
    assert settings["tune_new_entries"] and settings["allow_new_entries"]
    assert (settings["scheduler"], settings["sampler"]) == ("hyperband", "random")


def test_studies_without_a_seed_draw_theirs_from_a_wide_range(client):
    """Keras Tuner draws a missing seed from 1 … 10,000, and the draws of seeds s and
    s + k·(the space's size) are the same configurations shifted by k: two unseeded studies
    would often repeat each other's. Rung draws from 1 … 2³¹ − 1 (three draws all at most
    10,000 there: about 1e-16)."""
    seeds = [create(client, name=f"unseeded-{i}", seed=None)["seed"] for i in range(3)]
    assert all(1 <= seed <= 2**31 - 1 for seed in seeds)
    assert max(seeds) > 10_000


def test_the_search_options_are_settings_the_study_shows(client):
    study = create(client, scheduler="async", sampler="bohb")
    assert (study["settings"]["scheduler"], study["settings"]["sampler"]) == ("async", "bohb")
    shown = client.get(f"/v1/studies/{study['id']}").json()["settings"]
    assert (shown["scheduler"], shown["sampler"]) == ("async", "bohb")
    error = assert_error(
        client.post("/v1/studies", json=study_body(scheduler="async")), 409, "conflict", "other"
    )
    assert set(error["details"]["differences"]) == {"sampler"}
    trial = ask(client, study["id"], "w1")["trial"]  # an async, bohb study hands out work
    assert trial["round"] == 0 and trial["epochs"] >= 1


def test_invalid_settings_are_422_naming_the_field(client):
    cases = [
        (study_body(max_epochs=0), "max_epochs"),
        (study_body(factor=1), "factor"),
        (study_body(hyperband_iterations=0), "hyperband_iterations"),
        (study_body(objective="bleu"), "cannot infer whether 'bleu'"),
        (study_body(objective={"name": "bleu", "direction": "up"}), "objective"),
        (
            study_body(
                hyperparameters=[{"type": "int", "name": "n", "min_value": 5, "max_value": 1}]
            ),
            "hyperparameter 'n': min_value 5 is greater than max_value 1",
        ),
        (
            study_body(hyperparameters=[{"type": "choice", "name": "c", "values": [1, "a"]}]),
            "hyperparameter 'c'",
        ),
        (study_body(lease_seconds=0), "lease_seconds"),
        (
            study_body(lease_seconds=5e-324),
            "lease_seconds: Input should be greater than or equal to 0.1",
        ),
        (study_body(lease_seconds=0.05), "lease_seconds"),
        (study_body(name=""), "name"),
        (study_body(name="x" * 201), "name"),
        (study_body(name="bad\x00name"), "control characters"),
        ({"objective": "val_loss"}, "name: Field required"),
        (study_body(max_epochs="ten"), "max_epochs"),
        (study_body(colour="red"), "colour"),
        (study_body(scheduler="asha"), "scheduler: Input should be 'hyperband' or 'async'"),
        (study_body(sampler="tpe"), "sampler: Input should be 'random' or 'bohb'"),
    ]
    for body, fragment in cases:
        assert_error(client.post("/v1/studies", json=body), 422, "invalid", fragment)
    assert client.get("/v1/studies").json()["items"] == []  # nothing was created


def test_odd_unicode_names_are_fine(client):
    for name in ("études-Ω", "研究", "🚀 rocket", "a" * 200):
        study = create(client, name=name)
        assert client.get(f"/v1/studies/{study['id']}").json()["name"] == name


def test_list_is_paginated(client):
    ids = [create(client, name=f"s{i}")["id"] for i in range(5)]
    page = client.get("/v1/studies", params={"limit": 2}).json()
    seen = [s["id"] for s in page["items"]]
    while page["next_cursor"]:
        page = client.get("/v1/studies", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [s["id"] for s in page["items"]]
    assert seen == ids
    assert_error(
        client.get("/v1/studies", params={"cursor": "not-a-cursor"}), 422, "invalid", "cursor"
    )
    assert_error(client.get("/v1/studies", params={"limit": 0}), 422, "invalid", "limit")
    assert_error(client.get("/v1/studies", params={"limit": 1001}), 422, "invalid", "limit")


def test_get_shows_progress_and_best_trial(client):
    study = create(client, max_epochs=3)
    sid = study["id"]
    trials = [ask(client, sid, f"w{i}")["trial"] for i in range(3)]
    for value, trial in zip((0.3, 0.1, 0.2), trials, strict=True):
        assert tell(client, sid, trial["id"], value).status_code == 200
    progress = client.get(f"/v1/studies/{sid}").json()["progress"]
    assert progress["trials"] == {"pending": 0, "running": 0, "completed": 3, "failed": 0}
    assert progress["best_trial"]["id"] == trials[1]["id"]
    assert progress["best_trial"]["score"] == 0.1
    bracket = progress["brackets"][0]
    assert (bracket["iteration"], bracket["bracket"]) == (0, 1)
    assert bracket["rounds"][0] == {
        "round": 0,
        "size": 3,
        "created": 3,
        "completed": 3,
        "epochs": 1,
    }


def test_get_and_delete_unknown_are_404(client):
    for path in ("/v1/studies/999", "/v1/studies/abc", "/v1/studies/" + "9" * 40):
        assert_error(client.get(path), 404, "not_found")
        assert_error(client.delete(path), 404, "not_found")


def test_delete_removes_the_study_and_its_trials(client):
    study = create(client)
    trial = ask(client, study["id"])["trial"]
    assert client.delete(f"/v1/studies/{study['id']}").status_code == 204
    assert_error(client.get(f"/v1/studies/{study['id']}"), 404, "not_found")
    assert_error(client.get(f"/v1/studies/{study['id']}/trials/{trial['id']}"), 404, "not_found")
    assert create(client)["id"] != study["id"]  # ids are never reused


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/studies",
        "/v1/studies/{study_id}",
        "/v1/studies/{study_id}/ask",
        "/v1/studies/{study_id}/trials/{trial_id}/tell",
        "/v1/studies/{study_id}/trials/{trial_id}/report",
        "/v1/studies/{study_id}/trials/{trial_id}/heartbeat",
        "/v1/studies/{study_id}/trials",
        "/v1/studies/{study_id}/best",
    ):
        assert path in paths


def test_oversized_body_is_413(client):
    body = study_body(name="x" * 2_000_000)
    assert_error(client.post("/v1/studies", json=body), 413, "too_large", "larger than")

    def chunks():
        yield b'{"name": "x", "objective": "val_loss", "pad": "'
        for _ in range(2000):
            yield b"x" * 1000
        yield b'"}'

    streamed = client.post(
        "/v1/studies", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(streamed, 413, "too_large")
    assert client.get("/v1/studies").json()["items"] == []


def test_malformed_json_is_400(client):
    response = client.post(
        "/v1/studies", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "malformed_json", "invalid JSON")
