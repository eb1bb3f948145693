"""The hot path's Core statements, run on the DBAPI cursor of the session's connection.

SQLAlchemy's `Connection.execute` spends more CPU on a short statement than the driver:
it builds an execution context and a result object for each one. Tell's look-up of a
trial and its bracket took 90–110 µs of CPU through it and 55–70 µs here (PostgreSQL,
one connection); a request costs 13 % fewer instructions on PostgreSQL and 17 % fewer on
SQLite (benchmarks/instructions.py).

What stays SQLAlchemy's: the statement is compiled by the connection's dialect (once per
statement and dialect), its parameters and result columns go through the dialect's own
type processors (JSON, timestamps, booleans on SQLite), the connection's
`before_cursor_execute` listeners see it, and an error is raised as SQLAlchemy raises
it (a `DBAPIError`, the connection invalidated when the database went away), so that
retries and reconnects work as for every other statement. What is left out: the result
object (`execute` returns the rows, as tuples) and the engine's `echo` logging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError

from .engine import PLAN_EACH_RUN_OPTION

Processor = Callable[[Any], Any]


@dataclass
class _Compiled:
    sql: str
    construct_params: Callable[..., dict[str, Any]]
    binds: tuple[tuple[str, Processor | None], ...]  # in the order a positional driver wants
    positional: bool
    types: tuple[Any, ...]  # of the result's columns
    unprepared: bool
    # The result columns' processors, made from the first result's description (a
    # processor may depend on the column's type as the database reports it); None: every
    # column as the driver gives it.
    results: tuple[Processor | None, ...] | None = None
    described: bool = False

    def process(self, rows: Sequence[Any], cursor: Any, dialect: Dialect) -> Sequence[Any]:
        if not self.described:
            processors = tuple(
                type_.result_processor(dialect, column[1])
                for type_, column in zip(self.types, cursor.description, strict=True)
            )
            self.results = processors if any(processors) else None
            self.described = True
        if self.results is None:
            return rows
        return [
            tuple(v if p is None else p(v) for v, p in zip(row, self.results, strict=True))
            for row in rows
        ]


# By statement and dialect class (the driver: its SQL and its processors).
_COMPILED: dict[tuple[int, type], tuple[Any, _Compiled]] = {}


def _compile(stmt: Any, dialect: Dialect) -> _Compiled:
    key = (id(stmt), type(dialect))
    if key in _COMPILED:
        return _COMPILED[key][1]
    compiled: Any = stmt.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("a statement whose SQL changes with its parameters (IN lists)")
    if compiled.insert_prefetch or compiled.update_prefetch:
        raise ValueError("a statement that leaves out columns with Python-side defaults")
    if compiled.escaped_bind_names:
        raise ValueError("a statement with parameter names the driver cannot take as they are")
    params = {name: bind for bind, name in compiled.bind_names.items()}
    names = compiled.positiontup if compiled.positional else params
    binds = tuple(
        (name, params[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names
    )
    types = tuple(column.type.dialect_impl(dialect) for column in stmt.exported_columns)
    made = _Compiled(
        sql=compiled.string,
        construct_params=compiled.construct_params,
        binds=binds,
        positional=compiled.positional,
        types=types,
        unprepared=dialect.name == "postgresql"
        and bool(stmt.get_execution_options().get(PLAN_EACH_RUN_OPTION)),
    )
    _COMPILED[key] = (stmt, made)  # kept alive, so that its id is not reused
    return made


def execute(connection: Connection, stmt: Any, params: dict[str, Any]) -> Sequence[Any]:
    """Run a statement built once (a module constant or a cached one) with `params`; its
    rows, each a tuple of values processed as SQLAlchemy would."""
    dialect = connection.dialect
    compiled = _compile(stmt, dialect)
    values = compiled.construct_params(params)
    if compiled.positional:
        bound: Any = tuple(
            values[name] if process is None else process(values[name])
            for name, process in compiled.binds
        )
    else:
        bound = {
            name: values[name] if process is None else process(values[name])
            for name, process in compiled.binds
        }
    dbapi_connection = connection.connection.dbapi_connection
    cursor: Any = dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        connection.dispatch.before_cursor_execute(
            connection, cursor, compiled.sql, bound, None, False
        )
        if compiled.unprepared:
            cursor.execute(compiled.sql, bound, prepare=False)
        else:
            cursor.execute(compiled.sql, bound)
        if not compiled.types:
            return []
        rows = compiled.process(cursor.fetchall(), cursor, dialect)
    except dialect.loaded_dbapi.Error as exc:
        gone = dialect.is_disconnect(exc, dbapi_connection, cursor)
        if gone:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            compiled.sql,
            bound,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=gone,
            dialect=dialect,
        ) from exc
    finally:
        cursor.close()
    return rows
