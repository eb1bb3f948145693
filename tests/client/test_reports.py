"""`rung studies / show / trials / export` against a real `rung serve` with tokens, on a study
driven over HTTP through a whole Hyperband iteration with one trial left running."""

import csv
import io
import json
import subprocess
import sys

import httpx
import pytest

from tests.servers import running_server

ADMIN, READER = "admin-secret-1", "reader-secret-3"
TOKENS = f"admin:{ADMIN},reader:{READER}"
SPACE = [
    {"type": "float", "name": "lr", "min_value": 1e-4, "max_value": 1e-1, "sampling": "log"},
    {"type": "int", "name": "units", "min_value": 8, "max_value": 64, "step": 8},
]


def rung(server, *args, token=READER):
    command = [sys.executable, "-m", "rung.cli", *args, "--server", server.url]
    if token is not None:
        command += ["--token", token]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def api_trials(http, sid):
    return http.get(f"/v1/studies/{sid}/trials", params={"limit": 1000}).json()["items"]


@pytest.fixture(scope="module")
def served(tmp_path_factory, sqlite_template):
    """A server with one study: every trial told but the last one handed out (running)."""
    import shutil

    tmp_path = tmp_path_factory.mktemp("reports")
    shutil.copy(sqlite_template, tmp_path / "rung.db")
    env = {"RUNG_TOKENS": TOKENS}
    with running_server(f"sqlite:///{tmp_path / 'rung.db'}", tmp_path, env=env) as server:
        http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
        )
        body = {"name": "ladder", "objective": "val_loss", "max_epochs": 9, "seed": 3}
        sid = http.post("/v1/studies", json={**body, "hyperparameters": SPACE}).json()["id"]
        handed = 0
        while (answer := http.post(f"/v1/studies/{sid}/ask", json={"worker_id": "w"}).json())[
            "status"
        ] == "run":
            trial = answer["trial"]
            handed += 1
            if handed == 20:  # keep this one running
                break
            score = abs(trial["hyperparameters"]["lr"] - 0.01) + 1 / trial["epochs"]
            told = http.post(
                f"/v1/studies/{sid}/trials/{trial['id']}/tell",
                json={"metrics": {"val_loss": score}, "worker_id": "w"},
            )
            assert told.status_code == 200
        yield server, http, sid


def test_studies_lists_each_study(served):
    server, _, sid = served
    done = rung(server, "studies")
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split() == ["id", "name", "status", "objective", "max_epochs", "created"]
    assert row.split()[:5] == [sid, "ladder", "running", "val_loss", "(min)"]


def test_show_draws_the_ladder_with_the_apis_counts_and_the_best_trials(served):
    server, http, sid = served
    study = http.get(f"/v1/studies/{sid}").json()
    done = rung(server, "show", "ladder", "--best", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    counts = study["progress"]["trials"]
    assert lines[2] == (
        f"trials: {counts['completed']} completed, {counts['running']} running, "
        f"{counts['pending']} pending, {counts['failed']} failed"
    )
    shown = {  # iteration, bracket, open, round, epochs, planned, created, completed
        (t[2], *(int(x) for x in (t[0], t[1], t[3], t[4], t[5], t[6], t[7])))
        for t in (line.split() for line in lines)
        if len(t) == 8 and t[2] in ("open", "closed")
    }
    expected = {
        (
            "open" if b["open"] else "closed",
            *(b["iteration"], b["bracket"], r["round"], r["epochs"]),
            *(r["size"], r["created"], r["completed"]),
        )
        for b in study["progress"]["brackets"]
        for r in b["rounds"]
    }
    assert shown == expected and len(expected) >= 3
    best = http.get(f"/v1/studies/{sid}/best", params={"k": 3}).json()["items"]
    start = lines.index("best 3:")
    assert [line.split()[0] for line in lines[start + 2 : start + 5]] == [t["id"] for t in best]


def test_trials_lists_the_trials_in_a_status(served):
    server, http, sid = served
    for status in ("completed", "running"):
        done = rung(server, "trials", sid, "--status", status)  # by id, this time
        assert done.returncode == 0, done.stderr
        listed = [line.split()[0] for line in done.stdout.splitlines()[1:]]
        expected = [t["id"] for t in api_trials(http, sid) if t["status"] == status]
        assert listed == expected and expected


def test_export_writes_the_apis_trials_as_csv_and_json(served, tmp_path):
    server, http, sid = served
    trials = api_trials(http, sid)
    done = rung(server, "export", "ladder", "--format", "csv", "-o", str(tmp_path / "t.csv"))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert [r["id"] for r in rows] == [t["id"] for t in trials]
    for row, trial in zip(rows, trials, strict=True):
        assert row["status"] == trial["status"]
        assert row["parent_trial_id"] == (trial["parent_trial_id"] or "")
        assert (float(row["score"]) if row["score"] else None) == trial["score"]
        assert float(row["hp.lr"]) == trial["hyperparameters"]["lr"]
        assert int(row["hp.units"]) == trial["hyperparameters"]["units"]
        metrics = trial["metrics"] or {}
        assert (float(row["metric.val_loss"]) if row["metric.val_loss"] else None) == metrics.get(
            "val_loss"
        )
    assert any(r["parent_trial_id"] for r in rows), "no promotion in the export"
    as_json = rung(server, "export", sid, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == trials


def test_refusals_are_one_line_naming_the_problem(served):
    server, _, _ = served
    no_token = rung(server, "show", "ladder", token=None)
    assert no_token.returncode == 1
    assert no_token.stderr.startswith("rung show: ") and "Traceback" not in no_token.stderr
    unknown = rung(server, "show", "nope")
    assert unknown.returncode == 1
    assert "no study is named 'nope' or has that id" in unknown.stderr
