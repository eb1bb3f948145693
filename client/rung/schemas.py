"""The wire schemas of Rung's HTTP API (v1): defined once, here; the server imports them.

Field names follow Keras Tuner's vocabulary (`max_epochs`, `factor`, `bracket`, `round`,
`epochs`, `initial_epoch`); docs/http-api.md is their reference.

A search space is judged by `rung.space` alone: the specs here describe its shape (for
the OpenAPI document and early type errors) and hand each definition to `rung.space`,
whose result the validated model keeps (`StudySettings.space`, `TellRequest.new_entries`),
so that nothing parses a space twice.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from .space import HyperParameter, SearchSpace, SpaceError, from_dict

MAX_NAME = 200
# A study's seed at most; a study created without one draws it from 1 … MAX_SEED. (Keras
# Tuner draws from 1 … 10,000, where two unseeded studies can sample the same
# configurations, about one pair in ten for a few hundred trials of five hyperparameters:
# draw k of seed s uses the states s + k·(its hyperparameters) on.)
MAX_SEED = 2**31 - 1
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
Number = StrictInt | StrictFloat


def _printable(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_printable)]
WorkerId = Annotated[str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_printable)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Metrics = Annotated[dict[Name, FiniteFloat], Field(max_length=1000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- search space -------------------------------------------------------------------------
class ConditionSpec(_Model):
    parent_name: Name
    parent_values: Annotated[list[Scalar], Field(min_length=1, max_length=1000)]


class _HyperParameterSpec(_Model):
    name: Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_printable)]
    conditions: Annotated[list[ConditionSpec], Field(max_length=32)] = []


class _NumericalSpec(_HyperParameterSpec):
    min_value: Number
    max_value: Number
    step: Number | None = None
    sampling: Literal["linear", "log", "reverse_log"] = "linear"
    default: Number | None = None


class IntSpec(_NumericalSpec):
    type: Literal["int"]


class FloatSpec(_NumericalSpec):
    type: Literal["float"]


class ChoiceSpec(_HyperParameterSpec):
    type: Literal["choice"]
    values: Annotated[list[Scalar], Field(min_length=1, max_length=10_000)]
    ordered: bool | None = None
    default: Scalar | None = None


class BooleanSpec(_HyperParameterSpec):
    type: Literal["boolean"]
    default: StrictBool = False


class FixedSpec(_HyperParameterSpec):
    type: Literal["fixed"]
    value: Scalar


HyperParameterSpec = Annotated[
    IntSpec | FloatSpec | ChoiceSpec | BooleanSpec | FixedSpec, Field(discriminator="type")
]
MAX_HYPERPARAMETERS = 1000  # in a study's space, new entries included
HyperParameterList = Annotated[list[HyperParameterSpec], Field(max_length=MAX_HYPERPARAMETERS)]


def _wire(spec: BaseModel) -> dict[str, Any]:
    return spec.model_dump(exclude_none=True)


# -- studies ----------------------------------------------------------------------------
class ObjectiveSpec(_Model):
    name: Name
    direction: Literal["min", "max"] | None = None


ObjectiveInput = Name | ObjectiveSpec | Annotated[list[Name | ObjectiveSpec], Field(max_length=32)]


class StudyOptions(_Model):
    """A study's settings but its search space."""

    objective: ObjectiveInput
    max_epochs: Annotated[int, Field(ge=1, le=100_000)] = 100
    factor: Annotated[int, Field(ge=2, le=1000)] = 3
    hyperband_iterations: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        1, description="how many times to run all brackets; null runs them without end"
    )
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = Field(
        None, description="sampler seed; null draws one from 1 … 2³¹ − 1 (it is then reported)"
    )
    max_retries_per_trial: Annotated[int, Field(ge=0, le=100)] = 0
    max_consecutive_failed_trials: Annotated[int, Field(ge=1, le=1_000_000)] = 3
    lease_seconds: Annotated[float, Field(ge=0.1, le=7 * 86400, allow_inf_nan=False)] = Field(
        120.0, description="how long a trial stays held without a heartbeat (0.1 s to 7 days)"
    )
    max_lost_leases_per_trial: Annotated[int, Field(ge=0, le=1000)] = Field(
        3, description="how often a trial may lose its lease (a vanished worker) before it fails"
    )
    max_collisions: Annotated[int, Field(ge=0, le=100_000)] = Field(
        20, description="duplicate samples in a row before the sampler gives up"
    )
    tune_new_entries: bool = True
    allow_new_entries: bool = True
    scheduler: Literal["hyperband", "async"] = Field(
        "hyperband",
        description='"hyperband": Keras Tuner\'s (promote once it is safe); "async": '
        "asynchronous successive halving (promote a trial as soon as it is in the top "
        "1/factor of its round; with a finite hyperband_iterations, each iteration opens "
        "its brackets longest trials first)",
    )
    sampler: Literal["random", "bohb"] = Field(
        "random",
        description='"random": Keras Tuner\'s sampling; "bohb": BOHB\'s model-based '
        "sampling (kernel densities of good and bad results)",
    )
    keep_best_checkpoints: Annotated[int, Field(ge=0, le=1000)] = Field(
        1, description="checkpoints of the best trials kept after they can no longer be promoted"
    )


