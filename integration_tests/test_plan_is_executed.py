"""A read makes exactly the report calls of its plan, call for call: the same windows, the same
segments, in the same order, and stops where the plan says ``max_report_requests`` stops it.

The plan is made in this process with the connector's own ``planned_read`` (what ``plan`` prints and
the read logs); the calls are what the emulator received. Together with the unit tests that hold
the plan to an exhaustive minimum (``unit_tests/test_plan_minimum.py``), this shows that a read
makes the fewest calls: the executor adds, drops and reorders nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from airbyte_cdk.models import AirbyteStateMessage, AirbyteStateMessageSerializer

from integration_tests.conftest import config_for, run_connector
from klaviyo_emulator import Emulator, EmulatorConfig, RateLimits
from source_klaviyo_segments import SourceKlaviyoSegments
from source_klaviyo_segments.run import planned_read
from testkit import catalog_entry

NOW = dt.datetime(2025, 3, 1)
SERIES = [("segment_series", "incremental")]
ALL_REPORTS = [("segment_values", "full_refresh"), ("segment_series", "incremental")]
Call = tuple[str, str, str, tuple[str, ...]]


def planned(config: dict[str, Any], streams: list[tuple[str, str]], state: list[dict[str, Any]] | None = None) -> list[Call]:
    """The calls the plan allows, as (endpoint, timeframe start, timeframe end, ids) in wall time."""
    from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer

    catalog = ConfiguredAirbyteCatalogSerializer.load({"streams": [catalog_entry(name, mode) for name, mode in streams]})
    messages: list[AirbyteStateMessage] = [AirbyteStateMessageSerializer.load(m) for m in state or []]
    source = SourceKlaviyoSegments(catalog=catalog, config=config, state=messages)
    calls = []
    for plan in planned_read(source, catalog, messages).plans:
        endpoint = "values" if plan.kind == "values_timeframes" else "series"
        for call in plan.calls[: plan.allowed]:
            if call.window_start is not None and call.window_end is not None:
                start, end = call.window_start.isoformat(), (call.window_end - dt.timedelta(seconds=1)).isoformat()
            else:
                request = (call.values_timeframe or {}).get("request_timeframe") or {}
                start, end = str(request.get("start", request.get("key")))[:19], str(request.get("end", ""))[:19]
            calls.append((endpoint, start, end, call.segment_ids))
    return calls


def made(emu: Emulator) -> list[Call]:
    calls = []
    for call in emu.report_calls(status=None):
        timeframe = call.timeframe or {}
        start = str(timeframe.get("start", timeframe.get("key")))[:19]
        calls.append((call.endpoint, start, str(timeframe.get("end", ""))[:19], tuple(call.segment_ids)))
    return calls


def emulator(**overrides: Any) -> Emulator:
    settings: dict[str, Any] = {
        "segments": 230,
        "now": NOW,
        "created_spread": (dt.datetime(2024, 6, 1), dt.datetime(2025, 1, 31)),
        **overrides,
    }
    return Emulator(EmulatorConfig(**settings))


@pytest.mark.parametrize("timezone_known", [True, False], ids=["timezone", "no-timezone"])
def test_a_fresh_read_across_a_fall_back_makes_its_plans_calls(tmp_path: Path, timezone_known: bool) -> None:
    # Daily over New York's 2024-11-03 fall-back, segments created along the way: the plan's window
    # ends follow the creations, and one window must be a day short in elapsed time.
    with emulator(accounts_scope=timezone_known) as emu:
        config = config_for(emu, start_date="2024-06-01", end_date="2025-02-15", values_timeframe="custom")
        expected = planned(config, ALL_REPORTS)
        run = run_connector(tmp_path, "read", config, ALL_REPORTS, timeout=300)
        assert run.returncode == 0, run.errors()
        assert made(emu) == expected
    assert len(expected) > 10


@pytest.mark.parametrize("timezone_known", [True, False], ids=["timezone", "no-timezone"])
def test_an_hourly_read_across_a_fall_back_makes_its_plans_calls(tmp_path: Path, timezone_known: bool) -> None:
    spread = (dt.datetime(2024, 10, 20), dt.datetime(2024, 11, 20))
    with emulator(accounts_scope=timezone_known, segments=120, created_spread=spread) as emu:
        config = config_for(emu, start_date="2024-10-25", end_date="2024-11-16", interval="hourly")
        expected = planned(config, SERIES)
        run = run_connector(tmp_path, "read", config, SERIES, timeout=300)
        assert run.returncode == 0, run.errors()
        assert made(emu) == expected


def test_a_resumed_read_makes_its_plans_calls(tmp_path: Path) -> None:
    with emulator() as emu:
        config = config_for(emu, start_date="2024-06-01", end_date="2024-12-01")
        first = run_connector(tmp_path, "read", {**config, "end_date": "2024-09-10"}, SERIES, timeout=300)
        assert first.returncode == 0, first.errors()
        state = [first.of("STATE")[-1]["state"]]
        emu.reset_calls()
        expected = planned(config, SERIES, state)
        second = run_connector(tmp_path, "read", config, SERIES, state=state, timeout=300)
        assert second.returncode == 0, second.errors()
        assert made(emu) == expected
    # It starts at the saved state less the default one-day lookback.
    cursor = dt.datetime.fromisoformat(state[0]["stream"]["stream_state"]["date_time"])
    assert expected[0][1] == (cursor - dt.timedelta(days=1)).isoformat()


def test_max_report_requests_stops_the_read_where_its_plan_says(tmp_path: Path) -> None:
    with emulator() as emu:
        config = config_for(emu, start_date="2024-06-01", end_date="2025-02-15", max_report_requests=7)
        expected = planned(config, ALL_REPORTS)
        run = run_connector(tmp_path, "read", config, ALL_REPORTS, timeout=300)
        # From no state, the series read cut short ends in the sentence that says so.
        assert run.returncode == 1 and run.errors()[0]["message"].startswith("`max_report_requests` (7) stopped segment_series")
        assert made(emu) == expected
    assert 0 < len(expected) <= 7


def test_the_daily_quota_stops_the_read_within_its_plan(tmp_path: Path) -> None:
    limits = RateLimits(burst=1000, steady=1000, daily=5)
    with emulator(limits=limits) as emu:
        config = config_for(emu, start_date="2024-06-01", end_date="2025-02-15")
        expected = planned(config, SERIES)
        run = run_connector(tmp_path, "read", config, SERIES, timeout=300)
        assert run.returncode != 0
        answered = [call for call, record in zip(made(emu), emu.report_calls(status=None), strict=True) if record.status == 200]
    # The calls it made are the plan's first ones, and after the quota's 429 it asks for nothing more.
    assert answered == expected[:5]
    assert len(made(emu)) == 6
