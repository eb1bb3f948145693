"""Asynchronous successive halving (ASHA; Li et al., MLSys 2020) over Keras Tuner's brackets.

With `"scheduler": "async"` a trial is promoted as soon as it ranks in the top
⌊n/factor⌋ of the n completed trials of its round, instead of once Keras Tuner's rule makes
the promotion safe (more completed than the next round will drop). The brackets, their
epoch ladders, warm starts, leases, retries and failure rules stay Keras Tuner's, and so
does the order of the work: the oldest open bracket first, its new configurations before
its promotions. The longest trials start first, so that the last rounds of a finite study
do not wait on a long trial started late: within a bracket the highest rung comes first
(the most epochs), and with a finite `hyperband_iterations` each iteration opens its
brackets from bracket 0 (every trial trains max_epochs) to the most aggressive
(`StudyConfig.longest_first`). Without end there is no last round to wait for, and Keras
Tuner's order, whose first bracket gives results soonest, is kept.

As in ASHA, a round is not capped at its planned size: a trial that ranks in the top
⌊n/factor⌋ once more results are in is promoted even if earlier, luckier trials filled the
round's plan (a cap would leave the round to whichever trials finished first). So a
bracket closes when none of its trials runs and nothing in it can be promoted, not when
its rounds are full; Keras Tuner's own rule still promotes where ⌊n/factor⌋ falls short of
its plan.
"""

from __future__ import annotations

from .state import BracketState, StudyConfig, StudyView, TrialRef


def async_promotion(
    config: StudyConfig, bracket: BracketState, view: StudyView
) -> tuple[int, TrialRef] | None:
    """(round, parent) of the promotion to make now in `bracket`, if any."""
    for round in range(len(bracket.sizes) - 1, 0, -1):
        if bracket.promotable(round) <= 0:
            continue
        top = bracket.completed[round - 1] // config.schedule.factor
        if top == 0:
            continue
        if bracket.created[round] < top:  # fewer promoted than `top`: the best is in it
            parent = view.best_promotable(bracket.key, round - 1)
        else:
            parent = view.promotable_in_top(bracket.key, round - 1, top)
        if parent is not None:
            return round, parent
    return None
