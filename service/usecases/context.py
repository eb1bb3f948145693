"""What every use case gets: the database, server settings and parsed study configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rung.schemas import current_settings
from rung.space import SearchSpace
from service.checkpoints import CheckpointStore
from service.core.objective import parse_objective
from service.core.schedule import Schedule
from service.core.state import StudyConfig
from service.db.models import StudyRow
from service.db.transactions import Database

from .histories import Histories

MAX_CACHED_CONFIGS = 10_000


def build_config(settings: dict[str, Any], space: list[dict[str, Any]]) -> StudyConfig:
    """The scheduler's view of a study's stored settings."""
    settings = current_settings(settings)
    return StudyConfig(
        schedule=Schedule(
            settings["max_epochs"], settings["factor"], settings["hyperband_iterations"]
        ),
        objective=parse_objective(settings["objective"]),
        space=SearchSpace.from_dicts(space),
        max_retries_per_trial=settings["max_retries_per_trial"],
        max_consecutive_failed_trials=settings["max_consecutive_failed_trials"],
        max_lost_leases_per_trial=settings["max_lost_leases_per_trial"],
        max_collisions=settings["max_collisions"],
        tune_new_entries=settings["tune_new_entries"],
        allow_new_entries=settings["allow_new_entries"],
        scheduler=settings["scheduler"],
        sampler=settings["sampler"],
    )


@dataclass
class Context:
    db: Database
    store: CheckpointStore | None = None
    wait_seconds: float = 1.0
    _parsed: dict[tuple[int, int], tuple[StudyConfig, timedelta]] = field(default_factory=dict)
    histories: Histories = field(init=False)

    def __post_init__(self) -> None:
        self.histories = Histories(self.db)

    def config(self, study: StudyRow) -> StudyConfig:
        """The scheduler's config of the study."""
        return self._parse(study)[0]

    def lease(self, study: StudyRow) -> timedelta:
        """How long a trial of the study stays held without a heartbeat."""
        return self._parse(study)[1]

    def _parse(self, study: StudyRow) -> tuple[StudyConfig, timedelta]:
        """Built once per (study, version of its space)."""
        key = (study.id, study.space_version)
        parsed = self._parsed.get(key)
        if parsed is None:
            if len(self._parsed) >= MAX_CACHED_CONFIGS:
                self._parsed.clear()
            lease = timedelta(seconds=current_settings(study.settings)["lease_seconds"])
            parsed = self._parsed[key] = (build_config(study.settings, study.space), lease)
        return parsed
