"""Small helpers for driving the API in tests."""

from __future__ import annotations

from typing import Any

SPACE = [
    {
        "type": "float",
        "name": "learning_rate",
        "min_value": 1e-4,
        "max_value": 1e-1,
        "sampling": "log",
    },
    {"type": "int", "name": "units", "min_value": 16, "max_value": 512, "step": 16},
    {"type": "choice", "name": "activation", "values": ["relu", "tanh", "gelu"]},
    {"type": "boolean", "name": "batch_norm"},
]


def study_body(name: str = "study", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "hyperparameters": SPACE,
        "objective": "val_loss",
        "max_epochs": 9,
        "factor": 3,
        "seed": 7,
    }
    body.update(overrides)
    return body


def create(client, name: str = "study", **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/studies", json=study_body(name, **overrides))
    assert response.status_code == 201, response.text[:500]
    return response.json()


def ask(client, study_id: str, worker: str = "w1") -> dict[str, Any]:
    response = client.post(f"/v1/studies/{study_id}/ask", json={"worker_id": worker})
    assert response.status_code == 200, response.text[:500]
    return response.json()


def holder(client, study_id: str, trial_id: str) -> str | None:
    """The worker holding the trial (None when nobody does)."""
    return client.get(f"/v1/studies/{study_id}/trials/{trial_id}").json().get("worker_id")


def tell(client, study_id: str, trial_id: str, value: float, worker: str | None = None):
    """Tell the trial's result as `worker`, by default as the worker holding it."""
    body: dict[str, Any] = {"metrics": {"val_loss": value}}
    worker = worker or holder(client, study_id, trial_id)
    if worker:
        body["worker_id"] = worker
    return client.post(f"/v1/studies/{study_id}/trials/{trial_id}/tell", json=body)


def assert_error(response, status: int, code: str, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert error["code"] == code, error
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error
