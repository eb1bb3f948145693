"""Pages and histories are bounded in bytes: a report over its trial's share of the history
limit is refused with a 422 that names the limit, a page of trials stops growing at the page
limit (the rest is on the next page, nothing lost), and `best` refuses a `k` whose trials do
not fit in one page instead of answering with fewer."""

import json

from service.usecases import trials as trial_usecases
from tests.api.helpers import ask, assert_error, create, study_body, tell

LIMIT = 10_000  # the page limit, made small


def report(client, sid, tid, epoch, metrics, worker="w1"):
    return client.post(
        f"/v1/studies/{sid}/trials/{tid}/report",
        json={"epoch": epoch, "metrics": metrics, "worker_id": worker},
    )


def test_a_report_over_its_share_of_the_history_limit_is_refused(client):
    # one bracket of 999-epoch trials: each epoch may take 4 MiB / 999 = 4198 bytes
    sid = create(client, max_epochs=999, factor=1000)["id"]
    tid = ask(client, sid)["trial"]["id"]
    wide = {f"val_metric_number_{i:04d}": 0.5 for i in range(1000)}  # the 1,000
    refused = report(client, sid, tid, 0, wide)
    error = assert_error(refused, 422, "invalid", "metrics:", "history limit", "4198 bytes")
    assert error["details"] == {"max_bytes": 4198}
    usual = {"loss": 0.5, "val_loss": 0.6, "accuracy": 0.8, "val_accuracy": 0.7}
    assert report(client, sid, tid, 0, usual).status_code == 200
    got = client.get(f"/v1/studies/{sid}/trials/{tid}").json()
    assert got["history"] == [{"epoch": 0, "metrics": usual}]  # the refused one left nothing


def test_max_epochs_is_capped(client):
    response = client.post("/v1/studies", json=study_body(max_epochs=100_001))
    assert_error(response, 422, "invalid", "max_epochs")


def test_pages_stop_at_the_page_limit_and_nothing_is_lost(client, monkeypatch):
    monkeypatch.setattr(trial_usecases, "PAGE_BYTES", LIMIT)
    sid = create(client, max_epochs=9)["id"]
    metrics = {f"m{i:03d}": 0.25 for i in range(100)}
    for n in range(9):  # bracket 2's first round: one-epoch trials, about 2 KB each
        tid = ask(client, sid, f"w{n}")["trial"]["id"]
        reported = report(client, sid, tid, 0, {**metrics, "val_loss": 1.0 / (n + 1)}, f"w{n}")
        assert reported.status_code == 200
        assert tell(client, sid, tid, 1.0 / (n + 1)).status_code == 200
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/v1/studies/{sid}/trials", params=params)
        assert page.status_code == 200
        assert len(page.content) <= LIMIT
        body = page.json()
        seen += [t["id"] for t in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages > 1
    assert sorted(seen, key=int) == [str(n) for n in range(9)]  # each once, none lost

    best = client.get(f"/v1/studies/{sid}/best", params={"k": 9})
    error = assert_error(best, 413, "too_large", f"page limit of {LIMIT} bytes", "fit")
    fitting = error["details"]["fitting"]
    assert 1 <= fitting < 9
    ok = client.get(f"/v1/studies/{sid}/best", params={"k": fitting})
    assert ok.status_code == 200 and len(ok.json()["items"]) == fitting
    assert len(json.dumps(ok.json())) <= LIMIT
