"""SQL tables and queries through SQLAlchemy (MySQL/MariaDB, SQLite, PostgreSQL, ...).

Reads stream through a server-side cursor (``stream_results``), so MySQL does not buffer a
million-row result in the client. Columns read from a ``?table=`` are typed from the table's
declared SQL types, so every chunk has the same dtypes even when a chunk is all NULL.
Writes declare float64 as DOUBLE and int64 as BIGINT: values come back bit for bit.

A table with ``?partition_column=`` (an integer column without NULLs, unique for a fixed
order) is read in that column's order; :func:`sql_parts` splits it into ``?partitions=``
contiguous ranges of the column (``partition_from <= column < partition_below``, bound
parameters), whose reads in turn give the table's rows, each exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from vfl.connectors.uri import Location, with_query
from vfl.errors import DataError

FETCH_ROWS = 10_000
TEXT = pd.Series(["text"]).dtype  # what pandas infers for strings ('str' from pandas 3)


def engine_for(loc: Location) -> sa.Engine:
    try:
        return sa.create_engine(loc.path, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise DataError(f"{loc.redacted}: the database driver is not installed ({exc.name})") \
            from None
    except sa.exc.ArgumentError:
        raise DataError(f"{loc.redacted}: not a valid SQLAlchemy URL") from None


def _statement(conn: sa.Connection, loc: Location, columns: list[str] | None
               ) -> tuple[sa.Executable, dict[str, sa.types.TypeEngine[Any]]]:
    """The SELECT to run and the declared SQL type of each selected column (when known)."""
    if "table" in loc.params:
        table = _table(conn, loc)
        names = list(table.columns.keys())
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise DataError(f"{loc.redacted}: missing column(s) {missing}; "
                                f"the table has {names}")
            names = columns
        select = sa.select(*[table.c[n] for n in names])
        if "partition_column" in loc.params:
            column = _partition_column(table, loc)
            select = select.where(*_range(conn, column, loc)).order_by(column)
        return select, {n: table.c[n].type for n in names}
    if "query" in loc.params:
        # Run as given (a subquery could lose its ORDER BY); columns are picked per chunk.
        return sa.text(loc.params["query"].strip().rstrip(";")), {}
    raise DataError(f"{loc.redacted}: a SQL URI needs ?table=NAME or ?query=SELECT...")


def _table(conn: sa.Connection, loc: Location) -> sa.Table:
    """The ``?table=`` as the database declares it."""
    try:
        table = sa.Table(loc.params["table"], sa.MetaData(), schema=loc.params.get("schema"),
                         autoload_with=conn)
    except sa.exc.NoSuchTableError:
        raise DataError(f"{loc.redacted}: no table {loc.params['table']!r}") from None
    for column in table.columns:
        if isinstance(column.type, sa.Float):
            # Reflected MySQL DOUBLEs default to Decimal rounded to 10 places: keep floats.
            column.type.asdecimal = False
    return table


def _partition_column(table: sa.Table, loc: Location) -> sa.Column[Any]:
    """The ``?partition_column=``: a column of the table, of an integer type."""
    name = loc.params["partition_column"]
    if name not in table.columns:
        raise DataError(f"{loc.redacted}: partition_column {name!r} is not a column of the "
                        f"table; it has {list(table.columns.keys())}")
    column = table.c[name]
    if not isinstance(column.type, sa.Integer):
        raise DataError(f"{loc.redacted}: partition_column {name!r} is {column.type}, "
                        "not an integer column")
    return column


def _range(conn: sa.Connection, column: sa.Column[Any], loc: Location
           ) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of the URI's range of the partition column (bound parameters).
    No range is the whole table: a NULL in the column is refused (no part would hold it)."""
    conditions = []
    if "partition_from" in loc.params:
        conditions.append(column >= int(loc.params["partition_from"]))
    if "partition_below" in loc.params:
        conditions.append(column < int(loc.params["partition_below"]))
    if not conditions and conn.execute(sa.select(column).where(column.is_(None)).limit(1)
                                       ).first() is not None:
        raise DataError(f"{loc.redacted}: partition_column {column.name!r} holds NULLs; "
                        "every row needs a value to fall in a partition")
    return conditions


