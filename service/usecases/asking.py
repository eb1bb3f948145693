"""The ask use case: one short transaction that locks the study, reads a compact view,
asks the scheduling core for a decision and stores it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from rung.schemas import Trial
from service.core import decisions as d
from service.core import transitions as t
from service.core.bohb import History
from service.core.hyperband import decide
from service.core.state import BracketState, StudyConfig, StudyState, TrialRef
from service.db import repository as repo
from service.db.changes import change
from service.db.models import BracketRow, StudyRow, TrialRow, utcnow
from service.errors import NotFound

from . import shown
from .context import Context
from .lifecycle import write

T = TypeVar("T")


@dataclass(frozen=True)
class AskResult(Generic[T]):
    """`ask`'s answer; `trial` is the row within the use case, as shown to the caller."""

    status: str  # "run" | "wait" | "done"
    trial: T | None = None
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

    def __init__(
        self,
        session: Session,
        study: StudyRow,
        brackets: list[BracketRow],
        *,
        history: Callable[[], History],
    ):
        self.session, self.study = session, study
        self.brackets: dict[int, BracketRow] = {b.id: b for b in brackets}
        self.collided: set[str] = set()
        self.history = history
        self.promotable: dict[int, TrialRow] = {}  # the trials it found promotable, by id

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

    def best_promotable(self, bracket: int, round: int) -> TrialRef | None:
        trial = self._best_promotable(bracket, round)
        return None if trial is None else TrialRef(trial.id)

    def promotable_in_top(self, bracket: int, round: int, top: int) -> TrialRef | None:
        trial = self._best_promotable(bracket, round)
        if trial is None:
            return None
        ahead = repo.promoted_ahead(self.session, bracket, round, trial, limit=top)
        return TrialRef(trial.id) if ahead < top else None

    def _best_promotable(self, bracket: int, round: int) -> TrialRow | None:
        """Kept for the promotion that may follow: it has what a promotion copies, and
        looking it up again by id (`Session.get`) would load the rest of the row."""
        trial = repo.best_promotable(self.session, bracket, round)
        if trial is not None:
            self.promotable[trial.id] = trial
        return trial


def ask(ctx: Context, study_id: int, worker_id: str) -> AskResult[Trial]:
    def work(session: Session) -> AskResult[TrialRow]:
        study = repo.lock_study(session, study_id)
        if study is None:
            raise NotFound(f"study {study_id} not found")
        held, brackets = repo.ask_rows(session, study.id, worker_id)
        now, lease = utcnow(), ctx.lease(study)
        config = ctx.config(study)
        if held is not None:  # the same worker asking again gets its trial back
            change(held, lease_expires_at=now + lease)
            return AskResult("run", held)
        if study.status != "running":
            return AskResult("done", reason=study.reason)
        view = SqlStudyView(
            session, study, brackets, history=lambda: ctx.histories.read(study, config)
        )
        expired = reclaim_expired_leases(session, config, view, now, lease)
        while True:  # again only when a sampled configuration turned out to be tried before
            decision = decide(config, view)
            result = _apply(
                session,
                config,
                view,
                decision,
                worker_id=worker_id,
                now=now,
                lease_expires_at=now + lease,
                wait_seconds=ctx.wait_seconds,
            )
            if result is not None:
                return replace(result, lease_expiries=expired)
            assert isinstance(decision, d.StartTrial)
            view.collided.add(decision.values_hash)

    found = ctx.db.transaction(work, study=study_id)
    trial = None if found.trial is None else shown.trial(found.trial)
    return AskResult(found.status, trial, found.retry_after_s, found.reason, found.lease_expiries)


def reclaim_expired_leases(
    session: Session, config: StudyConfig, view: SqlStudyView, now: datetime, lease: timedelta
) -> int:
    """Trials whose worker stopped renewing the lease go back to be offered again; a trial
    lost more often than the study allows fails. Returns how many leases had expired.
    Looked for at most every tenth of a lease (every second at most): a vanished worker's
    trial waits at most that much longer than its lease before it is offered again."""
    study = view.study
    interval = min(timedelta(seconds=1), lease / 10)
    if study.leases_checked_at is not None and now - study.leases_checked_at < interval:
        return 0
    change(study, leases_checked_at=now)
    expired = repo.expired_leases(session, study.id, now)
    for trial in expired:
        bracket = view.brackets.get(trial.bracket_id) or repo.get_bracket(session, trial.bracket_id)
        lost = t.lose_lease(config, study, bracket, trial, now=now)
        write(lost, study=study, trial=trial, bracket=bracket)
    return len(expired)


