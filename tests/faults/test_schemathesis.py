"""Schemathesis against the OpenAPI schema of a real `rung serve` (with API tokens): for every
operation, generated requests (valid and invalid) get no 5xx and no response that breaks the
schema, the declared status codes or content types. Run through schemathesis's CLI (its
pytest loader does not work with pytest 9)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.api.helpers import study_body
from tests.servers import Server

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "schemathesis-admin-token"
CHECKS = (
    "not_a_server_error,response_schema_conformance,status_code_conformance,"
    "content_type_conformance"
)


def test_api_conforms_to_its_schema(sqlite_template, tmp_path):
    shutil.copy(sqlite_template, tmp_path / "rung.db")
    server = Server(
        f"sqlite:///{tmp_path / 'rung.db'}",
        log_path=tmp_path / "server.log",
        env={"RUNG_TOKENS": f"admin:{ADMIN}"},
    ).start()
    try:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        sid = httpx.post(
            f"{server.url}/v1/studies", json=study_body(max_epochs=81), headers=headers
        ).json()["id"]
        assert sid == "1"
        httpx.post(f"{server.url}/v1/studies/1/ask", json={"worker_id": "w"}, headers=headers)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                CHECKS,
                "--max-examples",
                "30",
                "--seed",
                "1",
                "-H",
                f"Authorization: Bearer {ADMIN}",
                "--report-dir",
                str(tmp_path),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ, SCHEMATHESIS_HOOKS="tests.faults.schemathesis_hooks"),
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        assert "passed" in output.lower()
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text()  # and nothing blew up inside