def sql_parts(loc: Location) -> list[str]:
    """The URIs of the ``?partitions=`` (default 1) ranges of the partition column, in its
    order: between its MIN and MAX, of equal widths (some empty when there are fewer values
    than partitions), the first and last open-ended, so that together they hold every row
    of the URI's table (or range) exactly once."""
    count = int(loc.params.get("partitions", "1"))
    engine = engine_for(loc)
    try:
        with engine.connect() as conn:
            column = _partition_column(_table(conn, loc), loc)
            low, high = conn.execute(sa.select(sa.func.min(column), sa.func.max(column))
                                     .where(*_range(conn, column, loc))).one()
    finally:
        engine.dispose()
    if low is None:  # no row in range: every cut at one end of it
        low = high = int(loc.params.get("partition_from") or loc.params.get("partition_below")
                         or 0)
    low, high = int(low), int(high)
    width = high - low + 1
    cuts = [low + width * i // count for i in range(1, count)]
    starts = [loc.params.get("partition_from"), *map(str, cuts)]
    ends = [*map(str, cuts), loc.params.get("partition_below")]
    return [with_query(loc.uri, {"partitions": None, "partition_from": start,
                                 "partition_below": end})
            for start, end in zip(starts, ends, strict=True)]


def _numpy_kind(sql_type: sa.types.TypeEngine[Any]) -> str | None:
    try:
        python_type = sql_type.python_type
    except NotImplementedError:
        return None
    if isinstance(sql_type, sa.Boolean) or python_type is bool:
        return "bool"
    if isinstance(sql_type, sa.Integer):
        return "int"
    if isinstance(sql_type, sa.Float | sa.Numeric):
        return "float"
    if isinstance(sql_type, sa.String):
        return "text"
    return None


def _frame(rows: Sequence[Any], names: list[str], kinds: dict[str, str | None]
           ) -> pd.DataFrame:
    """A few fetched rows as columns; declared integer columns holding NULLs become nullable
    Int64 (never through float64, which would round ids above 2^53) until :func:`_conform`."""
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=names,
                                      coerce_float=True, nrows=len(rows))
    for i, name in enumerate(names):
        kind = kinds.get(name)
        if kind in (None, "text"):  # a query's or a text column: inferred per chunk by _chunks
            frame[name] = pd.Series([r[i] for r in rows], dtype=object)
        elif kind == "float":
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
        elif kind == "int" and frame[name].dtype != np.int64:
            frame[name] = pd.array([r[i] for r in rows], dtype="Int64")
    return frame


def _conform(frame: pd.DataFrame, kinds: dict[str, str | None]) -> pd.DataFrame:
    """Per chunk: integers int64 when the chunk has no NULL (float64 with NaN otherwise),
    booleans bool when it has none, text as pandas infers strings even when the chunk holds
    none (no rows, all NULL)."""
    for name, kind in kinds.items():
        col = frame[name]
        if kind == "int" and col.dtype != np.int64:
            frame[name] = col.astype(np.int64) if col.notna().all() else col.astype(np.float64)
        elif kind == "bool" and col.dtype != bool and col.notna().all():
            frame[name] = col.astype(bool)
        elif kind == "text" and col.dtype != TEXT and col.isna().all():
            frame[name] = col.astype(TEXT)
    return frame


def _check_result_columns(loc: Location, names: list[str], columns: list[str] | None) -> None:
    missing = [c for c in columns or [] if c not in names]
    if missing:
        raise DataError(f"{loc.redacted}: missing column(s) {missing}; the query returns {names}")


def _chunks(frames: Iterator[pd.DataFrame], chunk_rows: int,
            kinds: dict[str, str | None]) -> Iterator[pd.DataFrame]:
    """Glue small converted frames into chunks of exactly ``chunk_rows`` rows, typed as one
    conversion of the whole chunk would be (a query's columns are re-inferred)."""
    untyped = [n for n, kind in kinds.items() if kind in (None, "text")]
    pending: list[pd.DataFrame] = []
    count = 0

    def finish(frame: pd.DataFrame) -> pd.DataFrame:
        if untyped:
            raw = zip(*(frame[c].to_numpy() for c in untyped), strict=True)
            inferred = pd.DataFrame.from_records(list(raw), columns=untyped,
                                                 coerce_float=True, nrows=len(frame))
            frame = frame.assign(**{c: inferred[c].to_numpy() for c in untyped})
        return _conform(frame, kinds)

    for frame in frames:
        pending.append(frame)
        count += len(frame)
        while count >= chunk_rows:
            whole = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
            yield finish(whole.iloc[:chunk_rows])
            rest = whole.iloc[chunk_rows:]
            pending, count = ([rest] if len(rest) else []), len(rest)
    if pending:
        yield finish(pd.concat(pending, ignore_index=True))


