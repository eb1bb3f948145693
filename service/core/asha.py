"""Asynchronous successive halving (ASHA; Li et al., MLSys 2020) over Keras Tuner's brackets.

With `"scheduler": "async"` a trial is promoted as soon as it ranks in the top
⌊n/factor⌋ of the n completed trials of its round, instead of once Keras Tuner's rule makes
the promotion safe (more completed than the next round will drop). The brackets, their
epoch ladders, warm starts, leases, retries and failure rules stay Keras Tuner's; a round
never gets more trials than its bracket plans, and Keras Tuner's rule still fills what the
top ⌊n/factor⌋ leaves (when n·size(r)/size(r-1) rounds up), so a finished bracket has the
same ladder under both schedulers. Promotions come before new configurations, from the
highest rung down (the most epochs first): the longest trials start first, so that the
last rounds of a finite study do not wait on a long trial started late.
"""

from __future__ import annotations

from .state import BracketState, StudyConfig, StudyState, StudyView, TrialRef


def async_promotion(
    config: StudyConfig, state: StudyState, view: StudyView
) -> tuple[BracketState, int, TrialRef] | None:
    """(bracket, round, parent) of the promotion to make now, if any."""
    rungs = sorted(
        ((b, r) for b in state.open_brackets for r in range(1, len(b.sizes))),
        key=lambda rung: (rung[0].bracket - rung[1], rung[0].key),
    )
    for bracket, round in rungs:
        if bracket.created[round] >= bracket.sizes[round] or bracket.promotable(round) <= 0:
            continue
        top = bracket.completed[round - 1] // config.schedule.factor
        if top == 0:
            continue
        if bracket.created[round] < top:  # fewer promoted than `top`: the best is in it
            parent = view.best_promotable(bracket.key, round - 1)
        else:
            parent = view.promotable_in_top(bracket.key, round - 1, top)
        if parent is not None:
            return bracket, round, parent
    return None
