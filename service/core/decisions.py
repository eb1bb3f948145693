"""What the scheduler decides for one ask. The caller stores it; the core never writes.

Every decision carries the sampler's bookkeeping (its seed state, whether the search
space ran out, brackets that shrank or closed), which the caller stores with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Decision:
    seed_state: int
    exhausted: bool = False
    resized: tuple[tuple[int, tuple[int, ...]], ...] = ()  # (bracket key, new sizes)
    closed: tuple[int, ...] = ()  # brackets that can make no more progress


@dataclass(frozen=True, kw_only=True)
class NewBracket:
    iteration: int
    bracket: int
    sizes: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class Retry(Decision):
    """Offer a trial again: same id, same values (newest first)."""

    trial: int


@dataclass(frozen=True, kw_only=True)
class StartTrial(Decision):
    """A new configuration in round 0 of `bracket` (an open bracket's key or a new one)."""

    bracket: int | NewBracket
    values: dict[str, Any] = field(default_factory=dict)
    values_hash: str
    epochs: int


@dataclass(frozen=True, kw_only=True)
class Promote(Decision):
    """Continue `parent`, the best unpromoted completed trial of `round - 1` (best score
    first, ties to the earliest created), as a new trial in `round`."""

    bracket: int
    parent: int
    round: int
    epochs: int
    initial_epoch: int


@dataclass(frozen=True, kw_only=True)
class Wait(Decision):
    """Nothing can start until a running trial ends."""


@dataclass(frozen=True, kw_only=True)
class Done(Decision):
    reason: str
    failed: bool = False
