"""The OpenAPI document is a reference of its own: every operation is summarised and
described, lists exactly the error statuses it can answer, and its answers are typed."""

from service.app import create_app
from service.settings import Settings


def document(tmp_path) -> dict:
    return create_app(Settings(database_url=f"sqlite:///{tmp_path / 'o.db'}")).openapi()


def operations(doc: dict):
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_has_a_summary_and_a_description(tmp_path):
    for name, operation in operations(document(tmp_path)):
        assert operation.get("summary"), name
        assert operation.get("description"), name


def test_each_operation_lists_the_errors_it_can_answer(tmp_path):
    errors = {
        name: sorted(int(s) for s in op["responses"] if int(s) >= 400)
        for name, op in operations(document(tmp_path))
    }
    everywhere = [400, 401, 403, 503]  # foreign Host, tokens, database or store down
    assert errors["GET /v1/studies/{study_id}"] == sorted([*everywhere, 404])
    assert errors["GET /v1/studies"] == sorted([*everywhere, 422])  # limit, cursor
    assert errors["POST /v1/studies"] == sorted([*everywhere, 409, 413, 422])
    assert errors["POST /v1/studies/{study_id}/ask"] == sorted([*everywhere, 404, 413, 422])
    assert errors["POST /v1/studies/{study_id}/trials/{trial_id}/tell"] == sorted(
        [*everywhere, 404, 409, 413, 422]
    )
    assert errors["GET /healthz"] == [400]
    assert len({tuple(v) for v in errors.values()}) >= 5  # not one list for every route
    doc = document(tmp_path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    tell = doc["paths"]["/v1/studies/{study_id}/trials/{trial_id}/tell"]["post"]
    assert "already_finished" in tell["responses"]["409"]["description"]


def test_study_settings_are_typed_and_not_duplicated(tmp_path):
    schemas = document(tmp_path)["components"]["schemas"]
    settings = schemas["Study"]["properties"]["settings"]
    assert settings.get("$ref", "").endswith("/StudyOptionsShown"), settings
    shown = schemas["StudyOptionsShown"]["properties"]
    assert {"max_epochs", "factor", "lease_seconds", "objective"} <= shown.keys()
    assert "hyperparameters" not in shown  # the study's space is its own field


def test_a_study_answer_shows_its_settings_once(client):
    from tests.api.helpers import create

    study = create(client)
    assert "hyperparameters" not in study["settings"]
    assert study["hyperparameters"][0]["name"] == "learning_rate"
    assert study["settings"]["max_epochs"] == 9 and study["settings"]["objective"] == "val_loss"
