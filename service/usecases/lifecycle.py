"""Writing the core's trial transitions (`service.core.transitions`) to the rows, as they
are, through `repo.change`; no rule of a transition is decided here."""

from __future__ import annotations

from datetime import datetime, timedelta

from service.core.state import StudyConfig
from service.core.transitions import Changes
from service.db import repository as repo
from service.db.models import BracketRow, StudyRow, TrialRow


def lease_until(config: StudyConfig, now: datetime) -> datetime:
    return now + timedelta(seconds=config.lease_seconds)


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
            repo.change(row, **values)
