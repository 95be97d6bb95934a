"""CSV and Parquet tables in files or directories of part files, local or on HDFS.

Arrow does the parsing and formatting: its CSV reader parses doubles with correct rounding and
its writer prints the shortest repr, so float64 values survive a round trip bit for bit.
Streaming reads hold one parse block (CSV) or one row group (Parquet) plus one output chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vfl.connectors.filesystems import FileSystem
from vfl.connectors.uri import Format, Location, format_of_name
from vfl.errors import DataError

# Arrow's streaming CSV reader reads up to 32 blocks ahead on its IO thread, whatever the
# consumer does: the block size bounds that read-ahead (32 x 128 KiB = 4 MiB).
CSV_BLOCK_BYTES = 128 << 10
CSV_ROWS_PER_BLOCK = 16  # wide rows get a bigger block: a row must never straddle two
PARQUET_ROW_GROUP = 64 * 1024
PART_PREFIX = "part-"


def _parts(fs: FileSystem, loc: Location) -> tuple[list[str], Format]:
    """The files holding the table (one file, or the part files of a directory) and format."""
    if not fs.exists(loc.path):
        raise DataError(f"{loc.redacted}: no such file or directory")
    if not fs.isdir(loc.path):
        fmt = loc.format
        if fmt is None:
            raise DataError(f"{loc.redacted}: cannot tell the format from the file name; "
                            "use a .csv/.parquet/.pq extension or ?format=csv|parquet")
        return [loc.path], fmt
    names = [n for n in fs.listdir(loc.path) if not n.startswith(("_", "."))]
    fmt = loc.format
    if fmt is None:
        found = {f for f in map(format_of_name, names) if f}
        if len(found) != 1:
            raise DataError(f"{loc.redacted}: cannot tell the format of the part files "
                            f"(found {sorted(found) or 'none'}); add ?format=csv|parquet")
        fmt = found.pop()
    files = [fs.join(loc.path, n) for n in names
             if format_of_name(n) in (fmt, None) and not fs.isdir(fs.join(loc.path, n))]
    if not files:
        raise DataError(f"{loc.redacted}: directory has no {fmt} part files")
    return files, fmt


# -- reading ------------------------------------------------------------------------------


ARROW_TYPES: dict[str, pa.DataType] = {"str": pa.string(), "int": pa.int64()}
"""The column types a caller may declare (``types=``): read as such, never inferred."""


def _csv_convert(columns: list[str] | None, schema: pa.Schema | None,
                 types: dict[str, str]) -> pacsv.ConvertOptions:
    """Columns of ``types`` parsed as declared; with ``schema`` (a later part file), every
    column parsed as the first part's."""
    column_types = {name: ARROW_TYPES[kind] for name, kind in types.items()}
    if schema is not None:
        column_types = {f.name: f.type for f in schema}
    return pacsv.ConvertOptions(include_columns=columns, column_types=column_types or None)


def _check_columns(loc: Location, available: Iterable[str], columns: list[str] | None) -> None:
    if columns is None:
        return
    have = list(available)
    missing = [c for c in columns if c not in have]
    if missing:
        raise DataError(f"{loc.redacted}: missing column(s) {missing}; the table has {have}")


def _csv_header(handle: IO[bytes]) -> list[str]:
    reader = pacsv.open_csv(handle, read_options=pacsv.ReadOptions(block_size=1 << 16))
    return list(reader.schema.names)


def _stream_pool() -> pa.MemoryPool:
    """jemalloc for streaming reads when Arrow has it: it hands freed blocks back to the OS,
    where mimalloc (Arrow's default pool) keeps ~15 MiB cached per reading thread."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


def _csv_block_size(handle: IO[bytes]) -> int:
    """Room for CSV_ROWS_PER_BLOCK rows as wide as the widest of the first lines (at least
    the header and one row are looked at, however wide)."""
    head = b""
    while head.count(b"\n") < 2:
        more = handle.read(CSV_BLOCK_BYTES)
        if not more:
            break
        head += more
    handle.seek(0)
    widest = max(len(line) + 1 for line in head.split(b"\n"))
    return max(CSV_BLOCK_BYTES, CSV_ROWS_PER_BLOCK * widest)


def _open_batches(fs: FileSystem, loc: Location, files: list[str], fmt: Format,
                  chunk_rows: int, columns: list[str] | None,
                  types: dict[str, str]) -> Iterator[pa.RecordBatch]:
    """Record batches of every part in order; later parts are cast to the first part's types."""
    schema: pa.Schema | None = None
    for path in files:
        with fs.open_read(path) as handle:
            if fmt == "parquet":
                pf = pq.ParquetFile(handle)
                _check_columns(loc, pf.schema_arrow.names, columns)
                batches: Iterator[pa.RecordBatch] = _row_group_batches(pf, chunk_rows, columns)
            else:
                # Serial parsing: threads would read ahead of a slow consumer without bound.
                options = pacsv.ReadOptions(block_size=_csv_block_size(handle),
                                            use_threads=False)
                if columns is not None:
                    _check_columns(loc, _csv_header(handle), columns)
                    handle.seek(0)
                batches = iter(pacsv.open_csv(handle, read_options=options,
                                              convert_options=_csv_convert(columns, schema, types),
                                              memory_pool=_stream_pool()))
            for batch in batches:
                if schema is None:
                    schema = batch.schema
                elif batch.schema != schema:
                    batch = _cast(loc, pa.Table.from_batches([batch]), schema).to_batches()[0]
                yield batch


