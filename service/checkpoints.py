"""Where checkpoint bytes live: a directory (default: beside the SQLite file) or any object
store fsspec reaches (`s3://bucket/prefix`, `gs://…`, with the user's s3fs/gcsfs installed).

An upload is streamed to `<name>.partial` and renamed when complete and verified; only then
does the database point to it, so a crash mid-upload never leaves a partial checkpoint
visible. What a crash leaves behind (a `.partial`, or a file renamed into place whose
recording never committed) is found by `old_files` and swept by the use case that knows
which files are referenced. A failing store raises `StoreUnavailable`."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from starlette.concurrency import run_in_threadpool

from service.errors import Invalid, StoreUnavailable, TooLarge

log = logging.getLogger("rung.checkpoints")
CHUNK = 1 << 20
PARTIAL = ".partial"


@dataclass(frozen=True)
class Stored:
    location: str
    size: int
    sha256: str


class CheckpointStore:
    def __init__(self, url: str):
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")
        self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, location: str) -> str:
        return f"{self.root}/{location}"

    async def save(
        self,
        study_id: int,
        number: int,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        sha256: str | None,
    ) -> Stored:
        """Stream `chunks` into a new object; 413 past `max_bytes`, 422 if the SHA-256 the
        client sent differs. Nothing is left behind when it fails."""
        location = f"study-{study_id}/trial-{number}-{uuid.uuid4().hex}.ckpt"
        partial = self._path(location) + PARTIAL
        digest, size = hashlib.sha256(), 0
        with _failing_store("write", location):
            self.fs.makedirs(self._path(f"study-{study_id}"), exist_ok=True)
            f = await run_in_threadpool(self.fs.open, partial, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(
                        f"checkpoint: larger than the limit of {max_bytes} bytes",
                        details={"max_bytes": max_bytes},
                    )
                digest.update(chunk)
                await run_in_threadpool(f.write, chunk)
            await run_in_threadpool(f.close)
            if sha256 is not None and sha256.lower() != digest.hexdigest():
                raise Invalid(
                    f"x-checkpoint-sha256: the upload's SHA-256 is "
                    f"{digest.hexdigest()}, not {sha256}"
                )
            await run_in_threadpool(self.fs.mv, partial, self._path(location))
        except BaseException as exc:
            f.close()
            with contextlib.suppress(StoreUnavailable):  # if it stays, the sweep takes it
                await run_in_threadpool(self.delete, location + PARTIAL)
            if isinstance(exc, OSError):
                raise _store_error("write", location, exc) from exc
            raise
        return Stored(location, size, digest.hexdigest())

    def read(self, location: str) -> Iterator[bytes]:
        """The file's bytes in chunks. It is opened now: a missing file raises
        FileNotFoundError before any byte (or header) is sent."""
        with _failing_store("read", location, missing_ok=False):
            f = self.fs.open(self._path(location), "rb")

        def chunks() -> Iterator[bytes]:
            with f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return chunks()

    def delete(self, location: str) -> None:
        """Delete a file; one already gone is not an error."""
        with _failing_store("delete", location):
            self.fs.rm(self._path(location))

    def count(self) -> int:
        """Complete checkpoints in the store (for tests and operators)."""
        return sum(1 for path in self.fs.find(self.root) if path.endswith(".ckpt"))

    def old_files(self, older_than_s: float) -> list[str]:
        """The locations of the files (`.partial`s included) last written more than
        `older_than_s` ago."""
        with _failing_store("list", self.root):
            return [
                path.removeprefix(self.root + "/")
                for path in self.fs.find(self.root)
                if self._age(path) > older_than_s
            ]

    def _age(self, path: str) -> float:
        info: dict[str, Any] = self.fs.info(path)
        modified = info.get("mtime") or info.get("LastModified") or time.time()
        return time.time() - (
            modified.timestamp() if hasattr(modified, "timestamp") else float(modified)
        )


def _store_error(action: str, location: str, exc: OSError) -> StoreUnavailable:
    return StoreUnavailable(f"the checkpoint store cannot {action} {location}: {exc}")


@contextlib.contextmanager
def _failing_store(action: str, location: str, *, missing_ok: bool = True) -> Iterator[None]:
    """Map the store's OSErrors to StoreUnavailable (a missing file is fine, or re-raised
    as FileNotFoundError when the caller must know)."""
    try:
        yield
    except FileNotFoundError:
        if not missing_ok:
            raise
    except OSError as exc:
        raise _store_error(action, location, exc) from exc