class StudySettings(StudyOptions):
    """Everything that defines a study; creating it twice with equal settings is a no-op."""

    hyperparameters: HyperParameterList = []
    _space: SearchSpace = PrivateAttr(default_factory=SearchSpace)

    @model_validator(mode="after")
    def _valid_space(self) -> StudySettings:
        try:
            self._space = SearchSpace.from_dicts(_wire(spec) for spec in self.hyperparameters)
        except SpaceError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def space(self) -> SearchSpace:
        """The search space, as `rung.space` made it when this model was validated."""
        return self._space


class StudyOptionsShown(StudyOptions):
    """The settings a study was created with, as an answer shows them (its search space is
    the study's `hyperparameters`). Settings this client does not know are ignored."""

    model_config = ConfigDict(extra="ignore")


class StudyCreate(StudySettings):
    name: Name


def current_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """Stored settings as the current schema reads them: a setting that did not exist when
    the study was created gets its default, so a study stays comparable and readable across
    upgrades. Stored values are kept as they are (they were valid when stored). A version
    that adds a field to the hyperparameter specs must fill it in here too."""
    missing = {
        name: field.get_default(call_default_factory=True)
        for name, field in StudySettings.model_fields.items()
        if name not in stored and not field.is_required()
    }
    return {**stored, **missing} if missing else stored


def differing_settings(stored: dict[str, Any], requested: dict[str, Any]) -> dict[str, Any]:
    """{setting: {"stored": …, "requested": …}} for each setting that differs; a search
    space that differs is named by its first differing hyperparameter."""
    differences: dict[str, Any] = {}
    for key in sorted(stored.keys() | requested.keys()):
        old, new = stored.get(key), requested.get(key)
        if old == new:
            continue
        if key == "hyperparameters":
            old_by_name = {hp["name"]: hp for hp in old or []}
            new_by_name = {hp["name"]: hp for hp in new or []}
            for name in sorted(old_by_name.keys() | new_by_name.keys()):
                if old_by_name.get(name) != new_by_name.get(name):
                    old, new = old_by_name.get(name), new_by_name.get(name)
                    key = f"hyperparameters[{name}]"
                    break
        differences[key] = {"stored": old, "requested": new}
    return differences


class RoundProgress(_Out):
    round: int
    size: int
    created: int
    completed: int
    epochs: int


class BracketProgress(_Out):
    iteration: int
    bracket: int
    open: bool
    rounds: list[RoundProgress]


class EpochMetrics(_Out):
    epoch: int
    metrics: dict[str, float]


TrialStatus = Literal["pending", "running", "completed", "failed"]