def _row_group_batches(pf: pq.ParquetFile, chunk_rows: int, columns: list[str] | None
                       ) -> Iterator[pa.RecordBatch]:
    """Batches one row group at a time: a whole-file ``iter_batches`` reads ahead all of them."""
    for group in range(pf.num_row_groups):
        yield from pf.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=columns)


def _cast(loc: Location, table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.names != schema.names:
        table = table.select(schema.names) if set(schema.names) <= set(table.schema.names) \
            else _fail(loc, f"columns {table.schema.names} differ from {schema.names}")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{loc.redacted}: column types changed within the table: {exc}") from exc


def _fail(loc: Location, message: str) -> Any:
    raise DataError(f"{loc.redacted}: {message}")


def _rebatch(batches: Iterator[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.Table]:
    """Regroup batches of any size into tables of exactly ``chunk_rows`` rows (last: fewer)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def count_file_rows(fs: FileSystem, loc: Location) -> int | None:
    """Rows of a Parquet table from its footers; None for CSV (it would take a full read)."""
    files, fmt = _parts(fs, loc)
    if fmt != "parquet":
        return None
    total = 0
    for path in files:
        with fs.open_read(path) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def part_files(fs: FileSystem, loc: Location) -> tuple[list[str], Format]:
    """The files of a table in the order the readers read them, and their format."""
    return _parts(fs, loc)


def file_format(fs: FileSystem, loc: Location) -> Format:
    """The format of a file table (of its part files for a directory)."""
    return _parts(fs, loc)[1]


def iter_file_table(fs: FileSystem, loc: Location, chunk_rows: int,
                    columns: list[str] | None, types: dict[str, str]) -> Iterator[pd.DataFrame]:
    files, fmt = _parts(fs, loc)
    start = 0
    try:
        for table in _rebatch(_open_batches(fs, loc, files, fmt, chunk_rows, columns, types),
                              chunk_rows):
            frame = table.to_pandas(memory_pool=_stream_pool())
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield frame[columns] if columns is not None else frame
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{loc.redacted}: cannot read {fmt}: {exc}") from exc


def read_file_table(fs: FileSystem, loc: Location, columns: list[str] | None,
                    types: dict[str, str]) -> pd.DataFrame:
    files, fmt = _parts(fs, loc)
    tables = []
    try:
        for path in files:
            with fs.open_read(path) as handle:
                if fmt == "parquet":
                    pf = pq.ParquetFile(handle)
                    _check_columns(loc, pf.schema_arrow.names, columns)
                    tables.append(pf.read(columns=columns))
                else:
                    if columns is not None:
                        _check_columns(loc, _csv_header(handle), columns)
                        handle.seek(0)
                    tables.append(pacsv.read_csv(
                        handle, convert_options=_csv_convert(columns, None, types)))
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataError(f"{loc.redacted}: cannot read {fmt}: {exc}") from exc
    frame = table.to_pandas()
    return frame[columns] if columns is not None else frame


# -- writing ------------------------------------------------------------------------------


def to_arrow(loc: Location, df: pd.DataFrame) -> pa.Table:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{loc.redacted}: can only write a pandas DataFrame, got {type(df).__name__}")
    if len(set(map(str, df.columns))) != df.shape[1]:
        raise DataError(f"{loc.redacted}: duplicate column names {list(df.columns)}")
    try:
        return pa.Table.from_pandas(df.rename(columns=str), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{loc.redacted}: cannot convert the DataFrame: {exc}") from exc


class FileTableWriter:
    """Writes chunks to one file, or to a new part file of a directory, in CSV or Parquet.

    ``replace`` rewrites the file (or empties the directory); ``append`` adds rows to a CSV
    file, a new part file to a directory, or rewrites a single Parquet file with the new rows
    after the old ones (Parquet files cannot grow in place; prefer directories for appends).
    """

    def __init__(self, fs: FileSystem, loc: Location, mode: str) -> None:
        self.fs, self.loc, self.mode = fs, loc, mode
        self._writer: Any = None
        self._handle: IO[bytes] | None = None
        self._schema: pa.Schema | None = None
        self._final_path: str | None = None
        self._target, self.format = self._resolve_target()

    def _resolve_target(self) -> tuple[str, Format]:
        fs, loc = self.fs, self.loc
        if not fs.isdir(loc.path) and format_of_name(loc.path) is not None:
            assert loc.format is not None
            return loc.path, loc.format
        fmt = loc.format
        existing: list[str] = []
        if fs.isdir(loc.path):
            existing = [n for n in fs.listdir(loc.path) if n.startswith(PART_PREFIX)]
            if fmt is None:
                found = {f for f in map(format_of_name, existing) if f}
                fmt = found.pop() if len(found) == 1 else None
        if fmt is None:
            raise DataError(f"{loc.redacted}: cannot tell the format to write; "
                            "use a .csv/.parquet file name or ?format=csv|parquet")
        if self.mode == "replace":
            fs.remove(loc.path)
            existing = []
        fs.makedirs(loc.path)
        number = len(existing)
        name = f"{PART_PREFIX}{number:05d}.{'csv' if fmt == 'csv' else 'parquet'}"
        while name in existing:
            number += 1
            name = f"{PART_PREFIX}{number:05d}.{'csv' if fmt == 'csv' else 'parquet'}"
        return fs.join(loc.path, name), fmt

    def _open(self, table: pa.Table) -> None:
        fs, path = self.fs, self._target
        if self.format == "csv":
            header: list[str] | None = None
            if self.mode == "append" and fs.exists(path) and fs.size(path) > 0:
                with fs.open_read(path) as handle:
                    header = _csv_header(handle)
                    table = self._align(table, header)
            if header is None:
                self._final_path, path = path, path + ".vfl-tmp"
            self._handle = fs.open_write(path, append=header is not None)
            options = pacsv.WriteOptions(include_header=header is None)
            self._writer = pacsv.CSVWriter(self._handle, table.schema, write_options=options)
            self._schema = table.schema
            return
        old: pq.ParquetFile | None = None
        old_handle: IO[bytes] | None = None
        if self.mode == "append" and fs.exists(path):
            old_handle = fs.open_read(path)
            old = pq.ParquetFile(old_handle)
        if old is not None or self.mode == "replace":
            # Written beside the target and renamed on close: a failure keeps the old table.
            self._final_path, path = path, path + ".vfl-tmp"
        schema = old.schema_arrow if old is not None else table.schema
        self._handle = fs.open_write(path)
        self._writer = pq.ParquetWriter(self._handle, schema)
        self._schema = schema
        if old is not None and old_handle is not None:
            with old_handle:
                for group in range(old.num_row_groups):
                    self._writer.write_table(old.read_row_group(group))

    def _align(self, table: pa.Table, names: list[str]) -> pa.Table:
        if sorted(table.schema.names) != sorted(names):
            raise DataError(f"{self.loc.redacted}: cannot append columns {table.schema.names} "
                            f"to a table with columns {names}")
        return table.select(names)

    def write(self, df: pd.DataFrame) -> None:
        table = to_arrow(self.loc, df)
        if self._writer is None:
            self._open(table)
        assert self._schema is not None
        table = self._align(table, self._schema.names)
        if table.schema != self._schema:
            table = _cast(self.loc, table, self._schema)
        if self.format == "parquet":
            self._writer.write_table(table, row_group_size=PARQUET_ROW_GROUP)
        else:
            self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        assert self._handle is not None
        self._handle.close()
        if self._final_path is not None:
            self.fs.rename(self._final_path + ".vfl-tmp", self._final_path)
        self._writer = None

    def abort(self) -> None:
        """Give up after an error: leave no half-written temporary file behind."""
        if self._writer is not None:
            try:  # a writer left to the garbage collector would write into the discarded file
                self._writer.close()
            except (OSError, ValueError, pa.ArrowException):
                pass
        if self._handle is not None:
            discard = getattr(self._handle, "discard", None)
            if discard is not None:
                discard()
            else:
                self._handle.close()
            if self._final_path is not None:
                self.fs.remove(self._final_path + ".vfl-tmp")
        self._writer = None
