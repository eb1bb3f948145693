"""Study handles (one study seen by one worker) and trial sessions (a trial's epoch reports
sent in order in the background, with heartbeats when there is nothing to report), sync and
async alike."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import random
import threading
from collections.abc import (
    AsyncIterator,
    Iterator,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import errors
from .calls import SpaceInput
from .schemas import AskResponse, CheckpointInfo, Study, Trial
from .space import SearchSpace

if TYPE_CHECKING:
    from .client import AsyncClient, Client

log = logging.getLogger("rung.client")


def default_worker_id() -> str:
    return f"{os.uname().nodename}-{os.getpid()}"


# -- study handles ---------------------------------------------------------------------------
@dataclass
class _HandleBase:
    study: Study
    worker_id: str
    done_reason: str | None = None  # why the study ended, once next_trial() returned None

    @property
    def id(self) -> str:
        return self.study.id

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_dicts(self.study.hyperparameters)

    def heartbeat_interval(self) -> float:
        return max(0.05, self.study.settings.lease_seconds / 3)

    def _wait(self, answer: AskResponse, rng: random.Random) -> float:
        return max(0.01, (answer.retry_after_s or 1.0) * rng.uniform(0.5, 1.5))


class StudyHandle(_HandleBase):
    """One study, seen by one worker (sync)."""

    def __init__(self, client: Client, study: Study, *, worker_id: str):
        super().__init__(study, worker_id)
        self.client = client

    def refresh(self) -> Study:
        self.study = self.client.get_study(self.id)
        return self.study

    def stop(self) -> Study:
        """No new trials from now on; running ones may finish."""
        self.study = self.client.stop_study(self.id)
        return self.study

    def resume(self) -> Study:
        """A stopped or failed study runs again, its results kept."""
        self.study = self.client.resume_study(self.id)
        return self.study

    def ask(self) -> AskResponse:
        return self.client.ask(self.id, self.worker_id)

    def next_trial(self) -> Trial | None:
        """The next trial to run, sleeping on "wait"; None when the study is done."""
        while True:
            answer = self.ask()
            if answer.status == "run":
                assert answer.trial is not None
                return answer.trial
            if answer.status == "done":
                self.done_reason = answer.reason
                return None
            self.client.sleep(self._wait(answer, self.client.rng))

    def report(self, trial: Trial, epoch: int, metrics: dict[str, float]) -> Trial:
        return self.client.report(self.id, trial.id, epoch, metrics, worker_id=self.worker_id)

    def heartbeat(self, trial: Trial) -> Trial:
        return self.client.heartbeat(self.id, trial.id, self.worker_id)

    def tell(
        self,
        trial: Trial,
        metrics: dict[str, float] | None = None,
        *,
        new_hyperparameters: SpaceInput = None,
    ) -> Trial:
        return self.client.tell(
            self.id,
            trial.id,
            metrics=metrics,
            worker_id=self.worker_id,
            new_hyperparameters=new_hyperparameters,
        )

    def fail(self, trial: Trial, error: str) -> Trial:
        return self.client.tell(self.id, trial.id, error=error, worker_id=self.worker_id)

    def best(self, k: int = 1) -> list[Trial]:
        return self.client.best(self.id, k)

    def upload(self, trial: Trial, path: str | Path) -> CheckpointInfo:
        """Store `trial`'s checkpoint file in the service (while holding its lease)."""
        return self.client.upload_checkpoint(self.id, trial.id, path, worker_id=self.worker_id)

    def download(self, trial_id: str, path: str | Path) -> CheckpointInfo:
        """Fetch a trial's checkpoint from the service into `path`."""
        return self.client.download_checkpoint(self.id, trial_id, path)

    @contextmanager
    def session(self, trial: Trial) -> Iterator[TrialSession]:
        """Report epochs and keep the lease alive from a background thread while the body
        runs; every queued report is sent before the block ends."""
        session = TrialSession(self, trial)
        session.start()
        try:
            yield session
        finally:
            session.close()


