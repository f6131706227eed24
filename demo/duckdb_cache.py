"""A PyAirbyte DuckDB cache whose timestamp columns keep their instant: ``TIMESTAMP WITH TIME ZONE``.

The connector declares every timestamp ``format: date-time`` with ``airbyte_type:
timestamp_with_timezone`` (``segment_series.date_time`` is written with the account's offset,
e.g. ``2024-06-01T00:00:00-04:00``). PyAirbyte 0.71.3 maps that type to SQLAlchemy's
``TIMESTAMP(timezone=True)``, but its DuckDB cache renders column types without a dialect, so the
flag is lost: the column is a plain ``TIMESTAMP`` holding the wall time, and which instant it was
is gone. This cache renders it as DuckDB's ``TIMESTAMP WITH TIME ZONE``: DuckDB parses the offset
and stores the instant.

It plugs in the way PyAirbyte's own caches choose their SQL processor (``_sql_processor_class``)
and its BigQuery and Snowflake processors their type converter (``type_converter_class``); the
PyAirbyte version is pinned in ``setup.py`` and ``integration_tests/test_pyairbyte.py`` asserts the
column types, so a PyAirbyte that changes either fails there first.

    >>> cache = DuckDB(db_path=".cache/demo.duckdb")  # doctest: +SKIP
    >>> source.read(cache=cache)                                         # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy
from airbyte.caches.duckdb import DuckDBCache
from airbyte.types import SQLTypeConverter


class TimestampWithTimeZone(sqlalchemy.types.UserDefinedType):  # type: ignore[type-arg]
    """DuckDB's ``TIMESTAMP WITH TIME ZONE``, rendered the same with or without a dialect."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "TIMESTAMP WITH TIME ZONE"


class TimeZoneTypeConverter(SQLTypeConverter):
    """PyAirbyte's type mapping, with ``timestamp_with_timezone`` as ``TIMESTAMP WITH TIME ZONE``."""

    def to_sql_type(self, json_schema_property_def: dict[str, str | dict | list]) -> sqlalchemy.types.TypeEngine:
        sql_type = super().to_sql_type(json_schema_property_def)
        if isinstance(sql_type, sqlalchemy.types.TIMESTAMP) and sql_type.timezone:
            return TimestampWithTimeZone()
        return sql_type


# PyAirbyte's DuckDB processor, as its DuckDB cache names it (the class is not exported elsewhere).
_DuckDBSqlProcessor: Any = DuckDBCache._sql_processor_class


class DuckDBTimeZoneProcessor(_DuckDBSqlProcessor):  # type: ignore[misc, valid-type]
    """PyAirbyte's DuckDB processor with ``TimeZoneTypeConverter``."""

    type_converter_class = TimeZoneTypeConverter


class DuckDB(DuckDBCache):
    """PyAirbyte's DuckDB cache, storing ``timestamp_with_timezone`` as ``TIMESTAMP WITH TIME ZONE``."""

    _sql_processor_class: ClassVar[Any] = DuckDBTimeZoneProcessor


def default_cache() -> DuckDB:
    """PyAirbyte's default local cache (``.cache/default_cache/default_cache.duckdb`` under the
    current folder, or ``$AIRBYTE_CACHE_ROOT``), keeping time zones."""
    from airbyte.constants import DEFAULT_CACHE_ROOT

    cache_dir = DEFAULT_CACHE_ROOT / "default_cache"
    return DuckDB(db_path=cache_dir / "default_cache.duckdb", cache_dir=cache_dir)
