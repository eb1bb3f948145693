"""Keras Tuner's Hyperband `populate_space` as a pure decision over a study view.

Order, as in Keras Tuner: a trial waiting to be offered again (newest first); then, in
each open bracket from the oldest, fill round 0 with new configurations, or promote the
best completed trial of round r-1 once more of them are completed than round r will
drop (`promotable > size(r-1) - size(r)`); then open the next bracket, so that many
workers run several brackets at once. "wait" only when no bracket is left to open and
trials are still running; "done" when nothing is running either.

Where Rung differs on purpose: when the search space runs out of new configurations, the
bracket keeps successive halving on the configurations it has (Keras Tuner #676).

Two study settings change it, each off by default: `"scheduler": "async"` promotes, in
each bracket after its new configurations, by ASHA's rule (`asha.py`); `"sampler": "bohb"`
draws new configurations from BOHB's model (`bohb.py`) instead of at random.
"""

from __future__ import annotations

from dataclasses import replace

from . import bohb
from .asha import async_promotion
from .decisions import Decision, Done, NewBracket, Promote, Retry, StartTrial, Wait
from .sampler import Exhausted, sample_new
from .schedule import shrink_sizes
from .state import BracketState, StudyConfig, StudyView, TrialRef

REASON_COMPLETED = "completed: every bracket of every Hyperband iteration has finished"
REASON_EXHAUSTED = "completed: the search space has no new configuration left to try"


def decide(config: StudyConfig, view: StudyView) -> Decision:
    state = view.state
    if state.failed_reason is not None:
        return Done(seed_state=state.seed_state, reason=state.failed_reason, failed=True)

    pending = view.newest_pending()
    if pending is not None:
        return Retry(trial=pending.key, seed_state=state.seed_state)

    schedule = config.schedule
    seed_state, exhausted = state.seed_state, state.exhausted
    resized: list[tuple[int, tuple[int, ...]]] = []
    closed: list[int] = []
    draw = bohb.Generator(config.space, view.history).draw if config.sampler == "bohb" else None

    def sample() -> tuple[dict, str] | None:
        nonlocal seed_state, exhausted
        if exhausted:
            return None
        result = sample_new(
            config.space,
            seed_state,
            is_tried=view.is_tried,
            max_collisions=config.max_collisions,
            draw=draw,
        )
        seed_state = result.seed_state
        if isinstance(result, Exhausted):
            exhausted = True
            return None
        return result.values, result.values_hash

    def book() -> dict:
        return {
            "seed_state": seed_state,
            "exhausted": exhausted,
            "resized": tuple(resized),
            "closed": tuple(closed),
        }

    def promote(bracket: BracketState, round: int, parent: TrialRef) -> Promote:
        return Promote(
            bracket=bracket.key,
            parent=parent.key,
            round=round,
            epochs=schedule.epochs(bracket.bracket, round),
            initial_epoch=schedule.initial_epoch(bracket.bracket, round),
            **book(),
        )

    for bracket in state.open_brackets:
        if bracket.created[0] < bracket.sizes[0]:
            drawn = sample()
            if drawn is not None:
                return StartTrial(
                    bracket=bracket.key,
                    values=drawn[0],
                    values_hash=drawn[1],
                    epochs=schedule.epochs(bracket.bracket, 0),
                    **book(),
                )
            bracket = replace(bracket, sizes=shrink_sizes(bracket.sizes, bracket.created[0]))
            resized.append((bracket.key, bracket.sizes))
        if config.scheduler == "async":
            found = async_promotion(config, bracket, view)
            if found is not None:
                return promote(bracket, *found)
        round = _promotable_round(bracket)
        if round is not None:
            parent = view.best_promotable(bracket.key, round - 1)
            assert parent is not None, f"bracket {bracket.key}'s counters promise a trial"
            return promote(bracket, round, parent)
        if bracket.active == 0 or (config.scheduler == "hyperband" and bracket.is_complete()):
            closed.append(bracket.key)

    longest_first = config.longest_first
    following = (
        (0, schedule.first_bracket(longest_first=longest_first))
        if state.last_opened is None
        else schedule.next_bracket(*state.last_opened, longest_first=longest_first)
    )
    if following is not None:
        drawn = sample()
        if drawn is not None:
            iteration, number = following
            return StartTrial(
                bracket=NewBracket(
                    iteration=iteration, bracket=number, sizes=schedule.sizes(number)
                ),
                values=drawn[0],
                values_hash=drawn[1],
                epochs=schedule.epochs(number, 0),
                **book(),
            )
    if view.has_running():
        return Wait(**book())
    return Done(reason=REASON_EXHAUSTED if following is not None else REASON_COMPLETED, **book())


def _promotable_round(bracket: BracketState) -> int | None:
    sizes = bracket.sizes
    for round in range(1, len(sizes)):
        if bracket.promotable(round) > sizes[round - 1] - sizes[round]:
            return round
    return None
