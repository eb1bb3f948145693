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
import email.utils
import hashlib
import logging
import os
import queue
import random
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

import httpx
from pydantic import TypeAdapter, ValidationError

from . import errors
from .schemas import AskResponse, CheckpointInfo, Page, Study, Trial
from .space import HyperParameter, SearchSpace

log = logging.getLogger("rung.client")
T = TypeVar("T")
DEFAULT_SERVER = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits up to min(cap, base * 2**n), at
    least the server's Retry-After. A call gives up once it has waited `max_wait_s` in all
    (default: two minutes, so a worker rides out a database or server restart), or after
    `max_attempts` sends if that is set."""

    max_attempts: int | None = None
    max_wait_s: float = 120.0
    base: float = 0.2
    cap: float = 10.0

    def delay(
        self, attempt: int, retry_after: float | None, rng: random.Random, *, waited: float = 0.0
    ) -> float | None:
        """How long to wait before send number `attempt + 1`; None: give up."""
        if self.max_attempts is not None and attempt + 1 >= self.max_attempts:
            return None
        if waited >= self.max_wait_s:
            return None
        jittered = rng.uniform(0, min(self.cap, self.base * 2 ** min(attempt, 60)))
        delay = max(jittered, min(retry_after, 300.0)) if retry_after is not None else jittered
        return min(delay, max(0.0, self.max_wait_s - waited) + 0.001)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: what to send and the type its answer is read as (None: no body).
    `upload` is a file sent as the body; `download` a file the body is written to
    (checkpoints; the answer is then the file's CheckpointInfo)."""

    method: str
    path: str
    result: type[T] | None = None
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    upload: Path | None = None
    download: Path | None = None


CHUNK = 1 << 20
CHECKSUM_HEADER = "x-checkpoint-sha256"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


async def _afile_chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


@runtime_checkable
class _HasDicts(Protocol):
    """A rung HyperParameters object or SearchSpace."""

    def to_dicts(self) -> list[dict[str, Any]]: ...


@runtime_checkable
class _HasConfig(Protocol):
    """A keras_tuner.HyperParameters object."""

    space: Any

    def get_config(self) -> dict[str, Any]: ...


# What a call accepts as a search space.
SpaceInput = _HasDicts | _HasConfig | Iterable[HyperParameter | Mapping[str, Any]] | None
# An objective: a metric name, {"name", "direction"}, or a list of these.
ObjectiveInput = str | dict[str, str] | Sequence[str | dict[str, str]]
# Other study settings (max_epochs, factor, …): JSON values, checked by the server.
Setting = object


def _space_dicts(hyperparameters: SpaceInput) -> list[dict[str, Any]]:
    """Accept a rung or keras_tuner HyperParameters object, a SearchSpace, or dicts."""
    if hyperparameters is None:
        return []
    if isinstance(hyperparameters, _HasDicts):
        return list(hyperparameters.to_dicts())
    if isinstance(hyperparameters, _HasConfig):
        from .hyperparameters import HyperParameters  # a keras_tuner.HyperParameters

        return HyperParameters.from_keras_tuner(hyperparameters).to_dicts()
    return [hp.to_dict() if isinstance(hp, HyperParameter) else dict(hp) for hp in hyperparameters]


