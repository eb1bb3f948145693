"""Writing the core's trial transitions (`service.core.transitions`) to the rows, as they
are, through `change`; no rule of a transition is decided here."""

from __future__ import annotations

from service.core.transitions import Changes
from service.db.changes import change
from service.db.models import BracketRow, StudyRow, TrialRow


def write(
    changes: Changes,
    *,
    study: StudyRow,
    trial: TrialRow,
    bracket: BracketRow | None = None,
) -> None:
    """Queue a transition's changes to the trial, its study and its bracket."""
    assert bracket is not None or not changes.bracket
    assert not changes.parent, "a promotion's changes are written with its insert"
    for row, values in ((study, changes.study), (trial, changes.trial), (bracket, changes.bracket)):
        if values:
            change(row, **values)
