"""The SDK against the app in-process (sync and async), its retries and backoff, "wait"
handling, and the mapping of every error to the exception tree."""

import asyncio
import time

import httpx
import keras_tuner as kt
import pytest

from rung import errors
from rung.client import AsyncClient, Client, RetryPolicy
from service.core.schedule import Schedule
from tests.api.helpers import SPACE


@pytest.fixture
def sdk(client):
    """A rung.Client whose transport is the in-process app (the TestClient's)."""
    with Client("http://localhost", transport=client._transport) as rung_client:
        rung_client.sleep = lambda _: None
        yield rung_client


def test_a_study_runs_to_the_end_through_the_sdk(sdk):
    study = sdk.study(
        "sdk", hyperparameters=SPACE, objective="val_loss", max_epochs=9, seed=3, worker_id="w1"
    )
    seen = 0
    while (trial := study.next_trial()) is not None:
        for epoch in range(trial.initial_epoch, trial.epochs):
            study.report(trial, epoch, {"val_loss": 1.0 / (epoch + 1 + int(trial.id))})
        told = study.tell(trial, {"val_loss": 0.5})
        assert told.status == "completed" and told.score <= 0.5
        seen += 1
    assert seen == Schedule(9, 3).trials_per_iteration()
    assert study.done_reason.startswith("completed")
    best = study.best(3)
    assert [t.score for t in best] == sorted(t.score for t in best)
    assert best[0].history and best[0].history[-1].epoch == best[0].epochs - 1
    assert sdk.get_study(study.id).status == "done"
    assert study.id in [s.id for s in sdk.list_studies().items]


async def renewed(rung_client, trial, deadline_s=10.0):
    """Return once the trial's lease was renewed by someone else than this coroutine."""
    first = trial.lease_expires_at
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while loop.time() < deadline:
        now = await rung_client.trial(trial.study_id, trial.id)
        if now.lease_expires_at > first:
            return
        await asyncio.sleep(0.05)
    pytest.fail("keep_alive sent no heartbeat")


def test_async_client_in_process(client):
    async def scenario():
        transport = httpx.ASGITransport(app=client.app)
        async with AsyncClient("http://localhost", transport=transport) as rung_client:
            study = await rung_client.study(
                "async",
                hyperparameters=SPACE,
                objective="val_loss",
                max_epochs=3,
                lease_seconds=0.6,  # a heartbeat every 0.2 s
                worker_id="a",
            )
            count = 0
            while (trial := await study.next_trial()) is not None:
                async with study.keep_alive(trial) as lost:
                    if count == 0:  # the first trial: wait for a heartbeat to renew its lease
                        await renewed(rung_client, trial)
                    await study.report(trial, trial.initial_epoch, {"val_loss": 0.3})
                assert not lost.is_set()
                await study.tell(trial, {"val_loss": 0.3})
                count += 1
            with pytest.raises(errors.NotFoundError):
                await rung_client.get_study("424242")
            return count

    assert asyncio.run(scenario()) == Schedule(3, 3).trials_per_iteration()


def test_errors_from_the_server_are_mapped(sdk):
    study = sdk.study("e", hyperparameters=SPACE, objective="val_loss", worker_id="w1")
    with pytest.raises(errors.NotFoundError) as not_found:
        sdk.get_study("999")
    assert not_found.value.status == 404 and not_found.value.code == "not_found"
    with pytest.raises(errors.ConflictError, match="other settings"):
        sdk.create_study("e", hyperparameters=SPACE, objective="val_loss", max_epochs=27)
    with pytest.raises(errors.InvalidError, match="min_value 5 is greater"):
        sdk.create_study(
            "bad",
            objective="val_loss",
            hyperparameters=[{"type": "int", "name": "n", "min_value": 5, "max_value": 1}],
        )
    trial = study.next_trial()
    with pytest.raises(errors.LeaseLostError):
        sdk.heartbeat(study.id, trial.id, "someone-else")
    study.tell(trial, {"val_loss": 0.25})
    with pytest.raises(errors.AlreadyFinishedError) as finished:
        study.tell(trial, {"val_loss": 0.75})
    assert finished.value.trial.score == 0.25
    with pytest.raises(errors.ConflictError):  # not running any more
        study.report(trial, 0, {"val_loss": 1.0})


def test_keras_tuner_hyperparameters_are_accepted(sdk):
    hps = kt.HyperParameters()
    hps.Int("units", 32, 256, step=32)
    hps.Choice("kind", ["a", "b"])
    with hps.conditional_scope("kind", "b"):
        hps.Float("extra", 0.0, 1.0)
    study = sdk.create_study("kt", hyperparameters=hps, objective="val_loss")
    assert [hp["name"] for hp in study.hyperparameters] == ["units", "kind", "extra"]