def iter_sql_table(loc: Location, chunk_rows: int, columns: list[str] | None
                   ) -> Iterator[pd.DataFrame]:
    """Rows are fetched and converted to columns ``FETCH_ROWS`` at a time: Python row objects
    take ~550 bytes per row, so only a small batch of them ever exists, not a whole chunk."""
    engine = engine_for(loc)
    fetch = min(chunk_rows, FETCH_ROWS)
    try:
        with engine.connect() as conn:
            statement, types = _statement(conn, loc, columns)
            streaming = conn.execution_options(stream_results=True, max_row_buffer=fetch)
            result = streaming.execute(statement)
            try:
                names = list(result.keys())
                _check_result_columns(loc, names, columns)
                kinds = {n: _numpy_kind(types[n]) if n in types else None for n in names}
                frames = (_frame(rows, names, kinds) for rows in result.partitions(fetch))
                start = 0
                for frame in _chunks(frames, chunk_rows, kinds):
                    frame.index = pd.RangeIndex(start, start + len(frame))
                    yield frame if columns is None else frame[columns]
                    start += len(frame)
                if start == 0:
                    frame = _conform(_frame([], names, kinds), kinds)
                    yield frame if columns is None else frame[columns]
            finally:
                result.close()
    finally:
        engine.dispose()


def count_sql_rows(loc: Location) -> int | None:
    """``COUNT(*)`` of a ``?table=``; None for a ``?query=`` (it would run the query twice)."""
    if "table" not in loc.params:
        return None
    engine = engine_for(loc)
    try:
        with engine.connect() as conn:
            statement, _ = _statement(conn, loc, None)
            assert isinstance(statement, sa.Select)
            rows = statement.order_by(None).subquery()
            return int(conn.execute(sa.select(sa.func.count()).select_from(rows)).scalar_one())
    finally:
        engine.dispose()


def read_sql_table(loc: Location, columns: list[str] | None) -> pd.DataFrame:
    chunks = list(iter_sql_table(loc, 1_000_000, columns))
    if len(chunks) == 1:
        return chunks[0]
    return pd.concat(chunks)


def sql_types(df: pd.DataFrame) -> dict[str, sa.types.TypeEngine[Any]]:
    """Column types that keep values exact: DOUBLE for float64 (MySQL FLOAT is 32-bit)."""
    types: dict[str, sa.types.TypeEngine[Any]] = {}
    for name, dtype in df.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            types[str(name)] = sa.Boolean()
        elif pd.api.types.is_integer_dtype(dtype):
            types[str(name)] = sa.BigInteger()
        elif pd.api.types.is_float_dtype(dtype):
            types[str(name)] = sa.Double() if dtype == np.float64 else sa.Float()
        elif pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
            types[str(name)] = sa.Text()
    return types


class SqlTableWriter:
    """Writes chunks into ``?table=``: ``replace`` recreates it on the first chunk."""

    def __init__(self, loc: Location, mode: str) -> None:
        if "table" not in loc.params:
            raise DataError(f"{loc.redacted}: writing to SQL needs ?table=NAME")
        self.loc, self.mode = loc, mode
        self.engine = engine_for(loc)
        self._first = True

    def write(self, df: pd.DataFrame) -> None:
        if_exists = "replace" if self._first and self.mode == "replace" else "append"
        with self.engine.begin() as conn:
            df.to_sql(self.loc.params["table"], conn, schema=self.loc.params.get("schema"),
                      if_exists=if_exists, index=False, dtype=sql_types(df),
                      chunksize=10_000)
        self._first = False

    def close(self) -> None:
        self.engine.dispose()

    def abort(self) -> None:
        self.engine.dispose()
