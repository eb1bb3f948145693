"""Use cases on one trial: report an epoch, heartbeat, tell the result; and reading trials.

Tell, for a trial in each state (the late-tell rule is documented in docs/semantics.md):
- running, held by the teller: the result is taken (told without a worker_id: 422);
- running, held by another worker (its lease expired and it was offered again): 409 lease_lost;
- pending after its worker lost the lease, told by that worker: taken, as if on time;
- finished, or pending after a failed run: the same payload again is answered with the
  stored trial (idempotent); a different one is a 409 that returns the stored trial.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from rung.schemas import MAX_HYPERPARAMETERS, ReportRequest, TellRequest, Trial
from rung.space import SpaceError
from service.core import transitions as t
from service.core.state import StudyConfig
from service.db import repository as repo
from service.db.changes import change
from service.db.models import StudyRow, TrialMetricRow, TrialRow, utcnow
from service.errors import AlreadyFinished, Invalid, LeaseLost, NotFound, NotRunning, TooLarge

from . import shown
from .context import Context
from .lifecycle import write
from .lookups import check_holder, find_study, find_trial


@dataclass(frozen=True)
class TrialDetails:
    trial: TrialRow
    history: Sequence[TrialMetricRow] | None = None


# A trial's stored history is bounded in bytes: each epoch may take its share of
# HISTORY_BYTES over the trial's epochs (never less than EPOCH_BYTES_FLOOR), so a trial's
# history stays under max(HISTORY_BYTES, epochs × EPOCH_BYTES_FLOOR): 25 MiB at most with
# max_epochs ≤ 100,000, 4 MiB for trials of up to 16,384 epochs.
HISTORY_BYTES = 4 << 20
EPOCH_BYTES_FLOOR = 256
# A page of trials stops growing past this (it always holds at least one trial).
PAGE_BYTES = 16 << 20


def epoch_bytes_limit(trial: TrialRow) -> int:
    return max(HISTORY_BYTES // max(1, trial.epochs - trial.initial_epoch), EPOCH_BYTES_FLOOR)


def json_bytes(mapping: Mapping[str, object] | None) -> int:
    """About the bytes a flat mapping takes as JSON: each entry's key and value, and 6 for
    the quotes and separators. The one measure of the history bound and the page bound."""
    return sum(len(str(k)) + len(str(v)) + 6 for k, v in (mapping or {}).items())


def report(ctx: Context, study_id: int, number: int, body: ReportRequest) -> Trial:
    """Store one epoch's metrics and renew the lease."""
    size = json_bytes(body.metrics)

    def work(session: Session) -> TrialRow:
        study = find_study(session, study_id)
        trial = find_trial(session, study.id, number, for_update=True)
        check_holder(trial, body.worker_id)
        if not trial.initial_epoch <= body.epoch < trial.epochs:
            raise Invalid(
                f"epoch: {body.epoch} is outside this trial's budget "
                f"[{trial.initial_epoch}, {trial.epochs}) (0-based, as Keras counts)"
            )
        if size > (limit := epoch_bytes_limit(trial)):
            raise Invalid(
                f"metrics: {size} bytes for one epoch, more than this trial's share of the "
                f"{HISTORY_BYTES}-byte history limit ({limit} bytes per epoch over its "
                f"{trial.epochs - trial.initial_epoch} epochs); report fewer or shorter metrics",
                details={"max_bytes": limit},
            )
        repo.upsert_metrics(session, trial.id, body.epoch, body.metrics)
        config = ctx.config(study)
        value = config.objective.value(body.metrics)
        if value is not None and config.objective.better(value, trial.best_value):
            change(trial, best_value=value, best_epoch=body.epoch)
        change(trial, lease_expires_at=utcnow() + ctx.lease(study))
        return trial

    return shown.trial(ctx.db.transaction(work))


def heartbeat(ctx: Context, study_id: int, number: int, worker_id: str) -> Trial:
    """Renew the lease of a trial the worker holds."""

    def work(session: Session) -> TrialRow:
        study = find_study(session, study_id)
        expires = utcnow() + ctx.lease(study)
        trial = repo.renew_lease(session, study.id, number, worker_id, expires)
        if trial is None:
            check_holder(find_trial(session, study.id, number), worker_id)  # says why
            raise LeaseLost(f"trial {number} is not held by worker {worker_id!r}")
        return trial

    return shown.trial(ctx.db.transaction(work))


def tell_digest(body: TellRequest) -> str:
    payload = body.model_dump(mode="json", exclude={"worker_id"}, exclude_none=True)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def tell(ctx: Context, study_id: int, number: int, body: TellRequest) -> Trial:
    digest = tell_digest(body)

    def work(session: Session) -> TrialRow:
        study = repo.lock_study(session, study_id)
        if study is None:
            raise NotFound(f"study {study_id} not found")
        found = repo.trial_with_bracket(session, study.id, number)
        if found is None:
            raise NotFound(f"study {study_id} has no trial {number}")
        trial, bracket = found
        late = (
            trial.status == "pending"
            and trial.worker_id is not None
            and body.worker_id == trial.worker_id
        )
        if trial.status != "running" and not late:
            if trial.tell_digest == digest:
                return trial  # the same tell again
            if trial.status in ("completed", "failed"):
                session.expunge(trial)  # keep its loaded state through the rollback
                raise AlreadyFinished(
                    f"trial {number} already has a different result",
                    details={"trial": shown.trial(trial).model_dump(mode="json")},
                )
            raise NotRunning(f"trial {number} is {trial.status}, not running")
        if trial.status == "running":
            check_holder(trial, body.worker_id)
        config = ctx.config(study)
        if body.hyperparameters:
            _add_new_entries(config, study, trial, body)
        score = None
        if body.status == "completed":
            score = _score(config, trial, body)
        ended = t.end_run(
            config,
            study,
            bracket,
            trial,
            score=score,
            error=body.error if body.status == "failed" else None,
            now=utcnow(),
        )
        change(trial, tell_digest=digest)
        if body.metrics is not None:
            change(trial, metrics=body.metrics)
        write(ended, study=study, trial=trial, bracket=bracket)
        return trial

    return shown.trial(ctx.db.transaction(work, study=study_id))


