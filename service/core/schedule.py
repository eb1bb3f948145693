"""Keras Tuner's Hyperband schedule: brackets, rounds, trial counts and epoch budgets.

Brackets are numbered `num_brackets - 1 … 0` and run in that order (most aggressive
first; the async scheduler under a finite budget opens them the other way round, longest
trials first); bracket `b` has `b + 1` rounds. The formulas are Keras Tuner 1.4.8's,
computed in the same floating-point order so that every size matches it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Schedule:
    max_epochs: int
    factor: int
    hyperband_iterations: int | None = 1  # None: unbounded

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ValueError("max_epochs must be at least 1")
        if self.factor < 2:
            raise ValueError("factor must be at least 2")
        if self.hyperband_iterations is not None and self.hyperband_iterations < 1:
            raise ValueError("hyperband_iterations must be at least 1, or None for unbounded")

    @cached_property
    def num_brackets(self) -> int:
        """How often max_epochs can be divided by factor while it stays >= 1.

        Divides a float like Keras Tuner; unlike `floor(log(R, factor)) + 1` this is not
        off by one for R=243, factor=3 (`math.log(243, 3)` is 4.999…).
        """
        epochs: float = self.max_epochs
        brackets = 0
        while epochs >= 1:
            epochs = epochs / self.factor
            brackets += 1
        return brackets

    def size(self, bracket: int, round: int) -> int:
        """Trials in `round` of `bracket` (Keras Tuner's `_get_size`)."""
        bracket0_end_size = math.ceil(1 + math.log(self.max_epochs, self.factor))
        bracket_end_size = bracket0_end_size / (bracket + 1)
        return math.ceil(bracket_end_size * self.factor ** (bracket - round))

    def epochs(self, bracket: int, round: int) -> int:
        """The cumulative epoch a trial of `round` trains up to (`tuner/epochs`)."""
        return math.ceil(self.max_epochs / self.factor ** (bracket - round))

    def initial_epoch(self, bracket: int, round: int) -> int:
        """Where a trial of `round` starts: 0 in round 0, else the previous round's epochs."""
        return 0 if round == 0 else self.epochs(bracket, round - 1)

    def sizes(self, bracket: int) -> tuple[int, ...]:
        return tuple(self.size(bracket, r) for r in range(bracket + 1))

    def first_bracket(self, *, longest_first: bool = False) -> int:
        return 0 if longest_first else self.num_brackets - 1

    def next_bracket(
        self, iteration: int, bracket: int, *, longest_first: bool = False
    ) -> tuple[int, int] | None:
        """The bracket opened after (iteration, bracket), or None after the last one.
        `longest_first`: each iteration opens its brackets from bracket 0 (every trial
        trains max_epochs) to the most aggressive, instead of Keras Tuner's order."""
        step = 1 if longest_first else -1
        if 0 <= bracket + step < self.num_brackets:
            return iteration, bracket + step
        if self.hyperband_iterations is not None and iteration + 1 >= self.hyperband_iterations:
            return None
        return iteration + 1, self.first_bracket(longest_first=longest_first)

    def trials_per_iteration(self) -> int:
        return sum(sum(self.sizes(b)) for b in range(self.num_brackets))

    def epochs_per_iteration(self, *, warm_start: bool = True) -> int:
        """Epochs trained by one full iteration, with or without resuming promoted trials."""
        total = 0
        for b in range(self.num_brackets):
            for r in range(b + 1):
                start = self.initial_epoch(b, r) if warm_start else 0
                total += self.size(b, r) * (self.epochs(b, r) - start)
        return total


def shrink_sizes(sizes: tuple[int, ...], created: int) -> tuple[int, ...]:
    """Round sizes for a bracket whose round 0 could only get `created` configurations.

    Rung's answer to a search space too small for a bracket (Keras Tuner #676): keep
    successive halving on what exists, each round keeping the same share as planned.
    """
    if created >= sizes[0]:
        return sizes
    if created == 0:
        return tuple(0 for _ in sizes)
    return tuple(min(size, -(-created * size // sizes[0])) for size in sizes)
