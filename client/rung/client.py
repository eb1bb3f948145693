"""The Rung SDK: a sync `Client` and an async `AsyncClient` over one `BaseClient`.

`BaseClient` holds everything that does no I/O: each API call described as a `Call`, the
retry policy (connection errors, 5xx and 429 are retried with exponential backoff and full
jitter, honouring Retry-After), and the mapping of answers to typed results or to the
errors of rung.errors. The two subclasses only send. The transport is injectable, so tests
run the SDK against the ASGI app in-process.

    client = Client("http://rung:8000")
    study = client.study("digits", hyperparameters=hp, objective="val_accuracy", max_epochs=27)
    while (trial := study.next_trial()) is not None:      # sleeps on "wait"
        with study.session(trial) as session:              # heartbeats in the background
            for epoch in range(trial.initial_epoch, trial.epochs):
                session.report(epoch, {"val_accuracy": train_one_epoch()})
        study.tell(trial, {"val_accuracy": ...})
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import (
    Awaitable,
    Callable,
)
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx

from . import errors
from .calls import (
    CHUNK,
    BaseClient,
    Call,
    ObjectiveInput,
    RetryPolicy,
    Setting,
    SpaceInput,
    _afile_chunks,
    _file_chunks,
)
from .files import atomic_file
from .handles import AsyncStudyHandle, StudyHandle, default_worker_id
from .schemas import AskResponse, CheckpointInfo, Page, Study, Trial

T = TypeVar("T")
__all__ = ["AsyncClient", "Client", "RetryPolicy"]


class Client(BaseClient):
    """The synchronous client."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        **kwargs: Any,
    ):
        super().__init__(base_url, **kwargs)
        self._http = httpx.Client(
            base_url=self.base_url, transport=transport, timeout=self.timeout, headers=self.headers
        )
        self.sleep: Callable[[float], None] = time.sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        attempt, waited = 0, 0.0
        while True:
            try:
                with self._http.stream(
                    call.method,
                    call.path,
                    json=call.json,
                    params=call.params,
                    headers=call.headers,
                    content=_file_chunks(call.upload) if call.upload else None,
                ) as response:
                    if call.download is None or response.status_code >= 400:
                        response.read()
                    delay = self._delay_after(attempt, waited, response)
                    if delay is None:
                        if call.download is not None and response.status_code < 400:
                            return cast(T, self._save(response, call.download))
                        return self._result(call, response)
            except (httpx.RequestError, errors.ChecksumError) as exc:
                delay = self._delay_after_error(attempt, waited, exc)
            self.sleep(delay)
            attempt, waited = attempt + 1, waited + delay

    def _save(self, response: httpx.Response, path: Path) -> CheckpointInfo:
        digest, size = hashlib.sha256(), 0
        with atomic_file(path) as f:
            for chunk in response.iter_bytes(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
            return self._downloaded(response, digest.hexdigest(), size)

    def upload_checkpoint(
        self, study_id: str, trial_id: str, path: str | Path, *, worker_id: str
    ) -> CheckpointInfo:
        """Send a trial's checkpoint file (streamed; the server checks its SHA-256)."""
        return self._send(self._upload_checkpoint(study_id, trial_id, Path(path), worker_id))

    def download_checkpoint(self, study_id: str, trial_id: str, path: str | Path) -> CheckpointInfo:
        """Write a trial's checkpoint to `path` (streamed, verified, atomically)."""
        return self._send(self._download_checkpoint(study_id, trial_id, Path(path)))

    def create_study(
        self,
        name: str,
        *,
        hyperparameters: SpaceInput = None,
        objective: ObjectiveInput,
        **settings: Setting,
    ) -> Study:
        """Create a study, or get the one with this name and the same settings."""
        return self._send(self._create_study(name, hyperparameters, objective, **settings))

    def get_study(self, study_id: str) -> Study:
        return self._send(self._get_study(study_id))

    def list_studies(
        self, *, limit: int = 100, cursor: str | None = None, name: str | None = None
    ) -> Page[Study]:
        """A page of studies; `name` keeps the one with exactly that name."""
        return self._send(self._list_studies(limit, cursor, name=name))

    def find_study(self, name: str) -> Study | None:
        """The study named `name`, or None."""
        items = self.list_studies(limit=1, name=name).items
        return items[0] if items else None

    def delete_study(self, study_id: str) -> None:
        self._send(self._delete_study(study_id))

    def stop_study(self, study_id: str) -> Study:
        """No new trials from now on; running trials may still finish."""
        return self._send(self._stop_study(study_id))

    def resume_study(self, study_id: str) -> Study:
        """A stopped or failed study runs again, its results kept."""
        return self._send(self._resume_study(study_id))

    def ask(self, study_id: str, worker_id: str) -> AskResponse:
        return self._send(self._ask(study_id, worker_id))

    def report(
        self,
        study_id: str,
        trial_id: str,
        epoch: int,
        metrics: dict[str, float],
        *,
        worker_id: str | None = None,
    ) -> Trial:
        return self._send(self._report(study_id, trial_id, epoch, metrics, worker_id))

    def heartbeat(self, study_id: str, trial_id: str, worker_id: str) -> Trial:
        return self._send(self._heartbeat(study_id, trial_id, worker_id))

    def tell(
        self,
        study_id: str,
        trial_id: str,
        *,
        metrics: dict[str, float] | None = None,
        error: str | None = None,
        worker_id: str | None = None,
        new_hyperparameters: SpaceInput = None,
    ) -> Trial:
        """The trial's result (`metrics`), or its failure (`error`)."""
        call = self._tell(
            study_id,
            trial_id,
            metrics=metrics,
            error=error,
            worker_id=worker_id,
            new_hyperparameters=new_hyperparameters,
        )
        return self._send(call)

    def trial(self, study_id: str, trial_id: str) -> Trial:
        return self._send(self._trial(study_id, trial_id))

    def trials(
        self,
        study_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Trial]:
        return self._send(self._trials(study_id, status, limit, cursor))

    def best(self, study_id: str, k: int = 1) -> list[Trial]:
        return list(self._send(self._best(study_id, k)).items)

    def study(
        self,
        name: str,
        *,
        objective: ObjectiveInput,
        hyperparameters: SpaceInput = None,
        worker_id: str | None = None,
        **settings: Setting,
    ) -> StudyHandle:
        """A handle on the study `name`, created if it does not exist yet. With a token that
        may not create studies (a worker's), the study must exist: it is looked up by name."""
        try:
            study = self.create_study(
                name, hyperparameters=hyperparameters, objective=objective, **settings
            )
        except errors.ForbiddenError:
            study = self._existing(name, self.list_studies(limit=1, name=name))
        return StudyHandle(self, study, worker_id=worker_id or default_worker_id())


class AsyncClient(BaseClient):
    """The asynchronous client (same calls, awaited)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ):
        super().__init__(base_url, **kwargs)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, transport=transport, timeout=self.timeout, headers=self.headers
        )
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        attempt, waited = 0, 0.0
        while True:
            try:
                async with self._http.stream(
                    call.method,
                    call.path,
                    json=call.json,
                    params=call.params,
                    headers=call.headers,
                    content=_afile_chunks(call.upload) if call.upload else None,
                ) as response:
                    if call.download is None or response.status_code >= 400:
                        await response.aread()
                    delay = self._delay_after(attempt, waited, response)
                    if delay is None:
                        if call.download is not None and response.status_code < 400:
                            return cast(T, await self._save(response, call.download))
                        return self._result(call, response)
            except (httpx.RequestError, errors.ChecksumError) as exc:
                delay = self._delay_after_error(attempt, waited, exc)
            await self.sleep(delay)
            attempt, waited = attempt + 1, waited + delay

    async def _save(self, response: httpx.Response, path: Path) -> CheckpointInfo:
        digest, size = hashlib.sha256(), 0
        with atomic_file(path) as f:
            async for chunk in response.aiter_bytes(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                await asyncio.to_thread(f.write, chunk)
            return self._downloaded(response, digest.hexdigest(), size)

    async def upload_checkpoint(
        self, study_id: str, trial_id: str, path: str | Path, *, worker_id: str
    ) -> CheckpointInfo:
        call = await asyncio.to_thread(
            self._upload_checkpoint, study_id, trial_id, Path(path), worker_id
        )
        return await self._send(call)

    async def download_checkpoint(
        self, study_id: str, trial_id: str, path: str | Path
    ) -> CheckpointInfo:
        return await self._send(self._download_checkpoint(study_id, trial_id, Path(path)))

    async def create_study(
        self,
        name: str,
        *,
        hyperparameters: SpaceInput = None,
        objective: ObjectiveInput,
        **settings: Setting,
    ) -> Study:
        return await self._send(self._create_study(name, hyperparameters, objective, **settings))

    async def get_study(self, study_id: str) -> Study:
        return await self._send(self._get_study(study_id))

    async def list_studies(
        self, *, limit: int = 100, cursor: str | None = None, name: str | None = None
    ) -> Page[Study]:
        return await self._send(self._list_studies(limit, cursor, name=name))

    async def find_study(self, name: str) -> Study | None:
        items = (await self.list_studies(limit=1, name=name)).items
        return items[0] if items else None

    async def delete_study(self, study_id: str) -> None:
        await self._send(self._delete_study(study_id))

    async def stop_study(self, study_id: str) -> Study:
        return await self._send(self._stop_study(study_id))

    async def resume_study(self, study_id: str) -> Study:
        return await self._send(self._resume_study(study_id))

    async def ask(self, study_id: str, worker_id: str) -> AskResponse:
        return await self._send(self._ask(study_id, worker_id))

    async def report(
        self,
        study_id: str,
        trial_id: str,
        epoch: int,
        metrics: dict[str, float],
        *,
        worker_id: str | None = None,
    ) -> Trial:
        return await self._send(self._report(study_id, trial_id, epoch, metrics, worker_id))

    async def heartbeat(self, study_id: str, trial_id: str, worker_id: str) -> Trial:
        return await self._send(self._heartbeat(study_id, trial_id, worker_id))

    async def tell(
        self,
        study_id: str,
        trial_id: str,
        *,
        metrics: dict[str, float] | None = None,
        error: str | None = None,
        worker_id: str | None = None,
        new_hyperparameters: SpaceInput = None,
    ) -> Trial:
        call = self._tell(
            study_id,
            trial_id,
            metrics=metrics,
            error=error,
            worker_id=worker_id,
            new_hyperparameters=new_hyperparameters,
        )
        return await self._send(call)

    async def trial(self, study_id: str, trial_id: str) -> Trial:
        return await self._send(self._trial(study_id, trial_id))

    async def trials(
        self,
        study_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Trial]:
        return await self._send(self._trials(study_id, status, limit, cursor))

    async def best(self, study_id: str, k: int = 1) -> list[Trial]:
        return list((await self._send(self._best(study_id, k))).items)

    async def study(
        self,
        name: str,
        *,
        objective: ObjectiveInput,
        hyperparameters: SpaceInput = None,
        worker_id: str | None = None,
        **settings: Setting,
    ) -> AsyncStudyHandle:
        try:
            study = await self.create_study(
                name, hyperparameters=hyperparameters, objective=objective, **settings
            )
        except errors.ForbiddenError:
            study = self._existing(name, await self.list_studies(limit=1, name=name))
        return AsyncStudyHandle(self, study, worker_id=worker_id or default_worker_id())
