"""Bad input, each answered with a 4xx whose message names the problem, leaving the study as
it was. The table of bad inputs in docs/testing.md is this list."""

import json

from tests.api.helpers import ask, create, study_body

BIG = "x" * 1_100_000


def with_space(*hyperparameters):
    """A study body with these hyperparameters, as raw JSON (NaN and Infinity literals kept:
    Python's and many other JSON writers emit them)."""
    return json.dumps(study_body("bad-space", hyperparameters=list(hyperparameters))).encode()


def space_cases(sid, tid):
    """Search spaces that used to pass and then fail every ask (or be stored as null), and
    new entries in a tell that used to brick the study for good."""
    t = f"/v1/studies/{sid}/trials/{tid}"
    nan, inf = float("nan"), float("inf")

    def real(**fields):
        return {"type": "float", "name": "a", "min_value": 0, "max_value": 1, **fields}

    bad_specs = [
        ("NaN min_value", real(min_value=nan), "finite"),
        ("Infinity max_value", real(max_value=inf), "finite"),
        ("NaN default", real(default=nan), "finite"),
        ("Infinity in a choice", {"type": "choice", "name": "a", "values": [1.0, inf]}, "finite"),
        ("NaN fixed value", {"type": "fixed", "name": "a", "value": nan}, "finite"),
        ("a range wider than a float", real(min_value=-1e308, max_value=1e308), "overflows"),
        ("log overflow", real(min_value=1e-200, max_value=1e200, sampling="log"), "overflows"),
        ("a step leaving too many values", real(step=1e-308), "too small"),
    ]  # fmt: skip
    cases = [
        (f"space: {label}", "POST", "/v1/studies", with_space(spec), 422, "invalid", fragment)
        for label, spec, fragment in bad_specs
    ]
    cases.append(
        (
            "space: NaN in a condition's parent_values",
            "POST",
            "/v1/studies",
            with_space(
                real(name="p"),
                {
                    "type": "boolean",
                    "name": "c",
                    "conditions": [{"parent_name": "p", "parent_values": [nan]}],
                },
            ),
            422,
            "invalid",
            "finite",
        )
    )  # fmt: skip
    brick = {"type": "float", "name": "z", "min_value": 0, "max_value": 1e308, "step": 1e-308}
    cases.append(
        (
            "tell: a new entry whose step leaves 1e316 values (bricked every later ask)",
            "POST",
            f"{t}/tell",
            {"metrics": {"val_loss": 1}, "worker_id": "w1", "hyperparameters": [brick]},
            422,
            "invalid",
            "hyperparameter 'z'",
        )
    )
    many = [{"type": "boolean", "name": f"new_{i}"} for i in range(1000)]
    cases.append(
        (
            "tell: new entries past the 1000 hyperparameters a study may have",
            "POST",
            f"{t}/tell",
            {"metrics": {"val_loss": 1}, "worker_id": "w1", "hyperparameters": many},
            422,
            "invalid",
            "more than the 1000 a study may have",
        )
    )
    return cases


