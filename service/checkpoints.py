"""Where checkpoint bytes live: a directory (default: beside the SQLite file) or any object
store fsspec reaches (`s3://bucket/prefix`, `gs://…`, with the user's s3fs/gcsfs installed).

An upload is streamed to `<name>.partial` and renamed when complete and verified; only then
does the database point to it, so a crash mid-upload never leaves a partial checkpoint
visible (the `.partial` debris is swept at start)."""

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

from service.errors import Invalid, TooLarge

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
        self.fs.makedirs(self._path(f"study-{study_id}"), exist_ok=True)
        digest, size = hashlib.sha256(), 0
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
        except BaseException:
            f.close()
            await run_in_threadpool(self._remove, partial)
            raise
        return Stored(location, size, digest.hexdigest())

    def read(self, location: str) -> Iterator[bytes]:
        with self.fs.open(self._path(location), "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def delete(self, location: str) -> None:
        self._remove(self._path(location))

    def _remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path)

    def count(self) -> int:
        """Complete checkpoints in the store (for tests and operators)."""
        return sum(1 for path in self.fs.find(self.root) if path.endswith(".ckpt"))

    def sweep_partials(self, older_than_s: float = 3600.0) -> int:
        """Remove the debris of uploads cut short by a crash."""
        removed = 0
        for path in self.fs.find(self.root):
            if path.endswith(PARTIAL) and self._age(path) > older_than_s:
                self._remove(path)
                removed += 1
        return removed

    def _age(self, path: str) -> float:
        info: dict[str, Any] = self.fs.info(path)
        modified = info.get("mtime") or info.get("LastModified") or time.time()
        return time.time() - (
            modified.timestamp() if hasattr(modified, "timestamp") else float(modified)
        )
