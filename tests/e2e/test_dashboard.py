"""The dashboard (/ui) and the API docs (/docs) in a real headless Chromium (Debian's, driven
by Playwright), against a real `rung serve` with tokens while threads run a study over HTTP.

Screenshots go to RUNG_TEST_ARTIFACTS (default: test-artifacts/ in the checkout). CI sets
RUNG_TEST_REQUIRE_BROWSER=1: there a missing Chromium fails instead of skipping."""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import running_server, wait_until

CHROMIUM = "/usr/bin/chromium"
REQUIRE = os.environ.get("RUNG_TEST_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(
    os.environ.get("RUNG_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not REQUIRE and not os.path.exists(CHROMIUM),
        reason="needs Debian's chromium (/usr/bin/chromium); CI installs it",
    ),
]

ADMIN, WORKER, READER = "admin-secret-1", "worker-secret-2", "reader-secret-3"
TOKENS = f"admin:{ADMIN},worker:{WORKER},reader:{READER}"
STUDY = {
    "name": "dashboard",
    "objective": "val_loss",
    "max_epochs": 9,
    "factor": 3,
    "hyperband_iterations": 2,
    "seed": 7,
    "scheduler": "async",  # both search options, shown on the study page
    "sampler": "bohb",
    "hyperparameters": [
        {"type": "float", "name": "lr", "min_value": 1e-4, "max_value": 1e-1, "sampling": "log"},
        {"type": "int", "name": "units", "min_value": 8, "max_value": 64, "step": 8},
        {"type": "choice", "name": "activation", "values": ["relu", "tanh"]},
        {"type": "boolean", "name": "batch_norm"},
    ],
}
EPOCH_S = 0.05  # a simulated epoch


def loss(values: dict, epoch: int) -> float:
    shape = abs(math.log10(values["lr"]) + 2) + values["units"] / 320
    return shape + (0.1 if values["activation"] == "tanh" else 0) + 1 / (epoch + 1)


def worker(url: str, sid: str, name: str, release: threading.Event) -> None:
    """Train trials until the study is done; after 8 trials, wait for `release`."""
    headers = {"Authorization": f"Bearer {WORKER}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        done = 0
        while True:
            if done == 8:
                release.wait(120)
            answer = http.post(f"/v1/studies/{sid}/ask", json={"worker_id": name}).json()
            if answer["status"] == "done":
                return
            if answer["status"] == "wait":
                time.sleep(answer["retry_after_s"] or 0.05)
                continue
            trial = answer["trial"]
            path = f"/v1/studies/{sid}/trials/{trial['id']}"
            for epoch in range(trial["initial_epoch"], trial["epochs"]):
                value = loss(trial["hyperparameters"], epoch)
                metrics = {"val_loss": value, "loss": value * 0.9}
                body = {"epoch": epoch, "metrics": metrics, "worker_id": name}
                assert http.post(f"{path}/report", json=body).status_code == 200
                time.sleep(EPOCH_S)
            told = http.post(f"{path}/tell", json={"metrics": metrics, "worker_id": name})
            assert told.status_code == 200, told.text
            done += 1


@pytest.fixture(scope="module")
def served(tmp_path_factory, sqlite_template):
    tmp_path = tmp_path_factory.mktemp("dashboard")
    shutil.copy(sqlite_template, tmp_path / "rung.db")
    env = {"RUNG_TOKENS": TOKENS, "RUNG_LOG_LEVEL": "info"}  # access lines in the log
    with running_server(f"sqlite:///{tmp_path / 'rung.db'}", tmp_path, env=env) as server:
        http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {READER}"}, timeout=30
        )
        admin = {"Authorization": f"Bearer {ADMIN}"}
        sid = httpx.post(server.url + "/v1/studies", json=STUDY, headers=admin).json()["id"]
        yield server, http, sid


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


