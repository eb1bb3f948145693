"""Alembic revisions against real databases: upgrade from empty, no drift, downgrade; and a
server that faces an outdated schema says so."""

import pytest
from sqlalchemy import create_engine, inspect

from service.app import create_app
from service.db import migrate
from service.errors import SchemaOutdated
from service.settings import Settings


def tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_check_downgrade(empty_database_url):
    url = empty_database_url
    migrate.upgrade(url)
    assert {"studies", "brackets", "trials", "trial_metrics", "alembic_version"} <= tables(url)
    migrate.check(url)  # the models and the migrations agree: no drift
    engine = create_engine(url)
    status = migrate.schema_status(engine)
    engine.dispose()
    assert status.up_to_date and status.current == migrate.head_revision()
    migrate.downgrade(url, "base")
    assert tables(url) <= {"alembic_version"}
    migrate.upgrade(url)  # and up again
    assert "trials" in tables(url)


def test_a_server_facing_an_empty_or_outdated_schema_says_so(empty_database_url):
    from fastapi.testclient import TestClient

    app = create_app(Settings(database_url=empty_database_url))
    with (
        pytest.raises(SchemaOutdated, match="no Rung schema yet: run `rung db upgrade`"),
        TestClient(app),
    ):
        pass
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url, "base")
    engine = create_engine(empty_database_url)
    status = migrate.schema_status(engine)
    engine.dispose()
    assert not status.up_to_date
    assert "run `rung db upgrade`" in status.message()


def serve(url):
    from fastapi.testclient import TestClient

    from tests.conftest import LOCAL

    return TestClient(create_app(Settings(database_url=url)), base_url=LOCAL)


def previous_revision() -> str:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    down = scripts.get_revision(migrate.head_revision()).down_revision
    assert isinstance(down, str)
    return down


def test_an_upgrade_keeps_a_running_study_and_it_carries_on(empty_database_url):
    """A study half-way through, in a database at the previous schema revision: after
    `rung db upgrade` the new server serves its trials, histories and counters as they
    were, and the study runs on to the end. (The data is written at head and the database
    then downgraded: the revisions since the previous one change indexes only, so the rows
    are those the previous revision's server wrote.)"""
    from tests.api.helpers import ask, create, tell

    url = empty_database_url
    migrate.upgrade(url)
    with serve(url) as client:
        study = create(client, max_epochs=9, factor=3)
        sid = study["id"]
        for i in range(5):
            trial = ask(client, sid, f"w{i}")["trial"]
            report = {"epoch": 0, "metrics": {"val_loss": 1.0 + i}, "worker_id": f"w{i}"}
            assert client.post(f"/v1/studies/{sid}/trials/{trial['id']}/report", json=report)
            if i < 4:  # one trial stays running, its worker gone
                assert tell(client, sid, trial["id"], 0.5 + i).status_code == 200
        before = client.get(f"/v1/studies/{sid}/trials").json()
    migrate.downgrade(url, previous_revision())
    engine = create_engine(url)
    status = migrate.schema_status(engine)
    engine.dispose()
    assert status.current == previous_revision() and not status.up_to_date
    migrate.upgrade(url)
    with serve(url) as client:
        after = client.get(f"/v1/studies/{sid}/trials").json()
        assert after == before
        running = [t for t in after["items"] if t["status"] == "running"]
        assert len(running) == 1
        assert tell(client, sid, running[0]["id"], 0.1).status_code == 200
        while (answer := ask(client, sid, "w-new"))["status"] == "run":
            assert tell(client, sid, answer["trial"]["id"], 0.3).status_code == 200
        assert answer["status"] == "done"
        final = client.get(f"/v1/studies/{sid}").json()
        assert final["status"] == "done", final
        counts = final["progress"]["trials"]
        assert counts["running"] == counts["pending"] == counts["failed"] == 0, counts
    from tests.faults.checks import audit_counters

    audit_counters(url, sid)


@pytest.mark.postgres
def test_migrations_wait_for_the_advisory_lock(empty_postgres_url):
    """Replicas starting together migrate in turn: while another session holds the
    migration lock, an upgrade waits for it and touches nothing; then it runs."""
    import threading

    from sqlalchemy import text

    engine = create_engine(empty_postgres_url)
    holder = engine.connect()
    holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": migrate.MIGRATION_LOCK})
    holder.commit()
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            migrate.upgrade(empty_postgres_url)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=upgrade)
    thread.start()
    try:
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        with engine.connect() as watcher:
            for _ in range(600):  # until the upgrade is seen waiting on the lock (≤ 60 s)
                if watcher.execute(text(waiting)).scalar():
                    break
                thread.join(0.1)
            else:
                pytest.fail("the upgrade never waited for the migration lock")
        assert thread.is_alive() and tables(empty_postgres_url) == set()
    finally:
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": migrate.MIGRATION_LOCK})
        holder.commit()
        holder.close()
    thread.join(60)
    engine.dispose()
    assert not thread.is_alive() and not errors, errors
    assert "trials" in tables(empty_postgres_url)
