"""The installed connector against the emulator: every row Klaviyo's truth has, exactly once,
at the fewest calls, for every stream and interval, across incremental syncs."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
from openapi_client.models.segment_series_request_dto import SegmentSeriesRequestDTO
from openapi_client.models.segment_values_request_dto import SegmentValuesRequestDTO

from integration_tests.conftest import config_for, run_connector
from klaviyo_emulator import Emulator

STATISTICS = ("total_members", "members_added", "members_removed", "net_members_changed")


def series_by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    keyed: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["segment_id"], row["date_time"])
        assert key not in keyed, f"bucket emitted twice: {key}"
        keyed[key] = {s: row[s] for s in STATISTICS if s in row}
    return keyed


def assert_bodies_accepted(emu: Emulator) -> None:
    for call in emu.report_calls(status=None):
        assert call.status == 200, (call.status, call.body)
        assert len(call.segment_ids) <= 100
        model = SegmentSeriesRequestDTO if call.endpoint == "series" else SegmentValuesRequestDTO
        model.from_dict(call.body)


@pytest.mark.parametrize("emulator", [250], indirect=True)
def test_250_segments_400_days_daily_21_calls_each_row_once(emulator: Emulator, tmp_path: Path) -> None:
    config = config_for(emulator, start_date="2024-01-01", end_date="2025-02-04")
    run = run_connector(tmp_path, "read", config, [("segment_series", "incremental")])
    assert run.returncode == 0, run.errors() or run.stderr[-2000:]
    series_calls = emulator.report_calls(status=None)
    assert len(series_calls) == math.ceil(250 / 100) * math.ceil(400 / 60) == 21
    assert_bodies_accepted(emulator)
    truth = emulator.truth_series("daily", dt.datetime(2024, 1, 1), dt.datetime(2025, 2, 4))
    got = series_by_key(run.records("segment_series"))
    assert len(got) == 250 * 400 == len(truth)
    assert got == truth
    assert run.states()[-1]["stream"]["stream_state"] == {"date_time": "2025-02-03T00:00:00"}


@pytest.mark.parametrize("emulator", [130], indirect=True)
def test_segments_and_values_are_complete(emulator: Emulator, tmp_path: Path) -> None:
    config = config_for(emulator, values_timeframe="last_30_days")
    run = run_connector(tmp_path, "read", config, [("segments", "full_refresh"), ("segment_values", "full_refresh")])
    assert run.returncode == 0, run.errors() or run.stderr[-2000:]
    segments = run.records("segments")
    assert sorted(s["id"] for s in segments) == sorted(emulator.segment_ids)
    assert all("definition" not in s and s["name"] for s in segments)
    values = {r["segment_id"]: {s: r[s] for s in STATISTICS} for r in run.records("segment_values")}
    assert values == emulator.truth_values("last_30_days")
    assert {r["timeframe"] for r in run.records("segment_values")} == {"last_30_days"}
    assert len(emulator.report_calls(status=None)) == 2
    assert_bodies_accepted(emulator)


@pytest.mark.parametrize(
    ("interval", "start", "end"),
    [
        ("hourly", "2024-11-01", "2024-11-12"),  # crosses the end of daylight-saving time
        ("weekly", "2023-06-01", "2025-02-24"),
        ("monthly", "2023-06-01", "2025-03-01"),
        ("daily", "2024-03-01", "2024-03-20"),  # crosses the start of daylight-saving time
    ],
)
def test_every_interval_matches_the_truth(emulator: Emulator, tmp_path: Path, interval: str, start: str, end: str) -> None:
    config = config_for(emulator, interval=interval, start_date=start, end_date=end, segment_ids=emulator.segment_ids[:7])
    run = run_connector(tmp_path, "read", config, [("segment_series", "full_refresh")])
    assert run.returncode == 0, run.errors() or run.stderr[-2000:]
    assert_bodies_accepted(emulator)
    first = dt.datetime.fromisoformat(start)
    if interval == "weekly":  # the first whole week from Klaviyo's first day
        first += dt.timedelta(days=(7 - first.weekday()) % 7)
    truth = emulator.truth_series(interval, first, dt.datetime.fromisoformat(end), segment_ids=emulator.segment_ids[:7])
    assert series_by_key(run.records("segment_series")) == truth


def test_incremental_second_sync_reads_only_new_buckets_and_the_lookback(emulator: Emulator, tmp_path: Path) -> None:
    base = config_for(emulator, start_date="2024-10-01", lookback_window_days=2)
    first = run_connector(tmp_path, "read", {**base, "end_date": "2025-01-15"}, [("segment_series", "incremental")])
    assert first.returncode == 0, first.errors()
    state = first.of("STATE")[-1]
    assert state["state"]["stream"]["stream_state"] == {"date_time": "2025-01-14T00:00:00"}
    emulator.reset_calls()

    second = run_connector(
        tmp_path, "read", {**base, "end_date": "2025-02-15"}, [("segment_series", "incremental")], state=[state["state"]]
    )
    assert second.returncode == 0, second.errors()
    starts = sorted(call.timeframe["start"] for call in emulator.report_calls(status=None))
    assert starts[0] == "2025-01-12T00:00:00-05:00"  # newest saved bucket minus the 2-day lookback
    second_rows = series_by_key(second.records("segment_series"))
    assert {k[1][:10] for k in second_rows} == {(dt.date(2025, 1, 12) + dt.timedelta(days=d)).isoformat() for d in range(34)}
    both = {**series_by_key(first.records("segment_series")), **second_rows}
    assert both == emulator.truth_series("daily", dt.datetime(2024, 10, 1), dt.datetime(2025, 2, 15))


def test_check_spec_and_discover(emulator: Emulator, tmp_path: Path) -> None:
    good = run_connector(tmp_path, "check", config_for(emulator), installed_script=True)
    assert good.of("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"

    wrong_key = run_connector(tmp_path, "check", {**config_for(emulator), "api_key": "pk_wrong"})
    status = wrong_key.of("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "401" in status["message"]

    no_scope = run_connector(tmp_path, "check", {**config_for(emulator), "api_key": emulator.config.no_scope_api_key})
    status = no_scope.of("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "segments:read" in status["message"]

    unknown = run_connector(tmp_path, "check", config_for(emulator, segment_ids=[emulator.segment_ids[0], "NOPE42"]))
    status = unknown.of("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "NOPE42" in status["message"]
    assert emulator.report_calls(status=None) == []  # check never spends report quota

    spec = run_connector(tmp_path, "spec", {}, installed_script=True)
    assert spec.of("SPEC")[0]["spec"]["connectionSpecification"]["required"] == ["api_key"]
    catalog = run_connector(tmp_path, "discover", config_for(emulator)).of("CATALOG")[0]["catalog"]
    assert [s["name"] for s in catalog["streams"]] == ["segments", "segment_values", "segment_series"]


def test_the_api_key_never_leaves_the_process_even_when_klaviyo_echoes_it(emulator: Emulator, tmp_path: Path) -> None:
    from klaviyo_emulator import Faults

    emulator.set_faults(Faults(echo_request_in_errors=True))
    secret = "pk_leaky_secret_0c7e1d"  # not the emulator's key: every call is answered 401, echoing it
    config = {**config_for(emulator, segment_ids=emulator.segment_ids[:2]), "api_key": secret}
    for command, streams in [("check", None), ("read", [("segment_series", "incremental")])]:
        run = run_connector(tmp_path, command, config, streams)
        assert any(secret in (call.headers.get("Authorization") or "") for call in emulator.calls)  # it was sent
        assert secret not in json.dumps(run.messages) and secret not in run.stderr
        assert run.errors() or run.of("CONNECTION_STATUS")


def test_a_two_year_backfill_of_250_segments_created_over_it_asks_only_about_existing_segments(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from klaviyo_emulator import EmulatorConfig

    start, end = dt.datetime(2023, 6, 1), dt.datetime(2025, 6, 1)
    zone = ZoneInfo("America/New_York")
    config_emulator = EmulatorConfig(
        segments=250, now=dt.datetime(2025, 6, 2), created_spread=(start, end - dt.timedelta(hours=1)), before_creation="zero"
    )
    with Emulator(config_emulator) as emu:
        run = run_connector(tmp_path, "read", config_for(emu, start_date="2023-06-01", end_date="2025-06-01"),
                            [("segment_series", "incremental")], timeout=600)
        assert run.returncode == 0, run.errors() or run.stderr[-2000:]
        assert_bodies_accepted(emu)
        created = {s.id: dt.datetime.fromisoformat(s.created) for s in emu.data.segments}

        # Klaviyo's 60-day daily cap, in wall and in elapsed time: the range holds New York fall-backs,
        # and a 60-day window holding one is an hour too long in elapsed time. The fewest calls any
        # plan of day-aligned windows can make, by brute force over every window end (a window asks
        # about the segments created before it ends, 100 a call), written here, not taken from the
        # connector. Python subtracts two times of one zone as wall times, hence UTC.
        def fits(at: dt.datetime, following: dt.datetime) -> bool:
            instants = following.replace(tzinfo=zone).astimezone(dt.timezone.utc) - at.replace(tzinfo=zone)
            return following - at <= dt.timedelta(days=60) and instants <= dt.timedelta(days=60)

        days = [start + dt.timedelta(days=d) for d in range((end - start).days + 1)]

        def cost(j: int) -> int:
            return math.ceil(sum(born < days[j].replace(tzinfo=zone) for born in created.values()) / 100)

        fewest = [0] + [math.inf] * (len(days) - 1)
        for j in range(1, len(days)):
            fewest[j] = min(fewest[i] for i in range(max(0, j - 60), j) if fits(days[i], days[j])) + cost(j)
        expected_calls = fewest[-1]
        # 250 segments make a range where the longest windows from the start cost more: ending a
        # window before a batch of 100 fills up pays off, so only a plan that chooses its ends is minimal.
        forward, at = 0, 0
        while at < len(days) - 1:
            following = max(j for j in range(at + 1, len(days)) if fits(days[at], days[j]))
            forward, at = forward + cost(following), following
        assert expected_calls < forward
        every_segment_every_window = math.ceil(250 / 100) * math.ceil(len(days) / 60)
        assert len(emu.report_calls(status=None)) == expected_calls < every_segment_every_window * 0.7

        truth = emu.truth_series("daily", start, end)
        # From the bucket (a New York day) that holds each segment's creation on, Klaviyo's numbers.
        from_creation = {
            (segment_id, day): stats
            for (segment_id, day), stats in truth.items()
            if (dt.datetime.fromisoformat(day[:10]) + dt.timedelta(days=1)).replace(tzinfo=zone) > created[segment_id]
        }
        assert series_by_key(run.records("segment_series")) == from_creation
