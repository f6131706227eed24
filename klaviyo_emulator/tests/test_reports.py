"""What the report endpoints answer: buckets, their edges and the clock, the data's own
arithmetic, and the truth oracle against what is served.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from klaviyo_emulator import Emulator
from klaviyo_emulator.tests.support import (
    CAPS,
    HEADERS,
    SERIES,
    VALUES,
    make,
    post,
    series_body,
    series_table,
    values_body,
    values_table,
)

# --------------------------------------------------------------------------------------------
# Buckets and data


def test_custom_end_is_inclusive_and_start_floors(emu: Emulator) -> None:
    ids = emu.segment_ids[:2]
    daily = post(emu, SERIES, series_body("2024-01-01T00:00:00", "2024-01-10T00:00:00", ids=ids)).json()
    stamps = daily["data"]["attributes"]["date_times"]
    assert len(stamps) == 10
    assert stamps[0] == "2024-01-01T00:00:00-05:00" and stamps[-1] == "2024-01-10T00:00:00-05:00"
    hourly = post(emu, SERIES, series_body("2024-01-01T10:30:00", "2024-01-01T12:00:00", "hourly", ids)).json()
    assert hourly["data"]["attributes"]["date_times"] == [
        "2024-01-01T10:00:00-05:00", "2024-01-01T11:00:00-05:00", "2024-01-01T12:00:00-05:00"]
    weekly = post(emu, SERIES, series_body("2024-01-03T00:00:00", "2024-01-15T00:00:00", "weekly", ids)).json()
    assert weekly["data"]["attributes"]["date_times"] == [
        "2024-01-01T00:00:00-05:00", "2024-01-08T00:00:00-05:00", "2024-01-15T00:00:00-05:00"]


def test_offsets_are_ignored(emu: Emulator) -> None:
    ids = emu.segment_ids[:3]
    answers = [
        series_table(post(emu, SERIES, series_body(f"2024-02-01T00:00:00{offset}", f"2024-02-05T00:00:00{offset}",
                                                   ids=ids)))
        for offset in ("Z", "+00:00", "-08:00", "+05:30", "-05:00")
    ]
    assert all(answer == answers[0] for answer in answers)
    assert min(stamp for _, stamp in answers[0]) == "2024-02-01T00:00:00-05:00"


@pytest.mark.parametrize("day, hours", [("2024-03-10", 23), ("2024-11-03", 25), ("2024-11-04", 24)])
def test_dst_days_have_23_or_25_hourly_buckets(emu: Emulator, day: str, hours: int) -> None:
    body = series_body(f"{day}T00:00:00", f"{day}T23:00:00", "hourly", emu.segment_ids[:1])
    stamps = post(emu, SERIES, body).json()["data"]["attributes"]["date_times"]
    assert len(stamps) == hours
    assert len(set(stamps)) == hours
    if hours == 25:
        assert f"{day}T01:00:00-04:00" in stamps and f"{day}T01:00:00-05:00" in stamps


def test_hourly_sums_equal_daily_and_totals_match(emu: Emulator) -> None:
    ids = emu.segment_ids[:6]
    hourly = series_table(post(emu, SERIES, series_body("2024-11-01T00:00:00", "2024-11-07T23:00:00", "hourly", ids)))
    daily = series_table(post(emu, SERIES, series_body("2024-11-01T00:00:00", "2024-11-07T00:00:00", "daily", ids)))
    sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    last_total: dict[tuple[str, str], int] = {}
    for (sid, stamp), stats in sorted(hourly.items(), key=lambda kv: (kv[0][0], datetime.fromisoformat(kv[0][1]))):
        key = (sid, stamp[:10])
        for name in ("members_added", "members_removed", "net_members_changed"):
            sums[key][name] += stats[name]
        last_total[key] = stats["total_members"]
    assert len(daily) == 6 * 7
    assert any(stats["members_added"] for stats in daily.values())
    for (sid, stamp), stats in daily.items():
        key = (sid, stamp[:10])
        assert {name: sums[key][name] for name in sums[key]} == {
            n: stats[n] for n in ("members_added", "members_removed", "net_members_changed")}
        assert last_total[key] == stats["total_members"]


@pytest.mark.parametrize("interval, start, end", [
    ("daily", "2024-06-01T00:00:00", "2024-07-30T00:00:00"),
    ("weekly", "2024-01-01T00:00:00", "2024-12-01T00:00:00"),
    ("monthly", "2024-03-01T00:00:00", "2025-02-01T00:00:00"),
])
def test_total_members_moves_by_net(emu: Emulator, interval: str, start: str, end: str) -> None:
    body = series_body(start, end, interval)
    results = post(emu, SERIES, body).json()["data"]["attributes"]["results"]
    growing = shrinking = 0
    for result in results:
        totals, nets = result["statistics"]["total_members"], result["statistics"]["net_members_changed"]
        added, removed = result["statistics"]["members_added"], result["statistics"]["members_removed"]
        assert all(t >= 0 for t in totals)
        assert all(a - r == n for a, r, n in zip(added, removed, nets, strict=True))
        assert all(totals[i] - totals[i - 1] == nets[i] for i in range(1, len(totals)))
        growing += totals[-1] > totals[0]
        shrinking += totals[-1] < totals[0]
    assert growing and shrinking


def test_results_are_shuffled_but_complete(emu: Emulator) -> None:
    orders = [
        [r["groupings"]["segment_id"] for r in post(emu, SERIES, series_body()).json()["data"]["attributes"]["results"]]
        for _ in range(3)
    ]
    assert all(sorted(order) == emu.segment_ids for order in orders)
    assert any(order != emu.segment_ids for order in orders)


def test_only_requested_statistics(emu: Emulator) -> None:
    response = post(emu, SERIES, series_body(stats=["net_members_changed", "total_members"]))
    for result in response.json()["data"]["attributes"]["results"]:
        assert set(result["statistics"]) == {"net_members_changed", "total_members"}
    document = post(emu, VALUES, values_body({"key": "last_7_days"}, stats=["members_added"])).json()
    assert document["data"]["type"] == "segment-values-report"
    assert all(set(r["statistics"]) == {"members_added"} for r in document["data"]["attributes"]["results"])


def test_future_buckets_absent_and_partial_bucket_present(emu: Emulator) -> None:
    # NOW is 2025-03-01 12:00: the 1 March bucket holds 13 hours, later days do not exist yet.
    ids = emu.segment_ids[:4]
    stamps = post(emu, SERIES, series_body("2025-02-20T00:00:00", "2025-03-20T00:00:00", ids=ids)).json()
    assert stamps["data"]["attributes"]["date_times"][-1] == "2025-03-01T00:00:00-05:00"
    hourly = post(emu, SERIES, series_body("2025-03-01T00:00:00", "2025-03-02T00:00:00", "hourly", ids)).json()
    assert hourly["data"]["attributes"]["date_times"][-1] == "2025-03-01T12:00:00-05:00"


# --------------------------------------------------------------------------------------------
# Truth oracle


@pytest.mark.parametrize("interval, start, end", [
    ("daily", datetime(2024, 12, 1), datetime(2025, 1, 15)),
    ("daily", datetime(2025, 2, 1), datetime(2025, 3, 20)),  # runs past now
    ("hourly", datetime(2024, 11, 1), datetime(2024, 11, 7, 23)),  # fall-back day inside
    ("hourly", datetime(2024, 3, 8), datetime(2024, 3, 12)),  # spring-forward day inside
    ("weekly", datetime(2023, 6, 1), datetime(2024, 5, 1)),  # first bucket starts before the data
    ("monthly", datetime(2024, 3, 1), datetime(2025, 2, 20)),
])
def test_truth_series_matches_endpoint(emu: Emulator, interval: str, start: datetime, end: datetime) -> None:
    ids = emu.segment_ids[::3]
    served = series_table(post(emu, SERIES, series_body(start.isoformat(), end.isoformat(), interval, ids)))
    # The endpoint reads `end` inclusively and floors `start` to its bucket; the oracle is
    # [start, end) on bucket start times, so widen it by one bucket and floor its start.
    step = {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}.get(interval, timedelta(seconds=1))
    floor = {"weekly": start - timedelta(days=start.weekday()), "monthly": start.replace(day=1)}.get(interval, start)
    truth = emu.truth_series(interval, floor, end + step, ids)
    assert served == truth
    assert len(served) > len(ids)


ZONES = ["America/New_York", "Europe/London", "Asia/Kolkata", "UTC"]


@pytest.fixture(scope="module")
def zoned() -> Iterator[dict[str, Emulator]]:
    emulators = {zone: make(segments=4, timezone=zone).start() for zone in ZONES}
    yield emulators
    for emulator in emulators.values():
        emulator.stop()


def _bucket_floor(interval: str, wall: datetime) -> datetime:
    day = wall.replace(hour=0, minute=0, second=0, microsecond=0)
    return {"hourly": wall.replace(minute=0, second=0, microsecond=0), "daily": day,
            "weekly": day - timedelta(days=day.weekday()), "monthly": day.replace(day=1)}[interval]


@settings(max_examples=40, deadline=None)
@given(zone=st.sampled_from(ZONES), interval=st.sampled_from(list(CAPS)),
       start=st.datetimes(datetime(2023, 6, 1), datetime(2025, 3, 5)), share=st.floats(0.001, 1.0))
def test_random_windows_match_truth(zoned: dict[str, Emulator], zone: str, interval: str, start: datetime,
                                    share: float) -> None:
    emu = zoned[zone]
    start = start.replace(second=0, microsecond=0)
    end = start + max(timedelta(minutes=1), CAPS[interval] * share)
    end = end.replace(second=0, microsecond=0) if end.replace(second=0, microsecond=0) > start else end
    served = series_table(post(emu, SERIES, series_body(start.isoformat(), end.isoformat(), interval)))
    # Server: buckets starting in [floor(start), end]; oracle: [start, end) on bucket starts.
    assert served == emu.truth_series(interval, _bucket_floor(interval, start), end + timedelta(microseconds=1))
    values = values_table(post(emu, VALUES, values_body({"start": start.isoformat(), "end": end.isoformat()})))
    assert values == emu.truth_values((_bucket_floor("hourly", start), _bucket_floor("hourly", end) + timedelta(hours=1)))


def test_truth_series_end_is_exclusive(emu: Emulator) -> None:
    truth = emu.truth_series("daily", datetime(2024, 1, 1), datetime(2024, 1, 10), emu.segment_ids[:1],
                             ["members_added"])
    assert sorted(stamp for _, stamp in truth)[-1] == "2024-01-09T00:00:00-05:00"
    assert len(truth) == 9


def test_truth_values_matches_endpoint(emu: Emulator) -> None:
    ids = emu.segment_ids[:8]
    served = values_table(post(emu, VALUES, values_body({"start": "2025-01-01T00:00:00",
                                                         "end": "2025-01-31T00:00:00"}, ids)))
    # Inclusive end at 00:00 includes the hour starting then.
    assert served == emu.truth_values((datetime(2025, 1, 1), datetime(2025, 1, 31, 1)), ids)
    for key in ("last_30_days", "this_month", "last_year", "today"):
        served = values_table(post(emu, VALUES, values_body({"key": key}, ids)))
        assert served == emu.truth_values(key, ids), key
    assert emu.resolve_timeframe_key("last_7_days") == (datetime(2025, 2, 22), datetime(2025, 3, 1))


def test_a_repeated_series_report_gives_the_same_numbers() -> None:
    # The emulator caches series per segment; a cached answer must equal the first one.
    with make(segments=250) as big:
        body = series_body("2024-11-01T00:00:00", "2024-12-29T23:59:59", ids=big.segment_ids[:100])
        session = requests.Session()
        answers = []
        for _ in range(2):
            response = session.post(big.base_url + SERIES, data=json.dumps(body), headers=HEADERS)
            assert response.status_code == 200
            results = response.json()["data"]["attributes"]["results"]
            answers.append(sorted(json.dumps(r, sort_keys=True) for r in results))
        assert len(answers[0]) == 100 and answers[0] == answers[1]


@pytest.mark.parametrize(
    ("interval", "end", "status"),
    [
        ("daily", "2024-11-29T23:59:59", 400),  # 60 wall days, but an hour more in New York (Nov 3)
        ("daily", "2024-11-28T23:59:59", 200),
        ("hourly", "2024-11-07T23:59:59", 400),  # 7 wall days holding the fall-back
        ("hourly", "2024-11-07T22:59:59", 200),
    ],
)
def test_interval_caps_are_elapsed_time_in_the_company_zone(emu: Emulator, interval: str, end: str, status: int) -> None:
    start = "2024-10-01T00:00:00" if interval == "daily" else "2024-11-01T00:00:00"
    body = series_body(start, end, interval=interval)
    response = requests.post(emu.base_url + SERIES, data=json.dumps(body), headers=HEADERS, timeout=10)
    assert response.status_code == status, response.text