def cases(sid, tid, done):
    """(label, method, path, body or raw bytes, status, code, message fragment)"""
    t = f"/v1/studies/{sid}/trials/{tid}"
    return [
        *space_cases(sid, tid),
        (
            "malformed JSON",
            "POST",
            f"/v1/studies/{sid}/ask",
            b'{"worker_id": ',
            400,
            "malformed_json",
            "invalid JSON",
        ),
        (
            "JSON that is not an object",
            "POST",
            f"/v1/studies/{sid}/ask",
            b"[1, 2]",
            422,
            "invalid",
            "body",
        ),
        (
            "wrong type",
            "POST",
            f"/v1/studies/{sid}/ask",
            {"worker_id": 42},
            422,
            "invalid",
            "worker_id",
        ),
        (
            "missing field",
            "POST",
            f"{t}/report",
            {"metrics": {"val_loss": 1}},
            422,
            "invalid",
            "epoch: Field required",
        ),
        (
            "NaN metric",
            "POST",
            f"{t}/report",
            b'{"epoch": 0, "metrics": {"val_loss": NaN}}',
            422,
            "invalid",
            "metrics.val_loss",
        ),
        (
            "+Inf metric",
            "POST",
            f"{t}/tell",
            b'{"metrics": {"val_loss": Infinity}}',
            422,
            "invalid",
            "metrics.val_loss",
        ),
        (
            "-Inf metric",
            "POST",
            f"{t}/tell",
            b'{"metrics": {"val_loss": -Infinity}}',
            422,
            "invalid",
            "metrics.val_loss",
        ),
        (
            "negative epoch",
            "POST",
            f"{t}/report",
            {"epoch": -1, "metrics": {"val_loss": 1}},
            422,
            "invalid",
            "epoch",
        ),
        (
            "non-integer epoch",
            "POST",
            f"{t}/report",
            {"epoch": 1.5, "metrics": {"val_loss": 1}},
            422,
            "invalid",
            "epoch",
        ),
        (
            "epoch beyond the trial's budget",
            "POST",
            f"{t}/report",
            {"epoch": 500, "metrics": {"val_loss": 1}, "worker_id": "w1"},
            422,
            "invalid",
            "outside this trial's budget",
        ),
        (
            "unknown study",
            "POST",
            "/v1/studies/987654/ask",
            {"worker_id": "w"},
            404,
            "not_found",
            "study 987654 not found",
        ),
        (
            "unknown trial",
            "POST",
            f"/v1/studies/{sid}/trials/99999/tell",
            {"metrics": {"val_loss": 1}},
            404,
            "not_found",
            "has no trial 99999",
        ),
        (
            "tell on a trial that is not running",
            "POST",
            f"/v1/studies/{sid}/trials/{done}/tell",
            {"metrics": {"val_loss": 0.123}},
            409,
            "already_finished",
            "different result",
        ),
        (
            "report on a trial that is not running",
            "POST",
            f"/v1/studies/{sid}/trials/{done}/report",
            {"epoch": 0, "metrics": {"val_loss": 1}},
            409,
            "not_running",
            "not running",
        ),
        (
            "objective missing from a tell",
            "POST",
            f"{t}/tell",
            {"metrics": {"loss": 1}, "worker_id": "w1"},
            422,
            "invalid",
            "objective 'val_loss'",
        ),
        (
            "tell on a held trial without worker_id",
            "POST",
            f"{t}/tell",
            {"metrics": {"val_loss": 1}},
            422,
            "invalid",
            "worker_id: trial",
        ),
        (
            "report on a held trial without worker_id",
            "POST",
            f"{t}/report",
            {"epoch": 0, "metrics": {"val_loss": 1}},
            422,
            "invalid",
            "only that worker may report",
        ),
        (
            "invalid search space",
            "POST",
            "/v1/studies",
            study_body(
                "bad-space",
                hyperparameters=[
                    {
                        "type": "float",
                        "name": "lr",
                        "min_value": 0,
                        "max_value": 1,
                        "sampling": "log",
                    }
                ],
            ),
            422,
            "invalid",
            "hyperparameter 'lr': sampling='log' needs min_value > 0",
        ),
        (
            "unknown parent",
            "POST",
            "/v1/studies",
            study_body(
                "bad-parent",
                hyperparameters=[
                    {
                        "type": "int",
                        "name": "u",
                        "min_value": 1,
                        "max_value": 2,
                        "conditions": [{"parent_name": "model", "parent_values": ["mlp"]}],
                    }
                ],
            ),
            422,
            "invalid",
            "unknown parent 'model'",
        ),
        (
            "objective without a known direction",
            "POST",
            "/v1/studies",
            study_body("bad-objective", objective="bleu"),
            422,
            "invalid",
            "cannot infer whether 'bleu'",
        ),
        (
            "oversized body",
            "POST",
            f"/v1/studies/{sid}/ask",
            {"worker_id": BIG},
            413,
            "too_large",
            "larger than the limit",
        ),
        (
            "very long name",
            "POST",
            "/v1/studies",
            study_body("n" * 201),
            422,
            "invalid",
            "name: String should have at most 200 characters",
        ),
        (
            "control characters in a name",
            "POST",
            "/v1/studies",
            study_body("tab\there"),
            422,
            "invalid",
            "control characters",
        ),
        (
            "lone surrogate in a name",
            "POST",
            "/v1/studies",
            b'{"name": "\\ud800", "objective": "val_loss"}',
            422,
            "invalid",
            "name",
        ),
        (
            "unknown field",
            "POST",
            f"/v1/studies/{sid}/ask",
            {"worker_id": "w", "gpu": 1},
            422,
            "invalid",
            "gpu: Extra inputs are not permitted",
        ),
    ]


