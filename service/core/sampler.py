"""Seeded random sampling of configurations, as Keras Tuner's `Oracle._random_values`.

For each hyperparameter active given the values drawn so far, the probability is
`random.Random(seed_state).random()` and `seed_state` then grows by one (also for draws
that end as duplicates), so the same seed and space give Keras Tuner's sequence.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rung.space import SearchSpace


def values_hash(values: Mapping[str, Any]) -> str:
    """Keras Tuner's configuration hash: sha256 of the sorted `name=value` pairs."""
    text = "".join(f"{key}={values[key]}" for key in sorted(values))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def sample_values(space: SearchSpace, seed_state: int) -> tuple[dict[str, Any], int]:
    """One draw: the active values and the seed state after it."""
    values: dict[str, Any] = {}
    for hp in space:
        if hp.is_active(values):
            values[hp.name] = hp.prob_to_value(random.Random(seed_state).random())
            seed_state += 1
    return values, seed_state


@dataclass(frozen=True)
class Sampled:
    values: dict[str, Any]
    values_hash: str
    seed_state: int


# Values drawn in one call at most: Keras Tuner's bound is a count of collisions only, so a
# large `max_collisions` over a large space could keep an ask drawing for minutes. The
# default (20 collisions) reaches this only with more than 4,700 hyperparameters.
MAX_DRAWN_VALUES = 100_000


@dataclass(frozen=True)
class Exhausted:
    """More than `max_collisions` draws in a row, or draws of more than MAX_DRAWN_VALUES
    values in all, were configurations tried before."""

    seed_state: int


def sample_new(
    space: SearchSpace,
    seed_state: int,
    *,
    is_tried: Callable[[str], bool],
    max_collisions: int,
    draw: Callable[[int], tuple[dict[str, Any], int]] | None = None,
) -> Sampled | Exhausted:
    """Draw until a configuration not tried before in the study comes up. `draw` (seed
    state -> values, seed state after) is Keras Tuner's random draw unless given."""
    collisions = drawn = 0
    while True:
        if draw is None:
            values, seed_state = sample_values(space, seed_state)
        else:
            values, seed_state = draw(seed_state)
        digest = values_hash(values)
        if not is_tried(digest):
            return Sampled(values, digest, seed_state)
        collisions += 1
        drawn += len(values) or 1
        if collisions > max_collisions or drawn > MAX_DRAWN_VALUES:
            return Exhausted(seed_state)
