"""API calls without I/O: each call described as a `Call` (what to send, the type its answer
is read as), the retry policy (connection errors, 5xx and 429 are retried with exponential
backoff and full jitter, honouring Retry-After), and the mapping of answers to typed
results or to the errors of rung.errors. `BaseClient` builds the calls; `rung.client`'s
two clients only send them."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import os
import random
import time
from collections.abc import (
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

import httpx
from pydantic import TypeAdapter, ValidationError

from . import errors
from .schemas import AskResponse, CheckpointInfo, Page, Study, Trial
from .space import HyperParameter

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
    def _downloaded(response: httpx.Response, digest: str, size: int) -> CheckpointInfo:
        """What was downloaded; ChecksumError if it is not what the server announced."""
        expected = response.headers.get(CHECKSUM_HEADER)
        if expected is not None and expected != digest:
            raise errors.ChecksumError(f"got SHA-256 {digest}, the server announced {expected}")
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
