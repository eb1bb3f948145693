"""The one way loaded study, bracket and trial rows are changed: `change` sets the
attributes at once and queues them; `write_changes` writes the queue with one UPDATE per
row (on PostgreSQL all in one statement). The ORM's unit of work (dirty tracking, flush
planning) cost more than all the rest of an ask, so these rows never go through it.

`session_factory` makes sessions that nothing bypasses the queue in: it is written before
each ORM statement, on `flush()` and before commit (the repository's Core statements
write it first themselves), and a flush refuses a study, bracket or trial row changed by
plain attribute assignment, which the queue would not know of."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, event, func, update
from sqlalchemy.orm import Session, object_session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from . import cursor
from .models import BracketRow, StudyRow, TrialRow
from .rows import columns

MODELS: dict[str, Any] = {m.__tablename__: m for m in (StudyRow, BracketRow, TrialRow)}
_CHANGED_ONLY_HERE = tuple(MODELS.values())


def change(row: Any, **values: Any) -> None:
    """Set attributes of a row loaded in a session, to be written by `write_changes`."""
    session = object_session(row)
    assert session is not None, "change() needs a row loaded in a session"
    for key, value in values.items():
        set_committed_value(row, key, value)
    queued: dict[Any, set[str]] = session.info.setdefault("changes", {})
    queued.setdefault(row, set()).update(values)


def write_changes(session: Session) -> None:
    """Write the changes queued by `change`: one UPDATE per row, by primary key; on
    PostgreSQL all of them in one statement (the others as data-modifying CTEs)."""
    queued: dict[Any, set[str]] | None = session.info.pop("changes", None)
    if not queued:
        return
    rows = [(row, tuple(sorted(keys))) for row, keys in queued.items()]
    if session.get_bind().dialect.name == "postgresql":
        _write_rows(session, rows)
        return
    for item in rows:
        _write_rows(session, [item])


class QueuedSession(Session):
    """A session whose `flush()` writes the change queue too (the ORM's own flush does
    nothing when it has no dirty object of its own)."""

    def flush(self, objects: Any = None) -> None:
        write_changes(self)
        super().flush(objects)


def session_factory(bind: Any) -> sessionmaker[QueuedSession]:
    """Sessions that write the queue before each ORM statement, on flush and before
    commit, and refuse a hot row changed by attribute assignment."""
    factory = sessionmaker(bind, class_=QueuedSession, expire_on_commit=False)
    event.listen(factory, "do_orm_execute", lambda state: write_changes(state.session))
    event.listen(factory, "before_flush", _refuse_assigned)
    event.listen(factory, "before_commit", write_changes)
    return factory


def _refuse_assigned(session: Session, _context: Any, _instances: Any) -> None:
    assigned = [
        row
        for row in session.dirty
        if isinstance(row, _CHANGED_ONLY_HERE) and session.is_modified(row)
    ]
    if assigned:
        names = ", ".join(sorted({type(row).__name__ for row in assigned}))
        raise TypeError(f"{names} changed by attribute assignment: use db.changes.change()")


def _write_rows(session: Session, rows: list[tuple[Any, tuple[str, ...]]]) -> None:
    params: dict[str, Any] = {}
    for i, (row, keys) in enumerate(rows):
        params[f"r{i}"] = row.id
        params.update({f"v{i}_{key}": getattr(row, key) for key in keys})
    signature = tuple((row.__tablename__, keys) for row, keys in rows)
    cursor.execute(session.connection(), _update_rows(signature), params)


@functools.cache
def _update_rows(signature: tuple[tuple[str, tuple[str, ...]], ...]) -> Any:
    """UPDATE <table> SET <the columns of these attributes> WHERE id = :r<i> for each
    (table, attributes) of `signature`, the first ones as CTEs of the last; built once."""
    *ctes, last = [row_update(i, tablename, keys) for i, (tablename, keys) in enumerate(signature)]
    return last.add_cte(*(stmt.cte(f"write{i}") for i, stmt in enumerate(ctes)))


def row_update(i: int, tablename: str, keys: tuple[str, ...]) -> Any:
    """UPDATE <table> SET <keys' columns> = :v<i>_<key> WHERE id = :r<i>."""
    model = MODELS[tablename]
    table = model.__table__
    named = dict(zip(*columns(model, keys), strict=True))
    values: dict[str, Any] = {
        c.name: bindparam(f"v{i}_{key}", type_=c.type) for key, c in named.items()
    }
    for column in table.columns:  # studies.updated_at: set here, not by the ORM
        if column.onupdate is not None and column.name not in values:
            values[column.name] = func.now()
    return update(table).where(table.c.id == bindparam(f"r{i}")).values(values)
