"""Which checkpoints a study still needs. A trial's checkpoint is kept while:
- the trial still runs (or waits to run again) and may upload a newer one;
- it can still be promoted: completed, not promoted yet, in an open bracket, in a round
  before the last whose next round still has room;
- it was promoted and its child has not finished (a retried child starts from it again);
- it is among the study's best trials the user keeps (`keep_best_checkpoints`).
Everything else can go, so disk use stays bounded by the trials that are still promotable,
not by the number of trials run.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVE = ("running", "pending")


@dataclass(frozen=True)
class CheckpointOwner:
    status: str
    promoted: bool
    round: int
    bracket_open: bool
    sizes: tuple[int, ...]
    created: tuple[int, ...]
    child_status: str | None  # the promoted child's status, if any
    among_best: bool


def needed(owner: CheckpointOwner) -> bool:
    if owner.status in ACTIVE or owner.among_best:
        return True
    if owner.promoted:
        return owner.child_status in ACTIVE
    next_round = owner.round + 1
    return (
        owner.status == "completed"
        and owner.bracket_open
        and next_round < len(owner.sizes)
        and owner.created[next_round] < owner.sizes[next_round]
    )