def _score(config: StudyConfig, trial: TrialRow, body: TellRequest) -> float | None:
    """The best objective value over the reported epochs and the told final metrics."""
    objective = config.objective
    final = objective.value(body.metrics) if body.metrics else None
    if final is None and trial.best_value is None:
        raise Invalid(
            f"metrics: the objective {objective.name!r} (needs {', '.join(objective.metric_names)})"
            " is in neither the told metrics nor any reported epoch"
        )
    best = objective.best(v for v in (trial.best_value, final) if v is not None)
    if final is not None and best == final and final != trial.best_value:
        change(trial, best_epoch=trial.epochs - 1)
    return best


def _add_new_entries(
    config: StudyConfig, study: StudyRow, trial: TrialRow, body: TellRequest
) -> None:
    """Hyperparameters first seen while building this trial's model (Keras Tuner's
    `update_space`): refused, kept at their defaults, or added to the space to be tuned."""
    new = [hp for hp in body.new_entries if not config.space.contains(hp)]
    if not new:
        return
    if not config.allow_new_entries:
        names = ", ".join(repr(hp.name) for hp in new)
        raise Invalid(
            f"hyperparameters: allow_new_entries is false, but the model asked for {names}"
        )
    values = dict(trial.values)
    for hp in new:
        if hp.name not in values and hp.is_active(values):
            values[hp.name] = hp.default
    change(trial, values=values)
    if config.tune_new_entries:
        try:
            merged = config.space.merge(new)
        except SpaceError as exc:
            raise Invalid(f"hyperparameters: {exc}") from None
        if len(merged) > MAX_HYPERPARAMETERS:
            raise Invalid(
                f"hyperparameters: {len(new)} new entries would make the study's space "
                f"{len(merged)} hyperparameters, more than the {MAX_HYPERPARAMETERS} a study "
                "may have"
            )
        change(
            study,
            space=merged.to_dicts(),
            space_version=study.space_version + 1,
            exhausted=False,
        )


# -- reading -----------------------------------------------------------------------------------


def get_trial(ctx: Context, study_id: int, number: int) -> Trial:
    with ctx.db.read() as session:
        trial = find_trial(session, find_study(session, study_id).id, number)
        return shown.trial(trial, repo.metrics_of(session, [trial.id])[trial.id])


def list_trials(
    ctx: Context,
    study_id: int,
    *,
    status: str | None,
    after: int | None,
    limit: int,
    place: dict[str, int] | None = None,
    history: bool = True,
) -> tuple[list[Trial], int | None]:
    """A page of at most `limit` trials and PAGE_BYTES, and the cursor of the next one;
    `place` narrows it by iteration, bracket and round; without `history`, no histories."""
    with ctx.db.read() as session:
        find_study(session, study_id)
        rows = list(
            repo.list_trials(
                session, study_id, status=status, after=after, limit=limit + 1, place=place
            )
        )
        found = repo.metrics_of(session, [t.id for t in rows[:limit]]) if history else {}
        page = _fitting([TrialDetails(t, found.get(t.id)) for t in rows[:limit]])
        more = len(page) < len(rows)
        return _shown(page), (page[-1].trial.number if more else None)


def best_trials(ctx: Context, study_id: int, k: int) -> list[Trial]:
    with ctx.db.read() as session:
        find_study(session, study_id)
        rows = repo.best_trials(session, study_id, k)
        history = repo.metrics_of(session, [t.id for t in rows])
        found = [TrialDetails(t, history[t.id]) for t in rows]
    page = _fitting(found)
    if len(page) < len(found):
        raise TooLarge(
            f"k: the {len(found)} best trials with their histories are larger than the "
            f"page limit of {PAGE_BYTES} bytes; the best {len(page)} fit",
            details={"max_bytes": PAGE_BYTES, "fitting": len(page)},
        )
    return _shown(page)


def _shown(page: list[TrialDetails]) -> list[Trial]:
    return [shown.trial(details.trial, details.history) for details in page]


def _fitting(trials: list[TrialDetails]) -> list[TrialDetails]:
    """The first trials whose JSON takes PAGE_BYTES at most (the first one always)."""
    total = 0
    for count, details in enumerate(trials):
        total += _json_size(details)
        if total > PAGE_BYTES and count > 0:
            return trials[:count]
    return trials


def _json_size(details: TrialDetails) -> int:
    """About how many bytes a trial takes in a page: 1 KiB for its fixed fields, and its
    values, metrics and history."""
    trial = details.trial
    fixed = 1024 + len(trial.error or "") + json_bytes(trial.values) + json_bytes(trial.metrics)
    return fixed + sum(64 + json_bytes(row.metrics) for row in details.history or ())
