"""The ask use case: one short transaction that locks the study, reads a compact view,
asks the scheduling core for a decision and stores it."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

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
    lease_expiries: int = 0  # leases found expired (trials put back or failed) by this ask


class SqlStudyView:
    """The core's read-only view of a study: the rows read with the study's lock, and
    indexed look-ups in this transaction. Whether a configuration was tried before is
    answered by the unique (study, values_hash) constraint when the trial is inserted; the
    view remembers the ones that collided, and the ask is decided again (see `ask`). From
    then on the view looks each new draw up, so that the decision made again finds every
    further collision itself: an ask takes two decisions at most, not one per collision."""

    def __init__(self, session: Session, study: StudyRow, brackets: list[BracketRow]):
        self.session, self.study = session, study
        self.brackets: dict[int, BracketRow] = {b.id: b for b in brackets}
        self.collided: set[str] = set()

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
        if self.study.pending_count == 0:
            return None
        trial_id = repo.newest_pending(self.session, self.study.id)
        return None if trial_id is None else TrialRef(trial_id)

    def is_tried(self, values_hash: str) -> bool:
        if values_hash in self.collided:
            return True
        if not self.collided:  # no collision yet: the insert's constraint will say
            return False
        if repo.is_tried(self.session, self.study.id, values_hash):
            self.collided.add(values_hash)
            return True
        return False

    def has_running(self) -> bool:
        return repo.has_running(self.session, self.study.id)


def ask(ctx: Context, study_id: int, worker_id: str) -> AskResult:
    def work(session: Session) -> AskResult:
        study = repo.lock_study(session, study_id)
        if study is None:
            raise NotFound(f"study {study_id} not found")
        held, brackets = repo.ask_rows(session, study.id, worker_id)
        now = utcnow()
        config = ctx.config(study)
        if held is not None:  # the same worker asking again gets its trial back
            repo.change(held, lease_expires_at=lease_until(config, now))
            return AskResult("run", held)
        if study.status != "running":
            return AskResult("done", reason=study.reason)
        view = SqlStudyView(session, study, brackets)
        expired = reclaim_expired_leases(session, config, view, now)
        while True:  # again only when a sampled configuration turned out to be tried before
            decision = decide(config, view)
            result = _apply(
                session,
                config,
                view,
                decision,
                worker_id=worker_id,
                now=now,
                wait_seconds=ctx.wait_seconds,
            )
            if result is not None:
                return replace(result, lease_expiries=expired)
            assert isinstance(decision, d.StartTrial)
            view.collided.add(decision.values_hash)

    return ctx.db.transaction(work, study=study_id)


def lease_check_interval(config: StudyConfig) -> float:
    """How often ask looks for expired leases: a vanished worker's trial waits at most this
    much longer than its lease before it is offered again."""
    return min(1.0, config.lease_seconds / 10)


def reclaim_expired_leases(
    session: Session, config: StudyConfig, view: SqlStudyView, now: datetime
) -> int:
    """Trials whose worker stopped renewing the lease go back to be offered again; a trial
    lost more often than the study allows fails. Returns how many leases had expired."""
    study = view.study
    interval = timedelta(seconds=lease_check_interval(config))
    if study.leases_checked_at is not None and now - study.leases_checked_at < interval:
        return 0
    repo.change(study, leases_checked_at=now)
    expired = repo.expired_leases(session, study.id, now)
    for trial in expired:
        repo.change(trial, lost_leases=trial.lost_leases + 1)
        failed = judge_lost_lease(config, lost_leases=trial.lost_leases)
        if failed is None:
            put_back(study, trial, keep_worker=True)
        else:
            bracket = view.brackets.get(trial.bracket_id) or repo.get_bracket(
                session, trial.bracket_id
            )
            fail(config, study, bracket, trial, reason=failed.reason, now=now)
    return len(expired)


def _apply(
    session: Session,
    config: StudyConfig,
    view: SqlStudyView,
    decision: d.Decision,
    *,
    worker_id: str,
    now: datetime,
    wait_seconds: float,
) -> AskResult | None:
    """Store the decision. None (nothing stored but a newly opened bracket) when the
    configuration it sampled is already in the study."""
    study = view.study
    if isinstance(decision, d.StartTrial):
        bracket = _bracket(session, view, decision.bracket)
        trial = _insert_trial(
            session,
            config,
            study,
            bracket,
            worker_id=worker_id,
            now=now,
            round=0,
            epochs=decision.epochs,
            initial_epoch=0,
            values=decision.values,
            values_hash=decision.values_hash,
            sampled={"seed_state": decision.seed_state, "exhausted": decision.exhausted},
        )
        if trial is None:
            return None
        _book(view, decision)
        return AskResult("run", trial)

    _book(view, decision)
    if isinstance(decision, d.Wait):
        return AskResult("wait", retry_after_s=wait_seconds)
    if isinstance(decision, d.Done):
        repo.change(study, status="failed" if decision.failed else "done", reason=decision.reason)
        return AskResult("done", reason=decision.reason)
    if isinstance(decision, d.Retry):
        trial = repo.get_trial_by_id(session, decision.trial)  # type: ignore[arg-type]
        start_run(session, config, study, trial, worker_id=worker_id, now=now)
        return AskResult("run", trial)
    if isinstance(decision, d.Promote):
        bracket = view.brackets[decision.bracket]  # type: ignore[index]
        parent = repo.best_promotable(session, bracket.id, decision.round - 1)
        assert parent is not None, "the core promoted from a round with no candidate"
        child = _insert_trial(
            session,
            config,
            study,
            bracket,
            worker_id=worker_id,
            now=now,
            round=decision.round,
            epochs=decision.epochs,
            initial_epoch=decision.initial_epoch,
            values=parent.values,
            parent=parent,
        )
        assert child is not None
        return AskResult("run", child)
    raise TypeError(decision)  # pragma: no cover


def _book(view: SqlStudyView, decision: d.Decision) -> None:
    """The sampler's bookkeeping that comes with every decision."""
    study = view.study
    if (study.seed_state, study.exhausted) != (decision.seed_state, decision.exhausted):
        repo.change(study, seed_state=decision.seed_state, exhausted=decision.exhausted)
    for key, sizes in decision.resized:
        repo.change(view.brackets[key], sizes=list(sizes))  # type: ignore[index]
    for key in decision.closed:
        repo.change(view.brackets[key], is_open=False)  # type: ignore[index]


