"""The ask use case: one short transaction that locks the study, reads a compact view,
asks the scheduling core for a decision and stores it."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from service.core import decisions as d
from service.core.hyperband import decide
from service.core.outcomes import judge_lost_lease
from service.core.state import BracketState, StudyConfig, StudyState, TrialRef
from service.db import repository as repo
from service.db.models import BracketRow, StudyRow, TrialRow, utcnow
from service.errors import NotFound

from .context import Context
from .lifecycle import bump, fail, lease_until, put_back, start_run


@dataclass(frozen=True)
class AskResult:
    status: str  # "run" | "wait" | "done"
    trial: TrialRow | None = None
    retry_after_s: float | None = None
    reason: str | None = None


class SqlStudyView:
    """The core's read-only view of a study, backed by indexed queries in this transaction."""

    def __init__(self, session: Session, study: StudyRow):
        self.session, self.study = session, study
        self.brackets: dict[int, BracketRow] = {
            b.id: b for b in repo.open_brackets(session, study.id)
        }

    @property
    def state(self) -> StudyState:
        study = self.study
        last = None if study.last_iteration is None else (study.last_iteration, study.last_bracket)
        return StudyState(
            seed_state=study.seed_state,
            last_opened=last,  # type: ignore[arg-type]
            open_brackets=tuple(
                BracketState(
                    key=b.id,
                    iteration=b.iteration,
                    bracket=b.bracket,
                    sizes=tuple(b.sizes),
                    created=tuple(b.created),
                    completed=tuple(b.completed),
                    active=b.active,
                )
                for b in self.brackets.values()
            ),
            exhausted=study.exhausted,
            failed_reason=study.reason if study.status == "failed" else None,
        )

    def newest_pending(self) -> TrialRef | None:
        trial_id = repo.newest_pending(self.session, self.study.id)
        return None if trial_id is None else TrialRef(trial_id)

    def is_tried(self, values_hash: str) -> bool:
        return repo.is_tried(self.session, self.study.id, values_hash)

    def has_running(self) -> bool:
        return repo.has_running(self.session, self.study.id)


def ask(ctx: Context, study_id: int, worker_id: str) -> AskResult:
    def work(session: Session) -> AskResult:
        study = repo.lock_study(session, study_id)
        if study is None:
            raise NotFound(f"study {study_id} not found")
        now = utcnow()
        held = repo.running_trial_of(session, study.id, worker_id)
        if held is not None:  # the same worker asking again gets its trial back
            held.lease_expires_at = lease_until(study, now)
            return AskResult("run", held)
        if study.status != "running":
            return AskResult("done", reason=study.reason)
        config = ctx.config(study)
        reclaim_expired_leases(session, config, study, now)
        view = SqlStudyView(session, study)
        decision = decide(config, view)
        return _apply(
            session,
            study,
            view,
            decision,
            worker_id=worker_id,
            now=now,
            wait_seconds=ctx.wait_seconds,
        )

    return ctx.db.transaction(work)


def reclaim_expired_leases(
    session: Session, config: StudyConfig, study: StudyRow, now: datetime
) -> None:
    """Trials whose worker stopped renewing the lease go back to be offered again; a trial
    lost more often than the study allows fails."""
    for trial in repo.expired_leases(session, study.id, now):
        trial.lost_leases += 1
        failed = judge_lost_lease(config, lost_leases=trial.lost_leases)
        if failed is None:
            put_back(study, trial, keep_worker=True)
        else:
            fail(session, config, study, trial, reason=failed.reason, now=now)
    session.flush()


def _apply(
    session: Session,
    study: StudyRow,
    view: SqlStudyView,
    decision: d.Decision,
    *,
    worker_id: str,
    now: datetime,
    wait_seconds: float,
) -> AskResult:
    study.seed_state, study.exhausted = decision.seed_state, decision.exhausted
    for key, sizes in decision.resized:
        view.brackets[key].sizes = list(sizes)  # type: ignore[index]
    for key in decision.closed:
        view.brackets[key].is_open = False  # type: ignore[index]

    if isinstance(decision, d.Wait):
        return AskResult("wait", retry_after_s=wait_seconds)
    if isinstance(decision, d.Done):
        study.status, study.reason = ("failed" if decision.failed else "done"), decision.reason
        return AskResult("done", reason=decision.reason)

    if isinstance(decision, d.Retry):
        trial = repo.get_trial_by_id(session, decision.trial)  # type: ignore[arg-type]
    elif isinstance(decision, d.StartTrial):
        bracket = _bracket(session, study, view, decision.bracket)
        trial = _new_trial(
            session,
            study,
            bracket,
            round=0,
            epochs=decision.epochs,
            initial_epoch=0,
            values=decision.values,
            values_hash=decision.values_hash,
            parent=None,
        )
    elif isinstance(decision, d.Promote):
        bracket = view.brackets[decision.bracket]  # type: ignore[index]
        parent = repo.best_promotable(session, bracket.id, decision.round - 1)
        assert parent is not None, "the core promoted from a round with no candidate"
        parent.promoted = True
        trial = _new_trial(
            session,
            study,
            bracket,
            round=decision.round,
            epochs=decision.epochs,
            initial_epoch=decision.initial_epoch,
            values=parent.values,
            values_hash=None,
            parent=parent,
        )
    else:  # pragma: no cover
        raise TypeError(decision)
    start_run(session, study, trial, worker_id=worker_id, now=now)
    session.flush()
    return AskResult("run", trial)


def _bracket(
    session: Session, study: StudyRow, view: SqlStudyView, ref: Hashable | d.NewBracket
) -> BracketRow:
    if not isinstance(ref, d.NewBracket):
        return view.brackets[ref]  # type: ignore[index]
    bracket = BracketRow(
        study_id=study.id,
        iteration=ref.iteration,
        bracket=ref.bracket,
        sizes=list(ref.sizes),
        created=[0] * len(ref.sizes),
        completed=[0] * len(ref.sizes),
        active=0,
        is_open=True,
    )
    study.last_iteration, study.last_bracket = ref.iteration, ref.bracket
    return repo.add(session, bracket)  # type: ignore[no-any-return]


def _new_trial(
    session: Session,
    study: StudyRow,
    bracket: BracketRow,
    *,
    round: int,
    epochs: int,
    initial_epoch: int,
    values: dict,
    values_hash: str | None,
    parent: TrialRow | None,
) -> TrialRow:
    trial = TrialRow(
        study_id=study.id,
        number=study.trial_count,
        bracket_id=bracket.id,
        iteration=bracket.iteration,
        bracket=bracket.bracket,
        round=round,
        epochs=epochs,
        initial_epoch=initial_epoch,
        parent_id=parent.id if parent else None,
        parent_number=parent.number if parent else None,
        values=dict(values),
        values_hash=values_hash,
        status="running",
        runs=0,
        failed_runs=0,
        lost_leases=0,
        promoted=False,
    )
    study.trial_count += 1
    bracket.created = bump(bracket.created, round)
    bracket.active += 1
    session.add(trial)
    return trial