class Page:
    """A browser page that records console errors, failed requests and every URL asked."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.urls.append(r.url))

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_the_dashboard_follows_a_running_study_and_matches_the_api(served, browser):
    server, http, sid = served
    release = threading.Event()
    workers = [
        threading.Thread(target=worker, args=(server.url, sid, f"w{i}", release), daemon=True)
        for i in range(3)
    ]
    for thread in workers:
        thread.start()
    try:
        wait_until(
            lambda: http.get(f"/v1/studies/{sid}").json()["summary"]["trials"]["completed"] >= 4,
            "four trials completed",
            deadline_s=60,
        )
        view = Page(browser)
        page = view.page

        # Without a token the page asks for one; the API refuses the page's calls.
        page.goto(server.url + "/ui")
        page.wait_for_selector("#signin:not([hidden])")
        refused = page.request.get(server.url + "/v1/studies")
        assert refused.status == 401
        view.errors.clear()  # the browser logs the refused calls as console errors

        page.fill("#token", READER)
        page.click("#signin button[type=submit]")
        row = page.wait_for_selector(f"#studies tr[data-study='{sid}']")
        assert "dashboard" in row.inner_text() and "running" in row.inner_text()
        page.fill("#search", "no-such-study")
        page.wait_for_selector("#studies td.empty")
        page.fill("#search", "dash")
        page.wait_for_selector(f"#studies tr[data-study='{sid}']")
        view.screenshot("dashboard-studies.png")

        # The study page follows the run without a reload.
        page.click(f"#studies a[href='#/studies/{sid}']")
        page.wait_for_selector("#ladder-table td.round")
        head = page.inner_text("#study-head")
        assert "schedulerasync" in head and "samplerbohb" in head, head
        assert "null" not in head  # (a study without a reason once showed "null")
        shown = completed_shown(page)
        release.set()
        page.wait_for_function(
            f"() => (document.querySelector('#study-head')?.textContent.match(/(\\d+) completed/)"
            f" || [0, 0])[1] > {shown}",
            timeout=30_000,
        )
        assert page.query_selector_all("#workers-table tr[data-worker]") or (
            http.get(f"/v1/studies/{sid}/trials", params={"status": "running"}).json()["items"]
            == []
        )

        for thread in workers:
            thread.join(120)
        assert http.get(f"/v1/studies/{sid}").json()["status"] == "done"
        page.wait_for_selector("#study-head .status.done", timeout=30_000)
        check_ladder(page, http, sid)
        check_promotions_and_curves(page, http, sid)
        check_charts(page, http, sid)
        check_table(page, http, sid)
        view.screenshot("dashboard-study.png")

        assert view.errors == []
        assert all(url.startswith(server.url) for url in view.urls), view.urls
        view.context.close()
    finally:
        release.set()
    log = server.log_path.read_text()
    assert "GET /v1/studies" in log  # the access lines are there, and no token is
    assert all(token not in log for token in (ADMIN, WORKER, READER))


def completed_shown(page) -> int:
    import re

    text = page.inner_text("#study-head")
    return int(re.search(r"(\d+) completed", text).group(1))


def check_ladder(page, http, sid):
    """Every bracket's row shows the API's planned, created and completed counts."""
    page.wait_for_function(
        "(n) => document.querySelectorAll('#ladder-table tr.bracket-row').length === n",
        arg=len(http.get(f"/v1/studies/{sid}").json()["progress"]["brackets"]),
    )
    brackets = http.get(f"/v1/studies/{sid}").json()["progress"]["brackets"]
    for b in brackets:
        row = page.query_selector(
            f"#ladder-table tr[data-iteration='{b['iteration']}'][data-bracket='{b['bracket']}']"
        )
        cells = row.query_selector_all("td.round")
        assert len(cells) == len(b["rounds"])
        for cell, r in zip(cells, b["rounds"], strict=True):
            shown = {k: int(cell.get_attribute(f"data-{k}")) for k in ("size", "created")}
            shown |= {k: int(cell.get_attribute(f"data-{k}")) for k in ("completed", "epochs")}
            assert shown == {k: r[k] for k in ("size", "created", "completed", "epochs")}
            assert f"{r['created']}/{r['size']} created" in cell.inner_text()


def check_promotions_and_curves(page, http, sid):
    """The first bracket (the most rounds) draws a link per promotion; its trials' curves
    are drawn, a continuation joined to its parent's; a click shows the trial."""
    page.click("#ladder-table tr[data-iteration='0'][data-bracket='2']")
    page.wait_for_selector("#bracket-graph g.node")
    trials = http.get(
        f"/v1/studies/{sid}/trials", params={"iteration": 0, "bracket": 2, "limit": 1000}
    ).json()["items"]
    promoted = {(t["parent_trial_id"], t["id"]) for t in trials if t["parent_trial_id"]}
    assert promoted
    page.wait_for_function(
        "(n) => document.querySelectorAll('#bracket-graph path.promotion').length === n",
        arg=len(promoted),
    )
    links = {
        (link.get_attribute("data-from"), link.get_attribute("data-to"))
        for link in page.query_selector_all("#bracket-graph path.promotion")
    }
    assert links == promoted
    nodes = page.query_selector_all("#bracket-graph g.node")
    assert sorted(n.get_attribute("data-trial") for n in nodes) == sorted(t["id"] for t in trials)
    assert len(page.query_selector_all("#curves path.series")) == len(trials)
    child = sorted(promoted)[0][1]
    page.click(f"#bracket-graph g.node[data-trial='{child}']")
    page.wait_for_selector(f"#trial[data-trial='{child}']")
    assert "from" in page.inner_text("#trial")