def _bracket(session: Session, view: SqlStudyView, ref: Hashable | d.NewBracket) -> BracketRow:
    if not isinstance(ref, d.NewBracket):
        return view.brackets[ref]  # type: ignore[index]
    study = view.study
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
    repo.change(study, last_iteration=ref.iteration, last_bracket=ref.bracket)
    repo.add(session, bracket)
    view.brackets[bracket.id] = bracket  # open now, whatever happens to this decision
    return bracket


def _insert_trial(
    session: Session,
    config: StudyConfig,
    study: StudyRow,
    bracket: BracketRow,
    *,
    worker_id: str,
    now: datetime,
    round: int,
    epochs: int,
    initial_epoch: int,
    values: dict[str, Any],
    values_hash: str | None = None,
    parent: TrialRow | None = None,
    sampled: dict[str, Any] | None = None,
) -> TrialRow | None:
    """Insert a new trial, already running for `worker_id`, and move the counters it moves
    (the study's, the bracket's round's, the parent's `promoted`; `sampled`: the sampler's
    state after drawing its values) in the same statement; None when its sampled
    configuration is already in the study, and then nothing moves."""
    fields = {
        "study_id": study.id,
        "number": study.trial_count,
        "bracket_id": bracket.id,
        "iteration": bracket.iteration,
        "bracket": bracket.bracket,
        "round": round,
        "epochs": epochs,
        "initial_epoch": initial_epoch,
        "parent_id": parent.id if parent else None,
        "parent_number": parent.number if parent else None,
        "values": dict(values),
        "values_hash": values_hash,
        "status": "running",
        "worker_id": worker_id,
        "lease_expires_at": lease_until(config, now),
        "started_at": now,
        "created_at": now,
        "runs": 1,
        "failed_runs": 0,
        "lost_leases": 0,
        "promoted": False,
    }
    moved: list[tuple[Any, dict[str, Any]]] = [
        (study, {"trial_count": study.trial_count + 1, **(sampled or {})}),
        (bracket, {"created": bump(bracket.created, round), "active": bracket.active + 1}),
    ]
    if parent is not None:
        moved.append((parent, {"promoted": True}))
    return repo.insert_trial(session, fields, on_insert=moved)
