"""The Kubernetes manifests (`deploy/k8s`), rendered offline with `kubectl kustomize`: the
objects a deployment needs, wired to each other and to what the image and `rung` run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rung.cli import build_parser
from tests.e2e.test_deployment import dockerfile_stages, stage_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) renders the manifests; this machine has it"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "k8s")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(rendered) if o}


def by_kind(objects, kind):
    found = [o for (k, _), o in objects.items() if k == kind]
    assert len(found) == 1, f"one {kind} expected, found {len(found)}"
    return found[0]


def container(workload):
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def test_the_manifests_render_every_object_a_deployment_needs(objects):
    assert {kind for kind, _ in objects} == {
        "ConfigMap",
        "Deployment",
        "Job",
        "PersistentVolumeClaim",
        "Service",
    }


def test_the_server_is_replicated_probed_and_configured_from_a_secret(objects):
    server = by_kind(objects, "Deployment")
    assert server["spec"]["replicas"] >= 2
    main = container(server)
    assert main["command"] == ["rung", "serve"]
    build_parser().parse_args(main["command"][1:])  # a command `rung` has
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # /readyz wants a token: the readiness probe is the image's own health check, which
    # sends one of RUNG_TOKENS to /readyz
    image_check = stage_command(dockerfile_stages()["server"], "HEALTHCHECK")
    assert main["readinessProbe"]["exec"]["command"] == image_check
    env = {e["name"]: e for e in main["env"]}
    for name in ("RUNG_DATABASE_URL", "RUNG_TOKENS"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "rung"
    settings = by_kind(objects, "ConfigMap")
    assert main["envFrom"] == [{"configMapRef": {"name": settings["metadata"]["name"]}}]
    assert settings["data"]["RUNG_HOST"] == "0.0.0.0"
    pod = server["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > 30  # the server drains for up to 30 s


def test_checkpoints_are_shared_by_every_replica(objects):
    server = by_kind(objects, "Deployment")
    claim = by_kind(objects, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    (volume,) = server["spec"]["template"]["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (mount,) = container(server)["volumeMounts"]
    store = by_kind(objects, "ConfigMap")["data"]["RUNG_CHECKPOINT_STORE"]
    assert mount["name"] == volume["name"] and mount["mountPath"] == store


def test_a_job_migrates_the_database_directly_and_the_service_reaches_the_servers(objects):
    job = by_kind(objects, "Job")
    migrate = container(job)
    assert migrate["command"] == ["rung", "db", "upgrade"]
    build_parser().parse_args(migrate["command"][1:])
    assert migrate["image"] == container(by_kind(objects, "Deployment"))["image"]
    url = {e["name"]: e for e in migrate["env"]}["RUNG_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"]["key"] == "migration-database-url"
    service = by_kind(objects, "Service")
    labels = by_kind(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8000 and port["targetPort"] == "http"
