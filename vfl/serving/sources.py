"""Which feature source serves a dataset: `source_for` picks among those of
`vfl.serving.features` and the partitioned one of `vfl.serving.partitioned`."""

from __future__ import annotations

from typing import Any

from vfl.connectors import DatasetSpec
from vfl.connectors.tables import table_parts
from vfl.connectors.uri import parse_uri
from vfl.errors import ConfigError
from vfl.parties.compute import Compute
from vfl.serving.features import CallableSource, IndexedTableSource, SqlSource
from vfl.serving.partitioned import PartitionedTableSource


def source_for(spec: DatasetSpec, callable_target: str | None = None, name: str = "serving",
               columns: list[str] | None = None, compute: Compute | None = None) -> Any:
    """The right source for a dataset spec: SQL tables are queried, files are indexed (on the
    workers of a `compute` engine that keeps tables there, in this process otherwise).

    `columns`: exactly the raw columns a model part was trained on (its bundle records them),
    which then replace the dataset's own `features:` list (or its absence).
    """
    if columns is not None:
        spec = spec.model_copy(update={"features": list(columns)})
    if callable_target:
        if spec.features is None:
            raise ConfigError("a callable feature source needs the dataset's feature list")
        return CallableSource(callable_target, spec.id_columns[0], list(spec.features))
    loc = parse_uri(spec.uri)
    if loc.kind == "sql" and "table" in loc.params:
        return SqlSource(spec)
    if compute is not None and compute.partitioned_tables:
        parts = table_parts(spec.uri)  # None for a table read whole (SQL without a partition column)
        if parts:
            return PartitionedTableSource(spec, compute.executor, parts, name)
    return IndexedTableSource(spec, name)
