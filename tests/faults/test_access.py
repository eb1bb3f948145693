"""Access control: with tokens configured every call but /healthz needs a bearer token; 401
without or with an unknown one, 403 for a token without the right. Tokens never reach the
logs, nor do malformed token lists or database passwords; running without tokens says so
once."""

import logging
import os
import subprocess
import sys

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from service.api.auth import parse_tokens, role_of
from service.app import create_app
from tests.api.helpers import assert_error, study_body
from tests.servers import running_server

ADMIN, WORKER, READER = "admin-secret-1", "worker-secret-2", "reader-secret-3"
TOKENS = f"admin:{ADMIN},worker:{WORKER},reader:{READER}"


@pytest.fixture
def secured(settings):
    with TestClient(create_app(settings.model_copy(update={"tokens": TOKENS}))) as client:
        yield client


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_every_call_but_healthz_needs_a_token(secured):
    assert secured.get("/healthz").status_code == 200
    for method, path in [
        ("GET", "/v1/studies"),
        ("POST", "/v1/studies"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("POST", "/v1/studies/1/ask"),
        ("GET", "/v1/studies/1/best"),
        ("DELETE", "/v1/studies/1"),
    ]:
        response = secured.request(method, path)
        assert_error(response, 401, "unauthorized", "bearer token is required")
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(
            secured.request(method, path, headers=bearer("wrong-token")),
            401,
            "unauthorized",
            "unknown token",
        )
        assert_error(
            secured.request(method, path, headers={"Authorization": f"Basic {ADMIN}"}),
            401,
            "unauthorized",
        )


def test_roles(secured):
    created = secured.post("/v1/studies", json=study_body(), headers=bearer(ADMIN))
    assert created.status_code == 201
    sid = created.json()["id"]
    # a worker token: read, ask, report, heartbeat, tell — but not create or delete studies
    assert_error(
        secured.post("/v1/studies", json=study_body("other"), headers=bearer(WORKER)),
        403,
        "forbidden",
        "a worker token cannot do this",
    )
    assert_error(secured.delete(f"/v1/studies/{sid}", headers=bearer(WORKER)), 403, "forbidden")
    trial = secured.post(
        f"/v1/studies/{sid}/ask", json={"worker_id": "w"}, headers=bearer(WORKER)
    ).json()["trial"]
    path = f"/v1/studies/{sid}/trials/{trial['id']}"
    assert (
        secured.post(
            f"{path}/report",
            json={"epoch": 0, "metrics": {"val_loss": 1}, "worker_id": "w"},
            headers=bearer(WORKER),
        ).status_code
        == 200
    )
    assert (
        secured.post(
            f"{path}/heartbeat", json={"worker_id": "w"}, headers=bearer(WORKER)
        ).status_code
        == 200
    )
    assert (
        secured.post(
            f"{path}/tell",
            json={"metrics": {"val_loss": 1}, "worker_id": "w"},
            headers=bearer(WORKER),
        ).status_code
        == 200
    )
    assert secured.get(f"/v1/studies/{sid}", headers=bearer(WORKER)).status_code == 200
    # a reader token: reads only
    assert secured.get(f"/v1/studies/{sid}/trials", headers=bearer(READER)).status_code == 200
    assert secured.get("/metrics", headers=bearer(READER)).status_code == 200
    assert_error(
        secured.post(f"/v1/studies/{sid}/ask", json={"worker_id": "r"}, headers=bearer(READER)),
        403,
        "forbidden",
    )
    # stopping and resuming a study is an admin's
    for call in ("stop", "resume"):
        for token in (WORKER, READER):
            assert_error(
                secured.post(f"/v1/studies/{sid}/{call}", headers=bearer(token)), 403, "forbidden"
            )
        assert secured.post(f"/v1/studies/{sid}/{call}", headers=bearer(ADMIN)).status_code == 200
    assert secured.delete(f"/v1/studies/{sid}", headers=bearer(ADMIN)).status_code == 204


def test_a_worker_joins_a_study_an_admin_created(secured):
    from rung import Client
    from rung.errors import ForbiddenError

    with Client("http://localhost", transport=secured._transport, token=WORKER) as worker:
        with pytest.raises(ForbiddenError, match="does not exist and this token may not create"):
            worker.study("later", objective="val_loss")
        with Client("http://localhost", transport=secured._transport, token=ADMIN) as admin:
            admin.study("later", objective="val_loss", max_epochs=3)
        handle = worker.study("later", objective="val_loss", max_epochs=3)
        assert handle.next_trial() is not None


def test_token_parsing_and_matching():
    tokens = parse_tokens(TOKENS)
    assert [t.role for t in tokens] == ["admin", "worker", "reader"]
    assert role_of(tokens, WORKER) == "worker" and role_of(tokens, "nope") is None
    assert all(len(t.digest) == 32 for t in tokens)  # only hashes are kept
    for bad, message in [
        ("root:abcdefghij", "entry 1 does not start with one of admin:, worker:, reader:"),
        ("admin:short", "shorter than 8"),
        ("admin:abcdefghij,justatoken-a-secret", "entry 2 does not start with one of"),
        ("admin:same-secret-1,reader:same-secret-1", "entry 2 .reader. repeats the token"),
    ]:
        with pytest.raises(ValueError, match=message) as raised:
            parse_tokens(bad)
        for secret in ("abcdefghij", "justatoken-a-secret", "same-secret-1"):
            assert secret not in str(raised.value)  # a malformed entry may be a secret


def test_a_malformed_token_list_stops_the_server_without_printing_a_secret(tmp_path):
    for tokens in ("worker-secret-token-9", "admin:dup-secret-7,worker:dup-secret-7"):
        env = dict(os.environ, RUNG_TOKENS=tokens, RUNG_DATA_DIR=str(tmp_path))
        done = subprocess.run(
            [sys.executable, "-m", "rung.cli", "serve", "--port", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and "RUNG_TOKENS" in done.stderr
        assert "secret" not in done.stdout + done.stderr


@pytest.mark.postgres
def test_a_password_in_the_database_url_never_reaches_the_logs(postgres_database, tmp_path):
    """PostgreSQL trusts local connections here, so the passwords are ignored but carried."""
    url = make_url(postgres_database).set(password="netloc-secret-1")
    url = url.update_query_dict({"password": "query-secret-2"})
    env = {"RUNG_LOG_LEVEL": "info"}
    with running_server(url.render_as_string(hide_password=False), tmp_path, env=env) as server:
        assert httpx.get(server.url + "/readyz").status_code == 200
        log = server.log_path.read_text()
    assert "Rung is serving postgresql+psycopg://postgres:***@" in log
    assert "password=***" in log
    assert "netloc-secret-1" not in log and "query-secret-2" not in log


def test_tokens_never_reach_the_logs(database_url, tmp_path):
    env = {"RUNG_TOKENS": TOKENS, "RUNG_LOG_LEVEL": "debug"}
    with running_server(database_url, tmp_path, env=env) as server:
        with httpx.Client(base_url=server.url, headers=bearer(ADMIN)) as http:
            sid = http.post("/v1/studies", json=study_body()).json()["id"]
            http.post(f"/v1/studies/{sid}/ask", json={"worker_id": "w"})
            http.get("/v1/studies", headers=bearer("a-wrong-secret-token"))
        log = server.log_path.read_text()
    assert "POST /v1/studies" in log  # the access log is there…
    for secret in (ADMIN, WORKER, READER, "a-wrong-secret-token"):
        assert secret not in log  # …without any token


def test_without_tokens_one_line_says_so(settings, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="rung"),
        TestClient(create_app(settings)),
    ):
        pass
    lines = [r.getMessage() for r in caplog.records if "no API tokens" in r.getMessage()]
    assert lines == [
        "no API tokens are set: every caller has full access (set RUNG_TOKENS to require them)"
    ]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("localhost:8000", True),
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("LOCALHOST", True),
        ("rebinding.attacker.example", False),
        ("rebinding.attacker.example:8000", False),
        ("127.0.0.1.attacker.example", False),
        ("", False),
    ],
)
def test_without_tokens_only_local_host_names_are_answered(client, host, allowed):
    """A page on another site that rebinds its name to 127.0.0.1 reaches a tokenless server
    with its own name in Host: it is refused before any work."""
    response = client.get("/v1/studies", headers={"Host": host})
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 400, "host_not_allowed", "RUNG_ALLOWED_HOSTS")


def test_allowed_hosts_setting_and_tokens(settings):
    patterns = "rung.internal,*.example.com"
    with TestClient(
        create_app(settings.model_copy(update={"allowed_hosts": patterns})),
        base_url="http://rung.internal",
    ) as client:
        for host, status in [
            ("rung.internal", 200),
            ("a.example.com:443", 200),
            ("example.com.evil", 400),
            ("localhost", 400),  # the setting replaces the default
        ]:
            assert client.get("/v1/studies", headers={"Host": host}).status_code == status, host
    with TestClient(create_app(settings.model_copy(update={"tokens": TOKENS}))) as client:
        got = client.get("/v1/studies", headers={"Host": "any.name", **bearer(READER)})
        assert got.status_code == 200  # with tokens, any Host unless the setting narrows it


def test_a_trailing_slash_is_not_redirected_to_the_callers_host(client):
    response = client.get("/v1/studies/", headers={"Host": "localhost:1"}, follow_redirects=False)
    assert response.status_code == 404
    assert "location" not in response.headers
