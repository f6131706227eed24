"""The modes: one per reading Klaviyo's documentation leaves open (EmulatorConfig fields, CLI
flags), each served as it says and followed by the oracle, alone and all together in every zone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from klaviyo_emulator import Emulator, EmulatorConfig
from klaviyo_emulator.tests.support import (
    ALL_STATS,
    CAPS,
    HEADERS,
    SERIES,
    VALUES,
    error_of,
    make,
    post,
    series_body,
    series_table,
    values_body,
    values_table,
)


def test_default_data_is_unchanged_by_the_modes() -> None:
    """Digest of truth values and segment attributes computed before the modes existed."""
    expected = {"America/New_York": "128598af36961a158764f70fe15dd63c9dac5d46de711aa1609d33e66fcd3f74",
                "Australia/Sydney": "538e49f45b58e7825d7443ccb27cafbc6c7690016608719aeb174bd50262c3fc"}
    for zone, digest in expected.items():
        emulator = make(timezone=zone)
        parts: list[Any] = []
        for interval, a, b in [("hourly", datetime(2024, 11, 1), datetime(2024, 11, 8)),
                               ("daily", datetime(2023, 6, 1), datetime(2023, 8, 1)),
                               ("weekly", datetime(2024, 1, 1), datetime(2024, 12, 1)),
                               ("monthly", datetime(2023, 6, 1), datetime(2025, 3, 2))]:
            parts.append(sorted((list(k), v) for k, v in emulator.truth_series(interval, a, b).items()))
        parts.append(sorted(emulator.truth_values("last_365_days").items()))
        parts.append(sorted(emulator.truth_values((datetime(2024, 3, 9, 5), datetime(2024, 3, 11, 7))).items()))
        parts.append([(s.id, s.name, s.created, s.updated, s.is_active) for s in emulator.data.segments])
        assert hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest() == digest, zone


def test_config_rejects_unknown_modes() -> None:
    for field_name in ("cap_mode", "week_start", "date_times_in", "before_creation", "edges"):
        with pytest.raises(ValueError, match=field_name):
            bogus: dict[str, Any] = {field_name: "bogus"}
            EmulatorConfig(**bogus)
    with pytest.raises(ValueError):
        EmulatorConfig(created_spread=(datetime(2024, 2, 1), datetime(2024, 1, 1)))


@pytest.mark.parametrize("start, end, pointer", [
    ("2024-01-01T00:00:00", "2024-01-05T00:00:00Z", "/data/attributes/timeframe/start"),
    ("2024-01-01T00:00:00+00:00", "2024-01-05T00:00:00", "/data/attributes/timeframe/end"),
])
def test_require_offset_refuses_naive_timeframes(emu: Emulator, start: str, end: str, pointer: str) -> None:
    for path, body in ((SERIES, series_body()), (VALUES, values_body({"key": "today"}))):
        body["data"]["attributes"]["timeframe"] = {"start": start, "end": end}
        response = post(emu, path, body)
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert error["code"] == "invalid" and error["source"] == {"pointer": pointer}
        assert "RFC 3339" in error["detail"] and "offset" in error["detail"]


def test_require_offset_false_accepts_naive_and_reads_the_same_wall_time(emu: Emulator) -> None:
    ids = emu.segment_ids[:3]
    with make(require_offset=False) as lenient:
        body = series_body(ids=ids)
        body["data"]["attributes"]["timeframe"] = {"start": "2024-02-01T00:00:00", "end": "2024-02-05T00:00:00"}
        naive = series_table(post(lenient, SERIES, body))
    assert naive == series_table(post(emu, SERIES, series_body("2024-02-01T00:00:00-05:00",
                                                               "2024-02-05T00:00:00+09:00", ids=ids)))


@pytest.mark.parametrize(("cap_mode", "interval", "start", "end", "status"), [
    # fall-back inside: elapsed is an hour longer than wall
    ("elapsed", "daily", "2024-10-01T00:00:00", "2024-11-29T23:59:59", 400),
    ("wall", "daily", "2024-10-01T00:00:00", "2024-11-29T23:59:59", 200),
    ("wall", "daily", "2024-10-01T00:00:00", "2024-11-30T00:00:01", 400),
    ("elapsed", "hourly", "2024-11-01T00:00:00", "2024-11-07T23:59:59", 400),
    ("wall", "hourly", "2024-11-01T00:00:00", "2024-11-08T00:00:00", 200),
    # spring-forward inside: elapsed is an hour shorter than wall
    ("elapsed", "daily", "2024-02-01T00:00:00", "2024-04-01T00:30:00", 200),
    ("wall", "daily", "2024-02-01T00:00:00", "2024-04-01T00:30:00", 400),
    ("elapsed", "hourly", "2024-03-05T00:00:00", "2024-03-12T00:30:00", 200),
    ("wall", "hourly", "2024-03-05T00:00:00", "2024-03-12T00:30:00", 400),
])
def test_cap_mode(cap_mode: str, interval: str, start: str, end: str, status: int) -> None:
    with make(segments=2, cap_mode=cap_mode) as emulator:
        response = post(emulator, SERIES, series_body(start, end, interval))
        assert response.status_code == status, response.text
        if status == 400:
            assert f"If {interval} is used" in error_of(response)["detail"]


def test_week_start_sunday() -> None:
    with make(segments=4, week_start="sunday") as emulator:
        ids = emulator.segment_ids
        # 2024-01-03 is a Wednesday: its Sunday-started week begins 2023-12-31.
        stamps = post(emulator, SERIES, series_body("2024-01-03T00:00:00", "2024-01-15T00:00:00", "weekly", ids)).json()
        assert stamps["data"]["attributes"]["date_times"] == [
            "2023-12-31T00:00:00-05:00", "2024-01-07T00:00:00-05:00", "2024-01-14T00:00:00-05:00"]
        served = series_table(post(emulator, SERIES, series_body("2024-01-03T00:00:00", "2024-12-01T00:00:00",
                                                                 "weekly", ids)))
        assert served == emulator.truth_series("weekly", datetime(2023, 12, 31), datetime(2024, 12, 1, 0, 0, 1), ids)
        assert all(datetime.fromisoformat(stamp).weekday() == 6 for _, stamp in served)
        # NOW is Saturday 2025-03-01: this week began Sunday 23 February.
        assert emulator.resolve_timeframe_key("this_week") == (datetime(2025, 2, 23), datetime(2025, 3, 2))
        assert emulator.resolve_timeframe_key("last_week") == (datetime(2025, 2, 16), datetime(2025, 2, 23))
        for key in ("this_week", "last_week"):
            assert values_table(post(emulator, VALUES, values_body({"key": key}))) == emulator.truth_values(key), key
        keyed = series_table(post(emulator, SERIES, {"data": {"type": "segment-series-report", "attributes": {
            "statistics": ALL_STATS, "timeframe": {"key": "last_week"}, "interval": "daily"}}}))
        assert sorted({stamp[:10] for _, stamp in keyed}) == [f"2025-02-{d}" for d in range(16, 23)]
    with make(segments=1) as monday:
        assert monday.resolve_timeframe_key("this_week") == (datetime(2025, 2, 24), datetime(2025, 3, 3))


def test_date_times_in_utc() -> None:
    with make(segments=4, date_times_in="utc") as emulator, make(segments=4) as company:
        ids = emulator.segment_ids
        document = post(emulator, SERIES, series_body("2024-01-05T00:00:00", "2024-01-06T00:00:00", ids=ids)).json()
        assert document["data"]["attributes"]["date_times"] == ["2024-01-05T05:00:00+00:00",
                                                                "2024-01-06T05:00:00+00:00"]
        served = series_table(post(emulator, SERIES, series_body("2024-11-01T00:00:00", "2024-11-05T23:00:00",
                                                                 "hourly", ids)))
        # The oracle writes keys the way the server does in this mode.
        assert served == emulator.truth_series("hourly", datetime(2024, 11, 1), datetime(2024, 11, 5, 23, 0, 1), ids)
        assert all(stamp.endswith("+00:00") for _, stamp in served)
        # bucket_key maps either form to the oracle's form; the numbers equal the company-offset run's.
        company_rows = series_table(post(company, SERIES, series_body("2024-11-01T00:00:00", "2024-11-05T23:00:00",
                                                                      "hourly", ids)))
        assert {(sid, emulator.bucket_key(stamp)): stats for (sid, stamp), stats in company_rows.items()} == served
        assert emulator.bucket_key("2024-11-03T01:00:00-05:00") == "2024-11-03T06:00:00+00:00"
        assert emulator.bucket_key("2024-11-03T06:00:00+00:00", "company") == "2024-11-03T01:00:00-05:00"
        assert company.bucket_key("2024-11-03T06:00:00Z") == "2024-11-03T01:00:00-05:00"
        assert len(served) == 4 * (5 * 24 + 1)


CREATED = (datetime(2024, 1, 10, 6, 30), datetime(2024, 1, 20, 18, 30))


def test_created_spread_segments() -> None:
    with make(segments=5, created_spread=CREATED) as emulator:
        items = requests.get(emulator.base_url + "/api/segments", headers=HEADERS, timeout=10).json()["data"]
        assert [item["id"] for item in items] == emulator.segment_ids
        created = [item["attributes"]["created"] for item in items]
        assert created[0] == "2024-01-10T06:30:00-05:00" and created[-1] == "2024-01-20T18:30:00-05:00"
        instants = [datetime.fromisoformat(c).timestamp() for c in created]
        gaps = {round(b - a) for a, b in zip(instants, instants[1:], strict=False)}
        assert gaps == {round((instants[-1] - instants[0]) / 4)}
        for item in items:
            assert item["attributes"]["updated"] >= item["attributes"]["created"]
    # Sydney: spread in elapsed time across the 6 October spring-forward (47 hours), company offsets written.
    with make(segments=3, timezone="Australia/Sydney", created_spread=(datetime(2024, 10, 5), datetime(2024, 10, 7)),
              ) as sydney:
        created = [s.created for s in sydney.data.segments]
        assert created == ["2024-10-05T00:00:00+10:00", "2024-10-05T23:30:00+10:00", "2024-10-07T00:00:00+11:00"]


def test_created_times_segments() -> None:
    """Uneven creation (the bench's backfills): each segment, in id order, created at its own wall time;
    one created before the data starts keeps the historical numbers, a later one counts 0 before it."""
    times = (datetime(2022, 3, 1, 9), datetime(2024, 1, 15, 12), datetime(2024, 1, 15, 12, 30))
    with make(segments=3, created_times=times, now=datetime(2024, 2, 1)) as emulator, make(segments=3) as plain:
        items = requests.get(emulator.base_url + "/api/segments", headers=HEADERS, timeout=10).json()["data"]
        assert [item["attributes"]["created"] for item in items] == [
            "2022-03-01T09:00:00-05:00", "2024-01-15T12:00:00-05:00", "2024-01-15T12:30:00-05:00"]
        window = ("daily", datetime(2024, 1, 1), datetime(2024, 1, 20))
        old, late = emulator.segment_ids[0], emulator.segment_ids[1]
        truth, historical = emulator.truth_series(*window), plain.truth_series(*window)
        assert {k: v for k, v in truth.items() if k[0] == old} == {k: v for k, v in historical.items() if k[0] == old}
        assert truth[(late, "2024-01-14T00:00:00-05:00")] == dict.fromkeys(ALL_STATS, 0)
    with pytest.raises(ValueError, match="one time per segment"):
        EmulatorConfig(segments=2, created_times=times)
    with pytest.raises(ValueError, match="not both"):
        EmulatorConfig(segments=3, created_times=times, created_spread=CREATED)


@pytest.mark.parametrize("mode", ["zero", "null"])
def test_before_creation(mode: str) -> None:
    with make(segments=5, created_spread=CREATED, before_creation=mode, now=datetime(2024, 2, 20, 12)) as emulator:
        ids = emulator.segment_ids
        first = ids[0]  # created 2024-01-10 06:30
        hourly = series_table(post(emulator, SERIES, series_body("2024-01-10T04:00:00", "2024-01-10T09:00:00",
                                                                 "hourly", [first])))
        before = hourly[(first, "2024-01-10T05:00:00-05:00")]
        empty = None if mode == "null" else 0
        assert before == dict.fromkeys(ALL_STATS, empty)
        at = hourly[(first, "2024-01-10T06:00:00-05:00")]  # the hour holding the creation counts
        assert at["total_members"] == at["net_members_changed"] >= 0
        daily = series_table(post(emulator, SERIES, series_body("2024-01-01T00:00:00", "2024-02-15T00:00:00",
                                                                ids=ids)))
        finals = []
        for index, sid in enumerate(ids):
            rows = sorted((stamp, stats) for (s, stamp), stats in daily.items() if s == sid)
            created_day = emulator.data.segments[index].created[:10]
            previous = 0
            for stamp, stats in rows:
                if stamp[:10] < created_day:
                    assert stats == dict.fromkeys(ALL_STATS, empty), (sid, stamp)
                    continue
                # The creation day holds only the hours from the creation hour on; the total grows from 0.
                assert stats["total_members"] - previous == stats["net_members_changed"]
                assert stats["total_members"] >= 0
                previous = stats["total_members"]
            finals.append(previous)
        assert any(finals)  # segments grow from 0 (a shrinking one may stay at 0: it never goes below)
        # The oracle agrees, nulls included.
        assert daily == emulator.truth_series("daily", datetime(2024, 1, 1), datetime(2024, 2, 15, 0, 0, 1))
        # Values: a timeframe ending at or before the creation instant.
        early = values_table(post(emulator, VALUES, values_body({"start": "2024-01-01T00:00:00",
                                                                 "end": "2024-01-10T05:00:00"}, [first])))
        assert early == {first: dict.fromkeys(ALL_STATS, empty)}
        assert early == emulator.truth_values((datetime(2024, 1, 1), datetime(2024, 1, 10, 6)), [first])
        spanning = values_table(post(emulator, VALUES, values_body({"start": "2024-01-01T00:00:00",
                                                                    "end": "2024-01-31T00:00:00"}, ids)))
        assert spanning == emulator.truth_values((datetime(2024, 1, 1), datetime(2024, 1, 31, 1)), ids)
        assert all(stats["total_members"] == stats["net_members_changed"] for stats in spanning.values())


def test_created_spread_keeps_old_segments_data() -> None:
    """Segments created before the data starts keep the historical numbers."""
    spread = (datetime(2023, 1, 1), datetime(2023, 5, 1))
    with make(segments=4, created_spread=spread) as spread_emu, make(segments=4) as plain:
        window = ("daily", datetime(2024, 1, 1), datetime(2024, 2, 1))
        assert spread_emu.truth_series(*window) == plain.truth_series(*window)
        served = series_table(post(spread_emu, SERIES, series_body("2024-01-01T00:00:00", "2024-01-31T00:00:00")))
        assert served == plain.truth_series(*window)


def _edge_window(emulator: Emulator, interval: str, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[lo, hi) on bucket start wall times that a custom timeframe covers in emulator.config.edges
    (computed here from the documented contract, apart from the serving path)."""
    week_first = 6 if emulator.config.week_start == "sunday" else 0

    def floor(wall: datetime) -> datetime:
        day = datetime(wall.year, wall.month, wall.day)
        return {"hourly": wall.replace(minute=0, second=0, microsecond=0), "daily": day,
                "weekly": day - timedelta(days=(day.weekday() - week_first) % 7),
                "monthly": day.replace(day=1)}[interval]

    def following(bucket: datetime) -> datetime:
        if interval == "monthly":
            return datetime(bucket.year + bucket.month // 12, bucket.month % 12 + 1, 1)
        return bucket + {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(days=7)}[interval]

    tiny = timedelta(microseconds=1)
    edges = emulator.config.edges
    if edges == "strict":
        return start, end + tiny
    if edges == "generous":
        return floor(start), following(floor(end)) + tiny
    return floor(start), end + tiny


@pytest.mark.parametrize("edges", ["inclusive", "strict", "generous"])
def test_edges_modes(edges: str) -> None:
    with make(segments=3, edges=edges) as emulator:
        ids = emulator.segment_ids
        daily = post(emulator, SERIES, series_body("2024-01-01T12:00:00", "2024-01-05T06:00:00", ids=ids)).json()
        expected_days = {"inclusive": ["01", "02", "03", "04", "05"], "strict": ["02", "03", "04", "05"],
                         "generous": ["01", "02", "03", "04", "05", "06"]}[edges]
        assert [stamp[8:10] for stamp in daily["data"]["attributes"]["date_times"]] == expected_days
        aligned = post(emulator, SERIES, series_body("2024-01-01T00:00:00", "2024-01-05T00:00:00", ids=ids)).json()
        assert len(aligned["data"]["attributes"]["date_times"]) == (6 if edges == "generous" else 5)
        for interval, start, end in (("daily", datetime(2024, 1, 1, 12), datetime(2024, 1, 5, 6)),
                                     ("weekly", datetime(2024, 1, 3), datetime(2024, 3, 6, 12)),
                                     ("monthly", datetime(2024, 2, 10), datetime(2024, 6, 1)),
                                     ("hourly", datetime(2024, 11, 2, 22, 30), datetime(2024, 11, 3, 3, 15))):
            served = series_table(post(emulator, SERIES, series_body(start.isoformat(), end.isoformat(), interval)))
            assert served == emulator.truth_series(interval, *_edge_window(emulator, interval, start, end)), interval
        values = values_table(post(emulator, VALUES, values_body({"start": "2024-01-01T12:30:00",
                                                                  "end": "2024-01-05T06:15:00"})))
        lo, hi = {"inclusive": (datetime(2024, 1, 1, 12), datetime(2024, 1, 5, 7)),
                  "strict": (datetime(2024, 1, 1, 12, 30), datetime(2024, 1, 5, 7)),
                  "generous": (datetime(2024, 1, 1, 12), datetime(2024, 1, 5, 8))}[edges]
        assert values == emulator.truth_values((lo, hi))
        # Keys stay [start, end) in every mode.
        assert values_table(post(emulator, VALUES, values_body({"key": "last_30_days"}))) == emulator.truth_values(
            "last_30_days")


# A timeframe after the emulator's clock (`now`): Klaviyo's docs do not say what it answers.
FUTURE = ("2026-06-01T00:00:00", "2026-06-10T00:00:00")
NO_CHANGE = dict.fromkeys(("members_added", "members_removed", "net_members_changed"), 0)


def test_future_timeframe_empty_answers_no_buckets_and_no_change() -> None:
    """The default reading: buckets only up to now, so a series report wholly after it has no
    date_times and an empty list per statistic; a values report counts over the part up to now
    (none of it: no change, and the members each segment holds now)."""
    assert EmulatorConfig().future_timeframe == "empty"
    with pytest.raises(ValueError, match="future_timeframe"):
        EmulatorConfig(future_timeframe="bogus")
    with make(segments=3) as emulator:
        ids = emulator.segment_ids
        for interval in ("hourly", "daily", "weekly", "monthly"):
            end = "2026-06-03T00:00:00" if interval == "hourly" else FUTURE[1]  # within the hourly cap
            response = post(emulator, SERIES, series_body(FUTURE[0], end, interval, ids))
            assert response.status_code == 200, response.text
            attributes = response.json()["data"]["attributes"]
            assert attributes["date_times"] == [], interval
            assert sorted(result["groupings"]["segment_id"] for result in attributes["results"]) == ids
            assert all(result["statistics"] == dict.fromkeys(ALL_STATS, []) for result in attributes["results"])
        future = values_table(post(emulator, VALUES, values_body({"start": FUTURE[0], "end": FUTURE[1]})))
        # NOW is 2025-03-01 12:00: this timeframe's last hour is the one holding now.
        until_now = values_table(post(emulator, VALUES, values_body({"start": "2025-03-01T00:00:00",
                                                                     "end": "2025-03-01T12:00:00"})))
        assert set(future) == set(ids)
        for sid in ids:
            assert {name: future[sid][name] for name in NO_CHANGE} == NO_CHANGE
            assert future[sid]["total_members"] == until_now[sid]["total_members"]
        # A timeframe across now: counted up to now.
        across = values_table(post(emulator, VALUES, values_body({"start": "2025-02-20T00:00:00",
                                                                  "end": "2025-03-20T00:00:00"})))
        assert across == emulator.truth_values((datetime(2025, 2, 20), datetime(2025, 3, 20)))
        assert any(stats["members_added"] for stats in across.values())


def test_future_timeframe_refuse_says_the_timeframe_is_in_the_future() -> None:
    """"refuse": a custom timeframe whose start is after now gets a 400 naming both times; one that
    starts at or before now is served up to now as in the default reading, and so are keys."""
    with make(segments=3, future_timeframe="refuse") as refusing, make(segments=3) as serving:
        for path, body in ((SERIES, series_body(*FUTURE)), (VALUES, values_body({"start": FUTURE[0], "end": FUTURE[1]}))):
            response = post(refusing, path, body)
            assert response.status_code == 400, response.text
            error = error_of(response)
            assert error["code"] == "invalid" and error["title"] == "Invalid input."
            assert error["source"] == {"pointer": "/data/attributes/timeframe/start"}
            assert "in the future" in error["detail"], error["detail"]
            assert "2026-06-01T00:00:00" in error["detail"] and "2025-03-01T12:00:00" in error["detail"]
        # The line is now itself: a start a second after it is refused, a start at it is served.
        late = post(refusing, SERIES, series_body("2025-03-01T12:00:01", "2025-03-02T00:00:00", "hourly"))
        assert late.status_code == 400 and "in the future" in error_of(late)["detail"]
        at_now = series_body("2025-03-01T12:00:00", "2025-03-02T00:00:00", "hourly")
        served = series_table(post(refusing, SERIES, at_now))
        assert served == series_table(post(serving, SERIES, at_now))
        assert {stamp for _, stamp in served} == {"2025-03-01T12:00:00-05:00"}
        across = series_body("2025-02-20T00:00:00", "2025-03-20T00:00:00")
        assert series_table(post(refusing, SERIES, across)) == series_table(post(serving, SERIES, across))
        # Keys resolve at now, so they never start after it: this_month ends after now and is served.
        assert values_table(post(refusing, VALUES, values_body({"key": "this_month"}))) == refusing.truth_values(
            "this_month")


# Every mode in every zone: random windows, served answers against the oracle.
MODE_ZONES = ["Asia/Tokyo", "America/New_York", "Europe/London", "Australia/Sydney"]


_MODE_EMULATORS: dict[tuple[Any, ...], Emulator] = {}


@pytest.fixture(scope="module")
def mode_emulators() -> Iterator[dict[tuple[Any, ...], Emulator]]:
    yield _MODE_EMULATORS
    for emulator in _MODE_EMULATORS.values():
        emulator.stop()
    _MODE_EMULATORS.clear()


def _mode_emulator(cache: dict[tuple[Any, ...], Emulator], *key: Any) -> Emulator:
    if key not in cache:
        zone, week_start, date_times_in, edges, before_creation, cap_mode = key
        cache[key] = make(segments=4, timezone=zone, week_start=week_start, date_times_in=date_times_in, edges=edges,
                          before_creation=before_creation, cap_mode=cap_mode,
                          created_spread=(datetime(2023, 5, 1), datetime(2024, 9, 1))).start()
    return cache[key]


def _unambiguous(zone: str, wall: datetime) -> bool:
    tz = ZoneInfo(zone)
    return wall.replace(tzinfo=tz, fold=0).utcoffset() == wall.replace(tzinfo=tz, fold=1).utcoffset()


@settings(max_examples=40, deadline=None)
@given(zone=st.sampled_from(MODE_ZONES), week_start=st.sampled_from(["monday", "sunday"]),
       date_times_in=st.sampled_from(["company", "utc"]), edges=st.sampled_from(["inclusive", "strict", "generous"]),
       before_creation=st.sampled_from(["zero", "null"]), cap_mode=st.sampled_from(["elapsed", "wall"]),
       interval=st.sampled_from(list(CAPS)), start=st.datetimes(datetime(2023, 6, 1), datetime(2025, 3, 5)),
       share=st.floats(0.001, 0.98))
def test_every_mode_in_every_zone_matches_truth(
    mode_emulators: dict[tuple[Any, ...], Emulator], zone: str, week_start: str, date_times_in: str, edges: str,
    before_creation: str, cap_mode: str, interval: str, start: datetime, share: float,
) -> None:
    emu = _mode_emulator(mode_emulators, zone, week_start, date_times_in, edges, before_creation, cap_mode)
    start = start.replace(second=0, microsecond=0)
    end = (start + max(timedelta(minutes=1), CAPS[interval] * share)).replace(second=0, microsecond=0)
    hour_after_end = end.replace(minute=0) + timedelta(hours=1)
    # The oracle takes wall times; a generous hourly/values window ending next to a repeated (fall-back)
    # hour cannot be written as a wall range.
    assume(edges != "generous" or (_unambiguous(zone, hour_after_end) and _unambiguous(zone, end.replace(minute=0))))
    response = post(emu, SERIES, series_body(start.isoformat(), end.isoformat(), interval))
    served = series_table(response)
    assert served == emu.truth_series(interval, *_edge_window(emu, interval, start, end))
    suffix = "+00:00" if date_times_in == "utc" else ""
    assert all(stamp.endswith(suffix) and emu.bucket_key(stamp) == stamp for _, stamp in served)
    values = values_table(post(emu, VALUES, values_body({"start": start.isoformat(), "end": end.isoformat()})))
    floor_start = start.replace(minute=0)
    lo = start if edges == "strict" else floor_start
    hi = hour_after_end + (timedelta(hours=1) if edges == "generous" else timedelta())
    assert values == emu.truth_values((lo, hi))
