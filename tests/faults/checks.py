"""What every fault test checks at the end: the study finished with every result recorded
exactly once, no trial held by two live workers at once, the Keras Tuner schedule, and every
counter the database keeps equal to what its rows say."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import Connection, Engine, create_engine, text

from service.core.schedule import Schedule


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def all_trials(base_url: str, study_id: str, headers: dict | None = None) -> list[dict]:
    trials, cursor = [], None
    with httpx.Client(base_url=base_url, headers=headers or {}, timeout=30) as http:
        while True:
            params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
            page = http.get(f"/v1/studies/{study_id}/trials", params=params).json()
            trials += page["items"]
            if not (cursor := page["next_cursor"]):
                return trials


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one state of the database. PostgreSQL: a REPEATABLE
    READ transaction. SQLite: an explicit BEGIN, because the Python driver runs SELECTs
    outside any transaction (each would see a different state while workers write)."""
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")
        return
    with (
        engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
        conn.begin(),
    ):
        yield conn


def audit_counters(database_url: str, study_id: str) -> None:
    """The counters stored for speed (the study's trial and pending counts, each bracket's
    created / completed / active counts, each trial's `promoted` flag) against a count of
    the rows, read with plain SQL, not through the service's repository."""
    engine = create_engine(database_url)
    sid = {"s": int(study_id)}
    try:  # one snapshot: it may run while workers write
        with snapshot(engine) as conn:
            trial_count, pending_count = conn.execute(
                text("SELECT trial_count, pending_count FROM studies WHERE id = :s"), sid
            ).one()
            rows = conn.execute(
                text(
                    "SELECT t.id, t.bracket_id, t.round, t.status, t.promoted, "
                    "EXISTS (SELECT 1 FROM trials c WHERE c.parent_id = t.id) "
                    "FROM trials t WHERE t.study_id = :s"
                ),
                sid,
            ).all()
            brackets = conn.execute(
                text("SELECT id, created, completed, active FROM brackets WHERE study_id = :s"),
                sid,
            ).all()
    finally:
        engine.dispose()
    assert trial_count == len(rows), ("trial_count", trial_count, len(rows))
    pending = sum(r[3] == "pending" for r in rows)
    assert pending_count == pending, ("pending_count", pending_count, pending)
    for trial_id, _, _, _, promoted, has_child in rows:
        assert bool(promoted) == bool(has_child), ("promoted", trial_id, promoted, has_child)
    for bracket_id, created, completed, active in brackets:
        created = json.loads(created) if isinstance(created, str) else created
        completed = json.loads(completed) if isinstance(completed, str) else completed
        mine = [r for r in rows if r[1] == bracket_id]
        for round_, (made, done) in enumerate(zip(created, completed, strict=True)):
            in_round = [r for r in mine if r[2] == round_]
            assert made == len(in_round), ("created", bracket_id, round_, made, len(in_round))
            finished = sum(r[3] == "completed" for r in in_round)
            assert done == finished, ("completed", bracket_id, round_, done, finished)
        live = sum(r[3] in ("running", "pending") for r in mine)
        assert active == live, ("active", bracket_id, active, live)


def check_study(
    base_url: str,
    study_id: str,
    record: Path,
    *,
    database_url: str,
    max_epochs: int = 27,
    factor: int = 3,
    headers: dict | None = None,
    dead: set[str] = frozenset(),
) -> list[dict]:
    """`dead`: workers killed during the run (their hand-outs may be taken over)."""
    with httpx.Client(base_url=base_url, headers=headers or {}, timeout=30) as http:
        study = http.get(f"/v1/studies/{study_id}").json()
    assert study["status"] == "done", study
    trials = all_trials(base_url, study_id, headers)
    schedule = Schedule(max_epochs, factor)
    assert len(trials) == schedule.trials_per_iteration()
    assert all(t["status"] == "completed" for t in trials), [
        t for t in trials if t["status"] != "completed"
    ]
    shape = Counter((t["bracket"], t["round"], t["epochs"]) for t in trials)
    assert shape == Counter(
        {
            (b, r, schedule.epochs(b, r)): schedule.size(b, r)
            for b in range(schedule.num_brackets)
            for r in range(b + 1)
        }
    )
    entries = records(record)
    told = [e for e in entries if e["event"] == "told"]
    scores = {t["id"]: t["score"] for t in trials}
    # every result recorded once: one accepted tell per trial, and it is the stored score (a
    # worker killed between the server's answer and its own record leaves no record)
    accepted = Counter(e["trial"] for e in told)
    for trial in trials:
        assert accepted[trial["id"]] == 1 or (
            accepted[trial["id"]] == 0 and trial["worker_id"] in dead
        ), (trial["id"], accepted[trial["id"]], trial["worker_id"])
    assert all(scores[e["trial"]] == e["score"] for e in told)
    # no trial held by two live workers: hand-outs of a trial go to one worker, unless the
    # first holder is one that was killed (then its lease expired and another took it over)
    holders: dict[str, list[str]] = defaultdict(list)
    for e in entries:
        if e["event"] == "run" and e["worker"] not in holders[e["trial"]]:
            holders[e["trial"]].append(e["worker"])
    for trial_id, workers in holders.items():
        alive = [w for w in workers if w not in dead]
        assert len(alive) <= 1, f"trial {trial_id} was held by {workers}"
    audit_counters(database_url, study_id)
    return trials