def scripted(*answers):
    """A transport that answers with the given responses (or raises the given errors)."""
    calls = []

    def handler(request):
        calls.append(request)
        answer = answers[min(len(calls), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), calls


def sdk_over(transport, **kw):
    rung_client = Client("http://rung", transport=transport, seed=1, **kw)
    slept = []
    rung_client.sleep = slept.append
    return rung_client, slept


ASK_RUN_WAIT = httpx.Response(200, json={"status": "wait", "retry_after_s": 2.0})


def test_connection_errors_5xx_and_429_are_retried_with_backoff():
    ok = httpx.Response(200, json={"status": "done", "reason": "completed"})
    transport, calls = scripted(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(503, text="restarting"),
        httpx.Response(429, headers={"retry-after": "3"}, json={}),
        httpx.Response(502, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        ok,
    )
    rung_client, slept = sdk_over(transport, retry=RetryPolicy(max_attempts=10, base=0.1, cap=1))
    assert rung_client.ask("1", "w").status == "done"
    assert len(calls) == 6
    assert len(slept) == 5
    for attempt, delay in enumerate(slept):
        if attempt == 3:
            assert delay == 3.0  # Retry-After is honoured
        else:
            assert 0 <= delay <= min(1, 0.1 * 2**attempt)  # exponential, jittered, capped


def test_retries_give_up_with_the_right_error():
    transport, calls = scripted(httpx.ConnectError("refused"))
    rung_client, slept = sdk_over(transport, retry=RetryPolicy(max_attempts=4))
    with pytest.raises(errors.TransportError, match="cannot reach"):
        rung_client.ask("1", "w")
    assert len(calls) == 4 and len(slept) == 3
    # httpx's other request errors (a broken content encoding, redirect loops) are in the
    # tree too, not httpx's own exceptions
    for raised in (httpx.DecodingError("bad gzip"), httpx.TooManyRedirects("loop")):
        transport, calls = scripted(raised)
        rung_client, _ = sdk_over(transport, retry=RetryPolicy(max_attempts=2))
        with pytest.raises(errors.TransportError, match="cannot reach"):
            rung_client.ask("1", "w")
    transport, calls = scripted(httpx.Response(500, text="boom"))
    rung_client, _ = sdk_over(transport, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(errors.ServerError) as failed:
        rung_client.ask("1", "w")
    assert failed.value.status == 500 and len(calls) == 3


def test_4xx_is_not_retried_and_maps_to_the_tree():
    cases = [
        (400, "malformed_json", errors.InvalidError),
        (413, "too_large", errors.InvalidError),
        (422, "invalid", errors.InvalidError),
        (401, "unauthorized", errors.UnauthorizedError),
        (403, "forbidden", errors.ForbiddenError),
        (404, "not_found", errors.NotFoundError),
        (409, "conflict", errors.ConflictError),
        (409, "lease_lost", errors.LeaseLostError),
        (409, "already_finished", errors.AlreadyFinishedError),
    ]
    for status, code, cls in cases:
        body = {"error": {"code": code, "message": f"{code} happened", "details": None}}
        transport, calls = scripted(httpx.Response(status, json=body))
        rung_client, slept = sdk_over(transport)
        with pytest.raises(cls, match=f"{code} happened") as raised:
            rung_client.ask("1", "w")
        assert raised.value.status == status and raised.value.code == code
        assert isinstance(raised.value, errors.APIError | errors.RungError)
        assert len(calls) == 1 and not slept
    assert issubclass(errors.ForbiddenError, errors.UnauthorizedError)
    transport, _ = scripted(httpx.Response(418, text="teapot, not JSON"))
    with pytest.raises(errors.APIError, match="HTTP 418"):
        sdk_over(transport)[0].ask("1", "w")


def test_wait_is_slept_on_not_hot_looped():
    trial = {
        "id": "0",
        "study_id": "1",
        "status": "running",
        "hyperparameters": {},
        "epochs": 1,
        "initial_epoch": 0,
        "parent_trial_id": None,
        "iteration": 0,
        "bracket": 0,
        "round": 0,
        "created_at": "2026-01-01T00:00:00Z",
    }
    transport, calls = scripted(
        ASK_RUN_WAIT, ASK_RUN_WAIT, httpx.Response(200, json={"status": "run", "trial": trial})
    )
    rung_client, slept = sdk_over(transport)
    from rung.handles import StudyHandle
    from rung.schemas import Study

    study = Study(
        id="1",
        name="s",
        status="running",
        reason=None,
        created_at="2026-01-01T00:00:00Z",
        settings={"objective": "val_loss"},
        hyperparameters=[],
        objective={"name": "val_loss", "direction": "min"},
        seed=1,
    )
    got = StudyHandle(rung_client, study, worker_id="w").next_trial()
    assert got.id == "0" and len(calls) == 3
    assert len(slept) == 2 and all(1.0 <= s <= 3.0 for s in slept)  # 2 s, jittered


def test_a_trial_session_keeps_the_lease_alive(sdk):
    study = sdk.study(
        "beat", hyperparameters=SPACE, objective="val_loss", lease_seconds=1.0, worker_id="w1"
    )
    trial = study.next_trial()
    with study.session(trial) as session:
        time.sleep(2.5)  # 2.5 leases long: only the background heartbeats keep it
        session.report(0, {"val_loss": 0.4})
    assert not session.lost.is_set() and not session.errors
    other = sdk.study(
        "beat", hyperparameters=SPACE, objective="val_loss", lease_seconds=1.0, worker_id="w2"
    )
    assert other.ask().trial.id != trial.id  # still held by w1: w2 gets another trial
    stored = sdk.trial(study.id, trial.id)
    assert stored.status == "running" and stored.lost_leases == 0
    assert stored.history[0].metrics == {"val_loss": 0.4}


def test_a_trial_session_notices_a_lost_lease(sdk):
    study = sdk.study(
        "lost", hyperparameters=SPACE, objective="val_loss", lease_seconds=0.3, worker_id="w1"
    )
    trial = study.next_trial()
    time.sleep(0.6)  # no heartbeat: the lease expires
    other = sdk.study(
        "lost", hyperparameters=SPACE, objective="val_loss", lease_seconds=0.3, worker_id="w2"
    )
    assert other.ask().trial.id == trial.id  # offered again, to w2
    with study.session(trial) as session:
        session.report(0, {"val_loss": 0.1})
        time.sleep(0.3)
    assert session.lost.is_set()
    assert sdk.trial(study.id, trial.id).history == []  # w1's report was refused


def test_studies_are_found_by_name_stopped_and_resumed(sdk):
    study = sdk.study("named", hyperparameters=SPACE, objective="val_loss", worker_id="w1")
    sdk.create_study("other", hyperparameters=SPACE, objective="val_loss")
    assert [s.name for s in sdk.list_studies(name="named").items] == ["named"]
    assert sdk.find_study("named").id == study.id and sdk.find_study("nobody") is None
    assert study.stop().status == "stopped"
    assert study.next_trial() is None and study.done_reason == "stopped on request"
    assert study.resume().status == "running"
    assert study.next_trial() is not None


def test_the_async_handle_has_every_call_of_the_sync_one(client, tmp_path):
    from rung.handles import StudyHandle

    public = {name for name in dir(StudyHandle) if not name.startswith("_")}
    from rung.handles import AsyncStudyHandle

    assert public <= {name for name in dir(AsyncStudyHandle) if not name.startswith("_")}

    async def scenario():
        transport = httpx.ASGITransport(app=client.app)
        async with AsyncClient("http://localhost", transport=transport) as rung_client:
            study = await rung_client.study(
                "async-all", hyperparameters=SPACE, objective="val_loss", worker_id="a"
            )
            trial = await study.next_trial()
            async with study.session(trial) as session:
                session.report(trial.initial_epoch, {"val_loss": 0.3})
            assert not session.lost.is_set() and not session.errors
            (tmp_path / "ckpt").write_bytes(b"weights" * 1000)
            uploaded = await study.upload(trial, tmp_path / "ckpt")
            await study.tell(trial, {"val_loss": 0.3})
            downloaded = await study.download(trial.id, tmp_path / "copy")
            assert downloaded.sha256 == uploaded.sha256
            assert (tmp_path / "copy").read_bytes() == (tmp_path / "ckpt").read_bytes()
            refreshed = await study.refresh()
            assert refreshed.progress.trials.completed == 1
            assert (await study.stop()).status == "stopped"
            assert (await study.resume()).status == "running"
            assert [s.id for s in (await rung_client.list_studies(name="async-all")).items] == [
                study.id
            ]
            assert (await rung_client.trial(study.id, trial.id)).history[0].metrics == {
                "val_loss": 0.3
            }

    asyncio.run(scenario())


def test_a_malformed_2xx_body_is_a_protocol_error():
    transport, _ = scripted(httpx.Response(200, text="<html>a proxy's page</html>"))
    rung_client, _ = sdk_over(transport)
    with pytest.raises(errors.ProtocolError, match="not a Study") as raised:
        rung_client.get_study("1")
    assert raised.value.status == 200 and isinstance(raised.value, errors.RungError)


def test_a_checkpoint_that_never_matches_its_checksum_is_a_checksum_error(tmp_path):
    corrupted = httpx.Response(200, content=b"bytes", headers={"x-checkpoint-sha256": "0" * 64})
    transport, calls = scripted(corrupted)
    rung_client, slept = sdk_over(transport, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(errors.ChecksumError, match="the server announced"):
        rung_client.download_checkpoint("1", "2", tmp_path / "ckpt")
    assert len(calls) == 3 and len(slept) == 2  # downloaded again, then given up
    assert isinstance(errors.ChecksumError("x"), errors.TransportError)
    assert not list(tmp_path.iterdir())  # no partial file left
