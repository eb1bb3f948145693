"""Rows read past the ORM. The hot path reads columns with Core and makes the rows' objects
itself (`adopt`): the ORM's loading of entities cost more than the rest of a read.

`adopt` fills an object's `__dict__` directly, so it would skip whatever the ORM does on
load beyond setting column attributes (validators, relationships, load events); the
models have none, and tests/db/test_repository.py fails if one is added."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value


def columns(model: Any, keys: Sequence[str] | None = None) -> tuple[tuple[str, ...], list[Any]]:
    """The attribute names and columns of `model` (`keys`, or all that are not deferred)."""
    attrs = [
        attr
        for attr in sa_inspect(model).column_attrs
        if (attr.key in keys if keys is not None else not attr.deferred)
    ]
    return tuple(attr.key for attr in attrs), [attr.columns[0] for attr in attrs]


def adopt(session: Session, model: Any, keys: Sequence[str], values: Sequence[Any]) -> Any:
    """The object of the row whose attributes `keys` hold `values`, as the ORM would load
    it: the one the session holds for that row if any (what it has loaded is kept, what it
    has not is filled in from `values`), else a new one, persistent in the session;
    attributes left out are loaded when first read. None if the row is absent (its id is
    NULL, e.g. in an outer join)."""
    mapper = sa_inspect(model)
    state = dict(zip(keys, values, strict=True))
    if state["id"] is None:
        return None
    held = session.identity_map.get(mapper.identity_key_from_primary_key((state["id"],)))
    if held is not None:
        for key in sa_inspect(held).unloaded & state.keys():
            set_committed_value(held, key, state[key])
        return held
    row = mapper.class_manager.new_instance()  # no constructor: no attribute events per column
    row.__dict__.update(state)
    make_transient_to_detached(row)  # persistent with these values, nothing to flush
    session.add(row)
    return row