class AsyncStudyHandle(_HandleBase):
    """One study, seen by one worker (async)."""

    def __init__(self, client: AsyncClient, study: Study, *, worker_id: str):
        super().__init__(study, worker_id)
        self.client = client

    async def refresh(self) -> Study:
        self.study = await self.client.get_study(self.id)
        return self.study

    async def stop(self) -> Study:
        self.study = await self.client.stop_study(self.id)
        return self.study

    async def resume(self) -> Study:
        self.study = await self.client.resume_study(self.id)
        return self.study

    async def ask(self) -> AskResponse:
        return await self.client.ask(self.id, self.worker_id)

    async def next_trial(self) -> Trial | None:
        while True:
            answer = await self.ask()
            if answer.status == "run":
                assert answer.trial is not None
                return answer.trial
            if answer.status == "done":
                self.done_reason = answer.reason
                return None
            await self.client.sleep(self._wait(answer, self.client.rng))

    async def report(self, trial: Trial, epoch: int, metrics: dict[str, float]) -> Trial:
        return await self.client.report(self.id, trial.id, epoch, metrics, worker_id=self.worker_id)

    async def heartbeat(self, trial: Trial) -> Trial:
        return await self.client.heartbeat(self.id, trial.id, self.worker_id)

    async def tell(
        self,
        trial: Trial,
        metrics: dict[str, float] | None = None,
        *,
        new_hyperparameters: SpaceInput = None,
    ) -> Trial:
        return await self.client.tell(
            self.id,
            trial.id,
            metrics=metrics,
            worker_id=self.worker_id,
            new_hyperparameters=new_hyperparameters,
        )

    async def fail(self, trial: Trial, error: str) -> Trial:
        return await self.client.tell(self.id, trial.id, error=error, worker_id=self.worker_id)

    async def best(self, k: int = 1) -> list[Trial]:
        return await self.client.best(self.id, k)

    async def upload(self, trial: Trial, path: str | Path) -> CheckpointInfo:
        """Store `trial`'s checkpoint file in the service (while holding its lease)."""
        return await self.client.upload_checkpoint(
            self.id, trial.id, path, worker_id=self.worker_id
        )

    async def download(self, trial_id: str, path: str | Path) -> CheckpointInfo:
        """Fetch a trial's checkpoint from the service into `path`."""
        return await self.client.download_checkpoint(self.id, trial_id, path)

    @asynccontextmanager
    async def session(self, trial: Trial) -> AsyncIterator[AsyncTrialSession]:
        """Report epochs and keep the lease alive from a background task while the body
        runs; every queued report is sent before the block ends."""
        session = AsyncTrialSession(self, trial)
        session.start()
        try:
            yield session
        finally:
            await session.close()

    @asynccontextmanager
    async def keep_alive(self, trial: Trial) -> AsyncIterator[asyncio.Event]:
        """Heartbeat while the body runs; the event is set if the lease was lost (stop
        working on the trial then). A session without reports."""
        async with self.session(trial) as session:
            yield session.lost


def _failed(session: TrialSession | AsyncTrialSession, exc: errors.RungError) -> None:
    """What a session does when a report or heartbeat fails, sync and async alike: a
    conflict means the lease is lost (training should stop); other errors are kept."""
    log.warning("trial %s: %s", session.trial.id, exc)
    if isinstance(exc, errors.ConflictError):
        session.lost.set()
    else:
        session.errors.append(exc)


@dataclass
class TrialSession:
    """A background thread that sends a trial's epoch reports in order and heartbeats when
    there is nothing to report, so that training never waits on the network."""

    handle: StudyHandle
    trial: Trial
    lost: threading.Event = field(default_factory=threading.Event)
    _queue: queue.Queue[tuple[int, dict[str, float]] | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    errors: list[Exception] = field(default_factory=list)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"rung-trial-{self.trial.id}", daemon=True
        )
        self._thread.start()

    def report(self, epoch: int, metrics: dict[str, float]) -> None:
        self._queue.put((epoch, metrics))

    def close(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        interval = self.handle.heartbeat_interval()
        while True:
            try:
                item = self._queue.get(timeout=interval)
            except queue.Empty:
                item = (-1, {})  # nothing to report: heartbeat
            if item is None:
                return
            if self.lost.is_set():
                continue
            epoch, metrics = item
            try:
                if epoch >= 0:
                    self.handle.report(self.trial, epoch, metrics)
                else:
                    self.handle.heartbeat(self.trial)
            except errors.RungError as exc:
                _failed(self, exc)


@dataclass
class AsyncTrialSession:
    """The async twin of TrialSession: a background task sends the trial's epoch reports in
    order and heartbeats when there is nothing to report."""

    handle: AsyncStudyHandle
    trial: Trial
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    _queue: asyncio.Queue[tuple[int, dict[str, float]] | None] = field(
        default_factory=asyncio.Queue
    )
    _task: asyncio.Task[None] | None = None
    errors: list[Exception] = field(default_factory=list)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def report(self, epoch: int, metrics: dict[str, float]) -> None:
        self._queue.put_nowait((epoch, metrics))

    async def close(self) -> None:
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        interval = self.handle.heartbeat_interval()
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=interval)
            except TimeoutError:
                item = (-1, {})  # nothing to report: heartbeat
            if item is None:
                return
            if self.lost.is_set():
                continue
            epoch, metrics = item
            try:
                if epoch >= 0:
                    await self.handle.report(self.trial, epoch, metrics)
                else:
                    await self.handle.heartbeat(self.trial)
            except errors.RungError as exc:
                _failed(self, exc)