def _apply(
    session: Session,
    config: StudyConfig,
    view: SqlStudyView,
    decision: d.Decision,
    *,
    worker_id: str,
    now: datetime,
    lease_expires_at: datetime,
    wait_seconds: float,
) -> AskResult[TrialRow] | None:
    """Store the decision. None (nothing stored but a newly opened bracket) when the
    configuration it sampled is already in the study."""
    study = view.study
    lease = lease_expires_at
    if isinstance(decision, d.StartTrial):
        bracket = _bracket(session, view, decision.bracket)
        trial = _insert(session, view, decision, bracket, None, worker_id, now, lease)
        if trial is None:
            return None
        _book(view, decision)
        return AskResult("run", trial)

    _book(view, decision)
    if isinstance(decision, d.Wait):
        return AskResult("wait", retry_after_s=wait_seconds)
    if isinstance(decision, d.Done):
        change(study, status="failed" if decision.failed else "done", reason=decision.reason)
        return AskResult("done", reason=decision.reason)
    if isinstance(decision, d.Retry):
        trial = repo.get_trial_by_id(session, decision.trial)
        repo.delete_metrics(session, trial.id)  # the new run starts with a clean history
        started = t.start_run(study, trial, worker_id=worker_id, now=now, lease_expires_at=lease)
        write(started, study=study, trial=trial)
        return AskResult("run", trial)
    if isinstance(decision, d.Promote):
        bracket = view.brackets[decision.bracket]
        parent = view.promotable[decision.parent]
        child = _insert(session, view, decision, bracket, parent, worker_id, now, lease)
        assert child is not None
        return AskResult("run", child)
    raise TypeError(decision)  # pragma: no cover


def _book(view: SqlStudyView, decision: d.Decision) -> None:
    """Write the sampler's bookkeeping that comes with every decision."""
    study_changes, bracket_changes = t.sampler_changes(decision)
    changed = {k: v for k, v in study_changes.items() if getattr(view.study, k) != v}
    if changed:
        change(view.study, **changed)
    for key, values in bracket_changes.items():
        change(view.brackets[key], **values)


def _bracket(session: Session, view: SqlStudyView, ref: int | d.NewBracket) -> BracketRow:
    if not isinstance(ref, d.NewBracket):
        return view.brackets[ref]
    fields, study_changes = t.new_bracket(ref)
    bracket = BracketRow(study_id=view.study.id, **fields)
    change(view.study, **study_changes)
    repo.add(session, bracket)
    view.brackets[bracket.id] = bracket  # open now, whatever happens to this decision
    return bracket


def _insert(
    session: Session,
    view: SqlStudyView,
    decision: d.StartTrial | d.Promote,
    bracket: BracketRow,
    parent: TrialRow | None,
    worker_id: str,
    now: datetime,
    lease: datetime,
) -> TrialRow | None:
    """Insert the trial the decision makes, and the changes that come with it (the study's
    and bracket's counters, the parent's `promoted`, the sampler's state after drawing its
    values) in the same statement; None when its sampled configuration is already in the
    study, and then nothing moves."""
    new = t.new_trial(
        decision,
        view.study,
        bracket,
        parent=parent,
        worker_id=worker_id,
        now=now,
        lease_expires_at=lease,
    )
    sampled, _ = t.sampler_changes(decision)
    moved: list[tuple[object, dict]] = [
        (view.study, {**new.changes.study, **sampled}),
        (bracket, new.changes.bracket),
    ]
    if parent is not None:
        moved.append((parent, new.changes.parent))
    return repo.insert_trial(session, {"study_id": view.study.id, **new.fields}, on_insert=moved)