class Trial(_Out):
    id: str
    study_id: str
    status: TrialStatus
    hyperparameters: dict[str, Any]
    epochs: int
    initial_epoch: int
    parent_trial_id: str | None
    iteration: int
    bracket: int
    round: int
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    score: float | None = None
    best_epoch: int | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None
    runs: int = 0
    failed_runs: int = 0
    lost_leases: int = 0
    created_at: datetime
    finished_at: datetime | None = None
    history: list[EpochMetrics] | None = Field(
        None,
        description="per-epoch metrics: present when trials are read (one, a page, the best); "
        "null in the answers of ask, report, heartbeat and tell",
    )


class TrialCounts(_Out):
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0


class Progress(_Out):
    trials: TrialCounts
    brackets: list[BracketProgress]
    best_trial: Trial | None


class StudySummary(_Out):
    """A study at a glance, from SQL aggregates (the studies page, `rung studies`)."""

    trials: TrialCounts
    brackets_open: int
    brackets_closed: int
    best_score: float | None = Field(description="the best completed trial's score")
    best_trial_id: str | None
    last_activity_at: datetime | None = Field(
        description="when a trial of the study was last handed out, started or finished"
    )


class BestPoint(_Out):
    trial_id: str
    finished_at: datetime
    epochs_trained: int = Field(
        description="epochs trained by the study's completed trials when this one finished"
    )
    score: float


class BestSoFar(_Out):
    """The study's best score as it improved: one point per completed trial that beat every
    trial completed before it, in the order they finished."""

    points: list[BestPoint]
    epochs_trained: int = Field(description="epochs trained by all completed trials")
    last_finished_at: datetime | None


StudyStatus = Literal["running", "done", "failed", "stopped"]


class Study(_Out):
    id: str
    name: str
    status: StudyStatus
    reason: str | None
    created_at: datetime
    settings: StudyOptionsShown = Field(description="the settings the study was created with")
    hyperparameters: list[dict[str, Any]] = Field(
        description="the search space now (it grows with new entries when tuned)"
    )
    objective: dict[str, Any] | list[dict[str, Any]] = Field(
        description="the objective with its direction resolved"
    )
    seed: int
    progress: Progress | None = Field(None, description="present on GET of one study")
    summary: StudySummary | None = Field(
        None, description="present on GET of one study, and in lists with `summary=true`"
    )


# -- ask / report / heartbeat / tell ---------------------------------------------------------
class AskRequest(_Model):
    worker_id: WorkerId


class AskResponse(_Out):
    status: Literal["run", "wait", "done"]
    trial: Trial | None = None
    retry_after_s: float | None = None
    reason: str | None = None


class ReportRequest(_Model):
    epoch: Annotated[int, Field(ge=0, description="Keras's 0-based epoch index")]
    metrics: Metrics
    worker_id: WorkerId | None = None


class HeartbeatRequest(_Model):
    worker_id: WorkerId


class TellRequest(_Model):
    status: Literal["completed", "failed"] = "completed"
    metrics: Metrics | None = None
    error: Annotated[str, Field(max_length=10_000)] | None = None
    worker_id: WorkerId | None = None
    hyperparameters: HyperParameterList | None = Field(
        None, description="hyperparameters first seen while building this trial's model"
    )
    _new_entries: tuple[HyperParameter, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _consistent(self) -> TellRequest:
        if self.status == "failed" and self.metrics:
            raise ValueError("a failed trial carries an error, not metrics")
        try:
            self._new_entries = tuple(from_dict(_wire(s)) for s in self.hyperparameters or ())
        except SpaceError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def new_entries(self) -> tuple[HyperParameter, ...]:
        """`hyperparameters`, as `rung.space` made them when this model was validated."""
        return self._new_entries


class CheckpointInfo(_Out):
    trial_id: str
    size: int
    sha256: str


# -- lists and errors --------------------------------------------------------------------------
T = TypeVar("T")


class Page(_Out, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class ErrorDetail(_Out):
    code: str
    message: str
    details: Any = None


class ErrorResponse(_Out):
    error: ErrorDetail
