"""The connector as PyAirbyte users run it: the installed executable, read into DuckDB."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

import airbyte as ab  # noqa: E402
import duckdb  # noqa: E402

from demo.duckdb_cache import DuckDB  # noqa: E402
from integration_tests.conftest import config_for  # noqa: E402
from klaviyo_emulator import Emulator  # noqa: E402
from testkit import connector_command  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def by_instant(truth: dict[tuple[str, str], dict[str, int]]) -> dict[tuple[str, dt.datetime], dict[str, int]]:
    """The oracle keyed by the bucket's start as an instant: the demo's DuckDB cache stores a
    `timestamp_with_timezone` column as TIMESTAMP WITH TIME ZONE."""
    return {
        (segment_id, dt.datetime.fromisoformat(date_time).astimezone(dt.timezone.utc)): stats
        for (segment_id, date_time), stats in truth.items()
    }


@pytest.mark.parametrize("emulator", [120], indirect=True)
def test_read_into_duckdb_then_an_incremental_read_adds_only_new_rows(emulator: Emulator, tmp_path: Path) -> None:
    config = config_for(emulator, start_date="2024-06-01", end_date="2024-09-01", lookback_window_days=1)
    source = ab.get_source(
        "source-klaviyo-segments", config=config, local_executable=connector_command()[0], install_if_missing=False
    )
    source.check()
    source.select_all_streams()
    cache = DuckDB(db_path=tmp_path / "cache" / "klaviyo.duckdb", cache_dir=tmp_path / "cache")

    first = source.read(cache=cache)
    truth = emulator.truth_series("daily", dt.datetime(2024, 6, 1), dt.datetime(2024, 9, 1))
    assert len(first["segments"].to_pandas()) == 120
    assert len(first["segment_values"].to_pandas()) == 120
    series = first["segment_series"].to_pandas()
    assert len(series) == len(truth) == 120 * 92
    row = series.iloc[0]
    assert by_instant(truth)[(row["segment_id"], row["date_time"].to_pydatetime())]["total_members"] == row["total_members"]

    emulator.reset_calls()
    source.set_config({**config, "end_date": "2024-10-01"})
    second = source.read(cache=cache)
    series = second["segment_series"].to_pandas()
    truth = emulator.truth_series("daily", dt.datetime(2024, 6, 1), dt.datetime(2024, 10, 1))
    assert len(series) == len(truth) == 120 * 122
    assert not series.duplicated(["segment_id", "interval", "date_time"]).any()
    got = {(r.segment_id, r.date_time.to_pydatetime()): r.members_added for r in series.itertuples()}
    assert got == {key: values["members_added"] for key, values in by_instant(truth).items()}
    # The second read asked only for what was new, plus the newest saved bucket and the lookback.
    starts = [call.timeframe["start"] for call in emulator.report_calls(status=None) if call.endpoint == "series"]
    assert starts == ["2024-08-30T00:00:00-04:00"] * 2  # 2 batches of the one window from Aug 30 (Aug 31 - 1 day)

    with cache.get_sql_engine().connect() as connection:
        query = "select column_name, data_type from information_schema.columns where table_name = 'segment_series'"
        types = dict(connection.exec_driver_sql(query).fetchall())
    assert types["segment_id"] == "VARCHAR"
    # Typed timestamps: every timestamp the connector writes lands as an instant, not as text nor as
    # a wall time (PyAirbyte's own DuckDB cache would make them plain TIMESTAMPs, as it makes its
    # _airbyte_extracted_at).
    with cache.get_sql_engine().connect() as connection:
        query = "select table_name, column_name, data_type from information_schema.columns"
        columns = {(table, column): kind for table, column, kind in connection.exec_driver_sql(query).fetchall()}
    timestamps = [("segment_series", "date_time"), ("segments", "created"), ("segments", "updated"),
                  ("segment_values", "timeframe_start"), ("segment_values", "timeframe_end")]
    for table, column in timestamps:
        assert columns[(table, column)] == "TIMESTAMP WITH TIME ZONE", (table, column)
    # What the connector declares, for every destination: a timestamp with a time zone.
    catalog = source.discovered_catalog
    for table, column in timestamps:
        schema = next(s.json_schema for s in catalog.streams if s.name == table)["properties"][column]
        assert schema["format"] == "date-time" and schema["airbyte_type"] == "timestamp_with_timezone", (table, column)
    # Member counts are whole numbers: a chart or a join should not meet DECIMAL(38,9).
    assert {types[s] for s in ("total_members", "members_added", "members_removed", "net_members_changed")} == {"BIGINT"}


def test_make_demo_syncs_into_duckdb_and_draws_a_chart(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "demo.quickstart", "--chart", str(tmp_path / "chart.png")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "biggest movers" in done.stdout
    assert (tmp_path / "chart.png").stat().st_size > 20_000
    database = tmp_path / ".cache" / "default_cache" / "default_cache.duckdb"
    with duckdb.connect(str(database), read_only=True) as db:
        tables = {name for (name,) in db.execute("select table_name from information_schema.tables").fetchall()}
        assert {"segments", "segment_values", "segment_series"} <= tables
        assert db.execute("select count(*) from segments").fetchone() == (40,)
        query = "select table_name || '.' || column_name, data_type from information_schema.columns"
        types = dict(db.execute(query).fetchall())
        for column in ("segment_series.date_time", "segments.created", "segments.updated",
                       "segment_values.timeframe_start", "segment_values.timeframe_end"):
            assert types[column] == "TIMESTAMP WITH TIME ZONE", (column, types[column])
