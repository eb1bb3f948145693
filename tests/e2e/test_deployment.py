"""No Docker engine runs here, so the image and the compose file are checked by what they
run: the server image's entry command, settings and health check are executed as written in
the Dockerfile, and docker-compose.yml is validated against the Compose specification."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml

from service.settings import Settings
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction == "FROM":
            current = stages.setdefault(rest.split(" AS ")[-1].strip(), [])
        current.append((instruction, rest.strip()))
    return stages


def stage_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, rest in stage:
        if instruction == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def stage_command(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    rest = [r for i, r in stage if i == instruction][-1]
    if instruction == "HEALTHCHECK":
        rest = rest[rest.index("CMD ") + 4 :]
    return json.loads(rest)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${NAME:?message}` and `${NAME:-default}` substitution."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in env:
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg

    return re.sub(r"\$\{(\w+)(:\?|:-)?([^}]*)\}", one, value)


TOKENS = {"RUNG_ADMIN_TOKEN": "compose-admin-token", "RUNG_WORKER_TOKEN": "compose-worker-token"}


def test_compose_file_follows_the_compose_specification():
    schema_file = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose(), schema)
    services = compose()["services"]
    assert {"postgres", "server", "balancer", "worker"} <= set(services)
    assert services["server"]["deploy"]["replicas"] >= 2  # scale-out: stateless replicas
    balancer = compose()["configs"]["balancer"]["content"]
    assert "server server:8000" in balancer
    # the proxy passes checkpoints as large as the server takes (it capped them at 2 MiB:
    # real checkpoints got nginx's HTML 413 and promotions trained from scratch)
    size = re.search(r"client_max_body_size (\d+)([kmg]?);", balancer)
    assert size is not None
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[size.group(2)]
    limit = int(services["server"]["environment"].get("RUNG_MAX_CHECKPOINT_BYTES", 0)) or (
        Settings().max_checkpoint_bytes
    )
    assert int(size.group(1)) * scale >= limit
    assert "proxy_request_buffering off;" in balancer
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert services["server"]["build"]["target"] in dockerfile_stages()
    assert services["worker"]["build"]["target"] in dockerfile_stages()


def test_every_rung_setting_named_in_deployment_exists():
    known = {f"RUNG_{name.upper()}" for name in Settings.model_fields}
    named = set(stage_env(dockerfile_stages()["server"]))
    for service in compose()["services"].values():
        named |= set(service.get("environment", {}))
    client_side = {"RUNG_SERVER", "RUNG_TOKEN", "RUNG_CHECKPOINT_DIR"}
    unknown = {n for n in named if n.startswith("RUNG_")} - known - client_side
    assert not unknown


def test_the_worker_image_command_names_a_real_spec():
    command = compose()["services"]["worker"]["command"]
    assert command[:2] == ["rung", "worker"]
    import importlib

    spec = importlib.import_module(command[2])
    assert callable(spec.build_model) and callable(spec.fit_kwargs) and spec.STUDY["objective"]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_server_image_entry_command_runs(backend, tmp_path, request):
    """The server stage's CMD with its ENV (and the compose file's for PostgreSQL): migrations,
    then a server that the image's HEALTHCHECK finds healthy; SIGTERM stops it cleanly."""
    stage = dockerfile_stages()["server"]
    env = dict(os.environ, **stage_env(stage))
    port = free_port()
    env.update(RUNG_PORT=str(port), RUNG_DATA_DIR=str(tmp_path / "data"))
    # `rung` is on the image's PATH; here it is beside this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("RUNG_DATABASE_URL", None)
    if backend == "postgresql":  # as docker-compose runs it: PostgreSQL, tokens, JSON logs
        server_env = compose()["services"]["server"]["environment"]
        env.update({k: interpolate(v, TOKENS) for k, v in server_env.items()})
        assert env["RUNG_DATABASE_URL"].startswith("postgresql+psycopg://")
        env["RUNG_DATABASE_URL"] = request.getfixturevalue("empty_postgres_url")
    command = stage_command(stage, "CMD")
    assert command[:2] == ["sh", "-c"] and "rung db upgrade" in command[2]
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.2)
        healthcheck = stage_command(stage, "HEALTHCHECK")
        assert subprocess.run(healthcheck, env=env, timeout=30).returncode == 0
        headers = {}
        if "RUNG_TOKENS" in env:
            assert httpx.get(f"http://127.0.0.1:{port}/v1/studies").status_code == 401
            headers = {"Authorization": f"Bearer {TOKENS['RUNG_ADMIN_TOKEN']}"}
        studies = httpx.get(f"http://127.0.0.1:{port}/v1/studies", headers=headers)
        assert studies.status_code == 200
        for page, asset in (("/ui", "/ui/assets/app.js"), ("/docs", "/docs/assets/swagger-ui.css")):
            assert httpx.get(f"http://127.0.0.1:{port}{page}").status_code == 200
            assert httpx.get(f"http://127.0.0.1:{port}{asset}").status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    log = (tmp_path / "server.log").read_text()
    # uvicorn shuts down gracefully, then exits by the signal it got (for process managers)
    assert code in (0, -signal.SIGTERM), log[-2000:]
    assert "Application shutdown complete" in log
    assert "0.0.0.0" in env["RUNG_HOST"]  # reachable from outside the container