def check_charts(page, http, sid):
    completed = http.get(
        f"/v1/studies/{sid}/trials", params={"status": "completed", "limit": 1000}
    ).json()["items"]
    page.wait_for_function(
        "(n) => document.querySelectorAll('#parallel path.line').length === n", arg=len(completed)
    )
    for name in ("lr", "units", "activation", "batch_norm"):
        dots = page.query_selector_all(f"#scatter div[data-hp='{name}'] circle.point")
        assert len(dots) == len(completed), name
    best = http.get(f"/v1/studies/{sid}/best-so-far").json()
    assert best["points"] and page.query_selector("#best-time path.series")
    assert page.query_selector("#best-epochs path.series")
    assert (
        best["points"][-1]["score"]
        == http.get(f"/v1/studies/{sid}").json()["summary"]["best_score"]
    )


def check_table(page, http, sid):
    """The table sorts by a column and exports a CSV whose rows are the API's trials."""
    api = http.get(f"/v1/studies/{sid}/trials", params={"limit": 1000}).json()["items"]
    page.wait_for_function(
        "(n) => document.querySelectorAll('#trial-table tbody tr').length === n", arg=len(api)
    )
    page.click("#trial-table th[data-key='score']")
    scores = [
        float(cell.inner_text())
        for cell in page.query_selector_all("#trial-table td[data-key='score']")
        if cell.inner_text() != "–"
    ]
    assert scores == sorted(scores) and len(scores) == len(api)
    page.click("#trial-table th[data-key='score']")
    scores = [
        float(c.inner_text()) for c in page.query_selector_all("#trial-table td[data-key='score']")
    ]
    assert scores == sorted(scores, reverse=True)

    with page.expect_download() as download:
        page.click("#export-csv")
    exported = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["id"] for r in rows] == [t["id"] for t in api]
    # `rung export` on the same server writes the same columns and the same rows (numbers
    # compared as numbers: the page writes 3.0 as JavaScript does, "3").
    server_url = page.url.split("/ui")[0]
    command = ["export", "dashboard", "--format", "csv", "--server", server_url]
    cli = subprocess.run(
        [sys.executable, "-m", "rung.cli", *command, "--token", READER],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    cli_rows = list(csv.DictReader(io.StringIO(cli.stdout)))
    assert list(cli_rows[0]) == list(rows[0])
    for ours, theirs in zip(rows, cli_rows, strict=True):
        assert ours.keys() == theirs.keys()
        for key, value in ours.items():
            assert value == theirs[key] or float(value) == float(theirs[key]), key
    for row, trial in zip(rows, api, strict=True):
        assert row["status"] == trial["status"]
        assert float(row["score"]) == trial["score"]
        assert int(row["epochs"]) == trial["epochs"]
        assert row["parent_trial_id"] == (trial["parent_trial_id"] or "")
        assert float(row["hp.lr"]) == trial["hyperparameters"]["lr"]
        assert row["hp.activation"] == trial["hyperparameters"]["activation"]
        assert float(row["metric.val_loss"]) == trial["metrics"]["val_loss"]

    page.select_option("#trials select[name=status]", "completed")
    page.select_option("#trials select[name=round]", "1")
    in_round = [t for t in api if t["round"] == 1]
    page.wait_for_function(
        "(n) => document.querySelectorAll('#trial-table tbody tr').length === n", arg=len(in_round)
    )


def test_docs_are_served_from_the_server_itself(served, browser):
    server, _, _ = served
    view = Page(browser)
    view.page.goto(server.url + "/docs")
    view.page.wait_for_selector(".swagger-ui .info .title")
    assert "Rung" in view.page.inner_text(".swagger-ui .info .title")
    view.page.wait_for_selector(".opblock-summary-path[data-path='/v1/studies/{study_id}/ask']")
    assert view.errors == []
    assert all(url.startswith(server.url) for url in view.urls), view.urls
    view.screenshot("docs.png")
    view.context.close()
