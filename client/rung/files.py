"""Files written whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def partial_path(path: Path) -> Path:
    """Where `path` is written before it is complete (hidden, one per process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path`'s bytes to: renamed to `path` when the block ends, deleted if
    it raises, so `path` is either its old self or the whole new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        with open(partial, "wb") as f:
            yield f
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