def snapshot(client, sid):
    study = client.get(f"/v1/studies/{sid}").json()
    trials = client.get(f"/v1/studies/{sid}/trials").json()["items"]
    names = [s["name"] for s in client.get("/v1/studies").json()["items"]]
    return study, trials, names


def test_bad_inputs_get_4xx_naming_the_problem_and_change_nothing(client):
    sid = create(client, name="intact")["id"]
    done = ask(client, sid, "w0")["trial"]["id"]
    client.post(
        f"/v1/studies/{sid}/trials/{done}/tell",
        json={"metrics": {"val_loss": 0.5}, "worker_id": "w0"},
    )
    tid = ask(client, sid, "w1")["trial"]["id"]
    before = snapshot(client, sid)
    seen = []
    for label, method, path, body, status, code, fragment in cases(sid, tid, done):
        if isinstance(body, bytes):
            response = client.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
        else:
            response = client.request(method, path, json=body)
        assert response.status_code == status, (label, response.text[:300])
        error = response.json()["error"]
        assert error["code"] == code, (label, error)
        assert fragment in error["message"], (label, error["message"])
        seen.append(label)
        assert snapshot(client, sid) == before, f"{label} changed the study"
    assert len(seen) == len(cases(sid, tid, done))
    assert ask(client, sid, "w2")["status"] == "run"  # the study still hands out trials


def test_odd_unicode_is_accepted_where_it_is_just_text(client):
    names = ["études Ω", "研究-1", "🚀", "\u202eright-to-left", "a\u0301"]
    for name in names:
        study = create(client, name=name)
        assert client.get(f"/v1/studies/{study['id']}").json()["name"] == name
    listed = [s["name"] for s in client.get("/v1/studies").json()["items"]]
    assert listed == names
    worker = "gpu-ü-🚀"
    trial = ask(client, study["id"], worker)["trial"]
    assert trial["worker_id"] == worker
    assert json.dumps(trial)  # round-trips as JSON


def test_max_collisions_at_its_maximum_is_bounded_by_work(client, monkeypatch):
    """A two-configuration space with `max_collisions` at its maximum: the ask after both
    were tried draws a bounded number of values and answers, and the study carries on."""
    from service.core import sampler

    sid = create(
        client,
        hyperparameters=[{"type": "boolean", "name": "b"}],
        max_collisions=100_000,
    )["id"]
    for worker in ("w1", "w2"):
        assert ask(client, sid, worker)["status"] == "run"
    draws = 0
    sample_values = sampler.sample_values

    def counted(*args, **kwargs):
        nonlocal draws
        draws += 1
        if draws > 10 * sampler.MAX_DRAWN_VALUES:
            raise RuntimeError("the ask keeps drawing")
        return sample_values(*args, **kwargs)

    monkeypatch.setattr(sampler, "sample_values", counted)
    third = ask(client, sid, "w3")
    assert third["status"] == "wait"  # nothing new to start: wait for the two to finish
    assert draws <= sampler.MAX_DRAWN_VALUES + 2  # one decision's draws, then one more look
    assert client.get(f"/v1/studies/{sid}").json()["status"] == "running"