class BaseClient:
    """All of the SDK that does no I/O."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        seed: int | None = None,
    ):
        self.base_url = (base_url or os.environ.get("RUNG_SERVER") or DEFAULT_SERVER).rstrip("/")
        self.token = token if token is not None else os.environ.get("RUNG_TOKEN")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.rng = random.Random(seed)

    @property
    def headers(self) -> dict[str, str]:
        headers = {"user-agent": "rung-client/0.1"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    # -- the calls ------------------------------------------------------------------------
    def _create_study(
        self, name: str, hyperparameters: SpaceInput, objective: ObjectiveInput, **settings: Setting
    ) -> Call[Study]:
        body = {
            "name": name,
            "hyperparameters": _space_dicts(hyperparameters),
            "objective": objective,
            **settings,
        }
        return Call("POST", "/v1/studies", Study, json=body)

    def _get_study(self, study_id: str) -> Call[Study]:
        return Call("GET", f"/v1/studies/{study_id}", Study)

    def _stop_study(self, study_id: str) -> Call[Study]:
        return Call("POST", f"/v1/studies/{study_id}/stop", Study)

    def _resume_study(self, study_id: str) -> Call[Study]:
        return Call("POST", f"/v1/studies/{study_id}/resume", Study)

    def _list_studies(
        self, limit: int, cursor: str | None, *, name: str | None = None
    ) -> Call[Page[Study]]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if name is not None:
            params["name"] = name
        return Call("GET", "/v1/studies", Page[Study], params=params)

    @staticmethod
    def _existing(name: str, page: Page[Study]) -> Study:
        if not page.items:
            raise errors.ForbiddenError(
                f"study {name!r} does not exist and this token may not create studies: "
                "create it with an admin token first (e.g. `rung worker SPEC --create-only`)",
                status=403,
                code="forbidden",
            )
        return page.items[0]

    def _delete_study(self, study_id: str) -> Call[None]:
        return Call("DELETE", f"/v1/studies/{study_id}")

    def _ask(self, study_id: str, worker_id: str) -> Call[AskResponse]:
        return Call(
            "POST", f"/v1/studies/{study_id}/ask", AskResponse, json={"worker_id": worker_id}
        )

    def _report(
        self,
        study_id: str,
        trial_id: str,
        epoch: int,
        metrics: dict[str, float],
        worker_id: str | None,
    ) -> Call[Trial]:
        body = {"epoch": epoch, "metrics": metrics, "worker_id": worker_id}
        return Call("POST", f"/v1/studies/{study_id}/trials/{trial_id}/report", Trial, json=body)

    def _heartbeat(self, study_id: str, trial_id: str, worker_id: str) -> Call[Trial]:
        return Call(
            "POST",
            f"/v1/studies/{study_id}/trials/{trial_id}/heartbeat",
            Trial,
            json={"worker_id": worker_id},
        )

    def _tell(
        self,
        study_id: str,
        trial_id: str,
        *,
        metrics: dict[str, float] | None = None,
        error: str | None = None,
        worker_id: str | None = None,
        new_hyperparameters: SpaceInput = None,
    ) -> Call[Trial]:
        body: dict[str, Any] = {"status": "failed" if error is not None else "completed"}
        if error is not None:
            body["error"] = error
        if metrics is not None:
            body["metrics"] = metrics
        if worker_id is not None:
            body["worker_id"] = worker_id
        if new_hyperparameters:
            body["hyperparameters"] = _space_dicts(new_hyperparameters)
        return Call("POST", f"/v1/studies/{study_id}/trials/{trial_id}/tell", Trial, json=body)

    def _trial(self, study_id: str, trial_id: str) -> Call[Trial]:
        return Call("GET", f"/v1/studies/{study_id}/trials/{trial_id}", Trial)

    def _trials(
        self, study_id: str, status: str | None, limit: int, cursor: str | None
    ) -> Call[Page[Trial]]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return Call("GET", f"/v1/studies/{study_id}/trials", Page[Trial], params=params)

    def _upload_checkpoint(
        self, study_id: str, trial_id: str, path: Path, worker_id: str
    ) -> Call[CheckpointInfo]:
        headers = {
            "x-rung-worker": worker_id,
            CHECKSUM_HEADER: file_sha256(path),
            "content-type": "application/octet-stream",
        }
        return Call(
            "PUT",
            f"/v1/studies/{study_id}/trials/{trial_id}/checkpoint",
            CheckpointInfo,
            headers=headers,
            upload=Path(path),
        )

    def _download_checkpoint(
        self, study_id: str, trial_id: str, path: Path
    ) -> Call[CheckpointInfo]:
        return Call(
            "GET",
            f"/v1/studies/{study_id}/trials/{trial_id}/checkpoint",
            CheckpointInfo,
            download=Path(path),
        )

    @staticmethod
    def _partial(path: Path) -> Path:
        return path.with_name(f".{path.name}.{os.getpid()}.partial")

    @staticmethod
    def _finish_download(
        response: httpx.Response, partial: Path, digest: str, size: int, path: Path
    ) -> CheckpointInfo:
        expected = response.headers.get(CHECKSUM_HEADER)
        if expected is not None and expected != digest:
            partial.unlink(missing_ok=True)
            raise errors.ChecksumError(f"got SHA-256 {digest}, the server announced {expected}")
        os.replace(partial, path)
        return CheckpointInfo(trial_id=response.url.path.split("/")[-2], size=size, sha256=digest)

    def _best(self, study_id: str, k: int) -> Call[Page[Trial]]:
        return Call("GET", f"/v1/studies/{study_id}/best", Page[Trial], params={"k": k})

    # -- answers and retries ------------------------------------------------------------------
    def _delay_after_error(self, attempt: int, waited: float, exc: Exception) -> float:
        """How long to wait after a failure to reach the server (or a corrupted download);
        TransportError once the retry budget is spent."""
        delay = self.retry.delay(attempt, None, self.rng, waited=waited)
        if delay is None and isinstance(exc, errors.ChecksumError):
            raise exc
        if delay is None:
            raise errors.TransportError(
                f"cannot reach {self.base_url} (gave up after {waited:.0f}s): {exc}"
            ) from exc
        self._log_wait(f"cannot reach {self.base_url} ({exc})", delay, waited)
        return delay

    def _delay_after(self, attempt: int, waited: float, response: httpx.Response) -> float | None:
        """None: the answer is final. Else how long to wait before sending again."""
        if response.status_code != 429 and response.status_code < 500:
            return None
        delay = self.retry.delay(attempt, _retry_after(response), self.rng, waited=waited)
        if delay is None:
            raise errors.ServerError(
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code} {response.text[:200]} (gave up after {waited:.0f}s)",
                status=response.status_code,
            )
        self._log_wait(f"the server answered {response.status_code}", delay, waited)
        return delay

    def _log_wait(self, what: str, delay: float, waited: float) -> None:
        """Brief trouble is logged at INFO; once it has lasted 5 s, each wait at WARNING."""
        level = logging.WARNING if waited >= 5 else logging.INFO
        log.log(
            level,
            "%s; retrying in %.1fs (waited %.0fs of %.0fs)",
            what,
            delay,
            waited,
            self.retry.max_wait_s,
        )

    @staticmethod
    def _result(call: Call[T], response: httpx.Response) -> T:
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise errors.from_response(response.status_code, body)
        if call.result is None:
            return cast(T, None)  # Call[None]: no body to read
        try:
            return TypeAdapter(call.result).validate_json(response.content)
        except ValidationError as exc:
            raise errors.ProtocolError(
                f"{call.method} {call.path} answered {response.status_code} with a body that is "
                f"not a {getattr(call.result, '__name__', call.result)}: "
                f"{response.content[:200]!r}",
                status=response.status_code,
            ) from exc


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
        partial, digest, size = self._partial(path), hashlib.sha256(), 0
        with open(partial, "wb") as f:
            for chunk in response.iter_bytes(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
        return self._finish_download(response, partial, digest.hexdigest(), size, path)

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
        partial, digest, size = self._partial(path), hashlib.sha256(), 0
        with open(partial, "wb") as f:
            async for chunk in response.aiter_bytes(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                await asyncio.to_thread(f.write, chunk)
        return self._finish_download(response, partial, digest.hexdigest(), size, path)

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
            except errors.ConflictError as exc:
                log.warning("trial %s: %s", self.trial.id, exc)
                self.lost.set()
            except errors.RungError as exc:
                log.warning("trial %s: %s", self.trial.id, exc)
                self.errors.append(exc)


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
            except errors.ConflictError as exc:
                log.warning("trial %s: %s", self.trial.id, exc)
                self.lost.set()
            except errors.RungError as exc:
                log.warning("trial %s: %s", self.trial.id, exc)
                self.errors.append(exc)
