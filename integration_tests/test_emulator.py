"""Tests of the local Klaviyo emulator itself (integration_tests.emulator), over real HTTP.

No test sleeps: rate-limit windows run on an injected fake clock.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from integration_tests.emulator import Emulator, EmulatorConfig, Faults, RateLimits

NOW = datetime(2025, 3, 1, 12, 0)
KEY = "pk_emulator_key"
HEADERS = {
    "Authorization": f"Klaviyo-API-Key {KEY}",
    "revision": "2025-07-15",
    "Content-Type": "application/vnd.api+json",
    "Accept": "application/vnd.api+json",
}
ALL_STATS = ["total_members", "members_added", "members_removed", "net_members_changed"]
SERIES = "/api/segment-series-reports/"
VALUES = "/api/segment-values-reports/"


class FakeClock:
    """Monotonic clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(**overrides: Any) -> Emulator:
    settings: dict[str, Any] = {"segments": 25, "now": NOW, "seed": 7}
    settings.update(overrides)
    return Emulator(EmulatorConfig(**settings))


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with make() as emulator:
        yield emulator


@pytest.fixture()
def fresh() -> Iterator[Emulator]:
    with make() as emulator:
        yield emulator


def series_body(start: str = "2024-01-01T00:00:00", end: str = "2024-01-10T00:00:00", interval: str = "daily",
                ids: list[str] | None = None, stats: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {"statistics": ALL_STATS if stats is None else stats, "timeframe": {"start": start, "end": end},
                                  "interval": interval}
    if ids is not None:
        attributes["filter"] = "any(segment_id," + json.dumps(ids) + ")"
    attributes.update(extra)
    return {"data": {"type": "segment-series-report", "attributes": attributes}}


def values_body(timeframe: dict[str, str], ids: list[str] | None = None,
                stats: list[str] | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"statistics": ALL_STATS if stats is None else stats, "timeframe": timeframe}
    if ids is not None:
        attributes["filter"] = "any(segment_id," + json.dumps(ids) + ")"
    return {"data": {"type": "segment-values-report", "attributes": attributes}}


def post(emu: Emulator, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(emu.base_url + path, data=json.dumps(body), headers=headers or HEADERS, timeout=10)


def error_of(response: requests.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert len(errors) == 1
    return errors[0]


def series_table(response: requests.Response) -> dict[tuple[str, str], dict[str, int]]:
    """{(segment_id, date_time): {statistic: value}} from a series response."""
    assert response.status_code == 200, response.text
    attributes = response.json()["data"]["attributes"]
    table = {}
    for result in attributes["results"]:
        sid = result["groupings"]["segment_id"]
        stats = result["statistics"]
        for i, stamp in enumerate(attributes["date_times"]):
            table[(sid, stamp)] = {name: values[i] for name, values in stats.items()}
    return table


def values_table(response: requests.Response) -> dict[str, dict[str, int]]:
    assert response.status_code == 200, response.text
    return {r["groupings"]["segment_id"]: r["statistics"] for r in response.json()["data"]["attributes"]["results"]}


# --------------------------------------------------------------------------------------------
# Headers


@pytest.mark.parametrize(
    "authorization, status, code",
    [
        (None, 401, "not_authenticated"),
        ("Klaviyo-API-Key pk_wrong", 401, "not_authenticated"),
        (f"Bearer {KEY}", 401, "not_authenticated"),
        ("Klaviyo-API-Key pk_emulator_noscope", 403, "permission_denied"),
    ],
)
def test_auth_errors(emu: Emulator, authorization: str | None, status: int, code: str) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "Authorization"}
    if authorization:
        headers["Authorization"] = authorization
    for response in (post(emu, SERIES, series_body(), headers),
                     requests.get(emu.base_url + "/api/segments", headers=headers, timeout=10)):
        assert response.status_code == status
        assert error_of(response)["code"] == code


@pytest.mark.parametrize("revision", [None, "2023-02-22", "2025-07-15.pre", "latest"])
def test_revision_must_be_known(emu: Emulator, revision: str | None) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "revision"}
    if revision:
        headers["revision"] = revision
    response = post(emu, SERIES, series_body(), headers)
    assert response.status_code == 400
    assert error_of(response)["source"] == {"parameter": "revision"}


@pytest.mark.parametrize("revision", ["2024-10-15", "2026-10-15"])
def test_known_revisions_accepted(emu: Emulator, revision: str) -> None:
    assert post(emu, SERIES, series_body(), {**HEADERS, "revision": revision}).status_code == 200


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_report_content_type_must_be_json_api(emu: Emulator, content_type: str | None) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "Content-Type"}
    if content_type:
        headers["Content-Type"] = content_type
    response = post(emu, SERIES, series_body(), headers)
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_routes_with_and_without_slash_and_unknown_path(emu: Emulator) -> None:
    assert post(emu, "/api/segment-series-reports", series_body()).status_code == 200
    assert post(emu, "/api/segment-values-reports", values_body({"key": "last_7_days"})).status_code == 200
    assert requests.get(emu.base_url + "/api/segments/", headers=HEADERS, timeout=10).status_code == 200
    response = requests.get(emu.base_url + "/api/lists/", headers=HEADERS, timeout=10)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# --------------------------------------------------------------------------------------------
# Body validation


@pytest.mark.parametrize(
    "body, pointer, fragment",
    [
        ({"nodata": {}}, "/data", "SegmentSeriesRequestDTO"),
        ({"data": {"type": "segment-series-report"}}, "/data/attributes", "attributes"),
        (series_body(stats=["bogus"]), "/data/attributes/statistics", "must be one of"),
        ({"data": {"type": "segment-series-report", "attributes": {"statistics": ["total_members"],
                                                                      "timeframe": {"key": "today"}}}},
         "/data/attributes/interval", "interval"),
        (series_body(interval="yearly"), "/data/attributes/interval", "must be one of enum values"),
        (series_body(filter=["not", "a", "string"]), "/data/attributes/filter", "string"),
    ],
)
def test_sdk_model_rejections(emu: Emulator, body: Any, pointer: str, fragment: str) -> None:
    response = post(emu, SERIES, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid" and error["title"] == "Invalid input."
    assert error["source"]["pointer"] == pointer
    assert fragment in error["detail"]


def test_malformed_json_body_rejected(emu: Emulator) -> None:
    response = requests.post(emu.base_url + SERIES, data=b"{not json", headers=HEADERS, timeout=10)
    assert response.status_code == 400
    assert "Malformed JSON" in error_of(response)["detail"]


def _with(attributes: dict[str, Any], kind: str = "series") -> dict[str, Any]:
    base = series_body() if kind == "series" else values_body({"key": "last_30_days"})
    base["data"]["attributes"].update(attributes)
    return base


RULES = [
    # (label, path, body, fragment of detail, pointer)
    ("type mismatch", SERIES, values_body({"key": "today"}), "expected 'segment-series-report'", "/data/type"),
    ("type mismatch values", VALUES, series_body(), "expected 'segment-values-report'", "/data/type"),
    ("unknown key", SERIES, _with({"timeframe": {"key": "last_2_days"}}), "Invalid timeframe key 'last_2_days'",
     "/data/attributes/timeframe/key"),
    ("key and start", SERIES, _with({"timeframe": {"key": "today", "start": "2024-01-01T00:00:00",
                                                   "end": "2024-01-02T00:00:00"}}), "not both",
     "/data/attributes/timeframe"),
    ("start only", SERIES, _with({"timeframe": {"start": "2024-01-01T00:00:00"}}), "missing end",
     "/data/attributes/timeframe"),
    ("empty timeframe", SERIES, _with({"timeframe": {}}), "missing key or start/end", "/data/attributes/timeframe"),
    ("extra member", SERIES, _with({"timeframe": {"start": "2024-01-01", "end": "2024-01-02", "tz": "UTC"}}),
     "unexpected member(s) tz", "/data/attributes/timeframe"),
    ("bad iso", SERIES, _with({"timeframe": {"start": "01/02/2024", "end": "2024-01-02T00:00:00"}}),
     "not a valid ISO 8601", "/data/attributes/timeframe/start"),
    ("start after end", SERIES, _with({"timeframe": {"start": "2024-01-05T00:00:00", "end": "2024-01-05T00:00:00"}}),
     "must be before timeframe.end", "/data/attributes/timeframe"),
    ("longer than a year", VALUES,
     _with({"timeframe": {"start": "2024-01-01T00:00:00", "end": "2025-01-01T01:00:00"}}, "values"),
     "cannot be longer than 1 year", "/data/attributes/timeframe"),
    ("before data start", SERIES, _with({"timeframe": {"start": "2023-05-31T23:00:00", "end": "2023-06-02T00:00:00"}}),
     "Data is unavailable before June 1st, 2023", "/data/attributes/timeframe/start"),
    ("hourly cap", SERIES, _with({"interval": "hourly", "timeframe": {"start": "2024-01-01T00:00:00",
                                                                    "end": "2024-01-08T01:00:00"}}),
     "If hourly is used, the timeframe cannot be longer than 7 days", "/data/attributes/timeframe"),
    ("daily cap", SERIES, _with({"interval": "daily", "timeframe": {"start": "2024-01-01T00:00:00",
                                                                  "end": "2024-03-02T00:00:00"}}),
     "If daily is used, the timeframe cannot be longer than 60 days", "/data/attributes/timeframe"),
    ("weekly cap", SERIES, _with({"interval": "weekly", "timeframe": {"start": "2024-01-01T00:00:00",
                                                                    "end": "2024-12-31T00:00:00"}}),
     "If weekly is used, the timeframe cannot be longer than 52 weeks", "/data/attributes/timeframe"),
    ("monthly cap", SERIES, _with({"interval": "monthly", "timeframe": {"start": "2024-01-01T00:00:00",
                                                                      "end": "2024-12-31T00:00:00"}}),
     "If monthly is used, the timeframe cannot be longer than 52 weeks", "/data/attributes/timeframe"),
    ("monthly cap on a key", SERIES, _with({"interval": "monthly", "timeframe": {"key": "last_12_months"}}),
     "If monthly is used", "/data/attributes/timeframe"),
    ("filter attribute", SERIES, _with({"filter": 'equals(list_id,"abc")'}), "'list_id' is not a valid filter field",
     "/data/attributes/filter"),
    ("filter operator", SERIES, _with({"filter": 'contains(segment_id,"abc")'}),
     "'contains' is not a valid operator", "/data/attributes/filter"),
    ("filter unclosed", SERIES, _with({"filter": 'any(segment_id,["abc"'}), "Invalid filter provided",
     "/data/attributes/filter"),
    ("filter single quotes", SERIES, _with({"filter": "equals(segment_id,'abc')"}), "Invalid filter provided",
     "/data/attributes/filter"),
    ("filter bare value", SERIES, _with({"filter": "equals(segment_id,abc)"}), "must be a double-quoted string",
     "/data/attributes/filter"),
    ("filter any needs list", SERIES, _with({"filter": 'any(segment_id,"abc")'}), "takes a list",
     "/data/attributes/filter"),
    ("filter empty list", SERIES, _with({"filter": "any(segment_id,[])"}), "must not be empty",
     "/data/attributes/filter"),
    ("filter twice", SERIES, _with({"filter": 'equals(segment_id,"a"),equals(segment_id,"b")'}),
     "Only one filter can be used per attribute", "/data/attributes/filter"),
    ("filter empty", SERIES, _with({"filter": ""}), "filter is empty", "/data/attributes/filter"),
    ("no statistics", SERIES, _with({"statistics": []}), "statistics must not be empty",
     "/data/attributes/statistics"),
    ("repeated statistic", SERIES, _with({"statistics": ["total_members", "total_members"]}),
     "statistics must not repeat: total_members", "/data/attributes/statistics"),
]


@pytest.mark.parametrize("label, path, body, fragment, pointer", RULES, ids=[r[0] for r in RULES])
def test_validation_rules(emu: Emulator, label: str, path: str, body: Any, fragment: str, pointer: str) -> None:
    response = post(emu, path, body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["status"] == 400 and error["code"] == "invalid" and error["title"] == "Invalid input."
    assert fragment in error["detail"], error["detail"]
    assert error["source"] == {"pointer": pointer}
    assert set(error) == {"id", "status", "code", "title", "detail", "source", "meta"}


def test_filter_id_limit(emu: Emulator) -> None:
    ids = [f"x{i:05d}" for i in range(101)]
    response = post(emu, SERIES, series_body(ids=ids))
    assert response.status_code == 400
    assert "Max of 100" in error_of(response)["detail"] and "got 101" in error_of(response)["detail"]
    accepted = post(emu, SERIES, series_body(ids=emu.segment_ids[:5] + ids[:95]))
    assert accepted.status_code == 200
    # Unknown ids are simply absent.
    assert {r["groupings"]["segment_id"] for r in accepted.json()["data"]["attributes"]["results"]} == set(
        emu.segment_ids[:5])


def test_filter_forms_and_no_filter(emu: Emulator) -> None:
    one = emu.segment_ids[3]
    for text in (f'equals(segment_id,"{one}")', f'any( segment_id , [ "{one}" ] )'):
        table = series_table(post(emu, SERIES, _with({"filter": text})))
        assert {sid for sid, _ in table} == {one}
    # No filter: every segment of the account (undocumented by Klaviyo; the emulator's choice).
    table = series_table(post(emu, SERIES, series_body()))
    assert {sid for sid, _ in table} == set(emu.segment_ids)


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
        for offset in ("", "Z", "+00:00", "-08:00", "+05:30")
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
CAPS = {"hourly": timedelta(days=7), "daily": timedelta(days=60), "weekly": timedelta(weeks=52),
        "monthly": timedelta(weeks=52)}


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


# --------------------------------------------------------------------------------------------
# Segments listing


def test_segments_pagination_and_fields(emu: Emulator) -> None:
    url: str | None = emu.base_url + "/api/segments/?fields[segment]=name,created,updated,is_active,is_processing,is_starred"
    pages = []
    while url:
        response = requests.get(url, headers=HEADERS, timeout=10)
        assert response.status_code == 200
        pages.append(response.json())
        url = response.json()["links"]["next"]
    assert [len(p["data"]) for p in pages] == [10, 10, 5]
    items = [item for page in pages for item in page["data"]]
    assert [item["id"] for item in items] == emu.segment_ids
    for item in items:
        assert item["type"] == "segment"
        assert set(item["attributes"]) == {"name", "created", "updated", "is_active", "is_processing", "is_starred"}
        assert datetime.fromisoformat(item["attributes"]["created"]).tzinfo is not None
    assert any(not item["attributes"]["is_active"] for item in items)
    assert any(item["attributes"]["is_starred"] for item in items)
    assert "definition" in requests.get(emu.base_url + "/api/segments", headers=HEADERS, timeout=10).json()["data"][0][
        "attributes"]


def test_segments_filters(emu: Emulator) -> None:
    wanted = emu.segment_ids[4:7]
    response = requests.get(emu.base_url + "/api/segments", params={"filter": "any(id," + json.dumps(wanted) + ")"},
                            headers=HEADERS, timeout=10)
    assert [item["id"] for item in response.json()["data"]] == wanted
    response = requests.get(emu.base_url + "/api/segments", params={"filter": f'equals(id,"{wanted[0]}")'},
                            headers=HEADERS, timeout=10)
    assert [item["id"] for item in response.json()["data"]] == wanted[:1]
    response = requests.get(emu.base_url + "/api/segments", params={"filter": 'equals(color,"red")'},
                            headers=HEADERS, timeout=10)
    assert response.status_code == 400 and error_of(response)["source"] == {"parameter": "filter"}


# --------------------------------------------------------------------------------------------
# Rate limits


def test_rate_limits_with_fake_clock() -> None:
    clock = FakeClock()
    with make(clock=clock, limits=RateLimits.klaviyo(1.0)) as emu:
        first = post(emu, SERIES, series_body())
        assert first.status_code == 200
        assert first.headers["RateLimit-Limit"] == "2"
        assert first.headers["RateLimit-Remaining"] == "1"
        assert first.headers["RateLimit-Reset"] == "60"
        burst = post(emu, VALUES, values_body({"key": "today"}))  # the two endpoints share the quota
        assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
        error = error_of(burst)
        assert error["code"] == "throttled"
        assert error["detail"] == "Request was throttled. Expected available in 1 second."
        clock.advance(1.0)
        second = post(emu, SERIES, series_body())
        assert second.status_code == 200 and second.headers["RateLimit-Remaining"] == "0"
        assert second.headers["RateLimit-Reset"] == "59"
        clock.advance(1.5)
        steady = post(emu, SERIES, series_body())
        assert steady.status_code == 429 and steady.headers["Retry-After"] == "58"
        assert "Expected available in 58 seconds." in error_of(steady)["detail"]
        clock.advance(57.5)
        assert post(emu, SERIES, series_body()).status_code == 200
        assert [c.status for c in emu.report_calls(status=None)] == [200, 429, 200, 429, 200]
        assert len(emu.report_calls()) == 3 and len(emu.report_calls(429)) == 2


def test_daily_limit_retry_after_is_hours() -> None:
    clock = FakeClock()
    with make(clock=clock, limits=RateLimits(burst=100, steady=100, daily=2)) as emu:
        assert post(emu, SERIES, series_body()).status_code == 200
        clock.advance(3600)
        assert post(emu, SERIES, series_body()).status_code == 200
        clock.advance(60)
        throttled = post(emu, SERIES, series_body())
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) == 86400 - 3660
        # The segments list has its own, much larger quota.
        assert requests.get(emu.base_url + "/api/segments", headers=HEADERS, timeout=10).status_code == 200
        emu.set_limits(None)
        assert post(emu, SERIES, series_body()).status_code == 200


def test_klaviyo_limits_scale() -> None:
    limits = RateLimits.klaviyo(60)
    assert (limits.burst, limits.steady, limits.daily) == (1, 2, 225)
    assert limits.steady_window == pytest.approx(1.0) and limits.daily_window == pytest.approx(1440.0)


# --------------------------------------------------------------------------------------------
# Faults


def test_fail_rate_gives_503(fresh: Emulator) -> None:
    fresh.set_faults(Faults(fail_rate=1.0))
    response = post(fresh, SERIES, series_body())
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "service_unavailable" and "MetricServiceRetryableError" in error["detail"]
    # Invalid bodies still get their 400 first.
    assert post(fresh, SERIES, series_body(stats=[])).status_code == 400


def test_drop_rate_closes_the_connection(fresh: Emulator) -> None:
    fresh.set_faults(Faults(drop_rate=1.0))
    with pytest.raises(requests.ConnectionError):
        post(fresh, SERIES, series_body())
    assert fresh.calls[-1].status == 0


def test_fault_draws_are_seeded(fresh: Emulator) -> None:
    outcomes = []
    for _ in range(2):
        fresh.set_faults(Faults(fail_rate=0.5, seed=3))
        outcomes.append([post(fresh, SERIES, series_body(ids=fresh.segment_ids[:1])).status_code for _ in range(8)])
    assert outcomes[0] == outcomes[1] and {200, 503} == set(outcomes[0])


def test_daily_exhausted(fresh: Emulator) -> None:
    fresh.set_faults(Faults(daily_exhausted=True))
    response = post(fresh, VALUES, values_body({"key": "today"}))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 3600
    assert error_of(response)["code"] == "throttled"


def test_echo_request_in_errors_leaks_headers(fresh: Emulator) -> None:
    fresh.set_faults(Faults(echo_request_in_errors=True))
    response = post(fresh, SERIES, series_body(stats=[]))
    assert response.status_code == 400 and KEY in response.text
    assert error_of(response)["meta"]["request_headers"]["Authorization"] == f"Klaviyo-API-Key {KEY}"


@pytest.mark.parametrize("kind", ["missing_statistic", "short_date_times", "wrong_type", "not_json"])
def test_malformed_responses(fresh: Emulator, kind: str) -> None:
    fresh.set_faults(Faults(malformed=kind))
    response = post(fresh, SERIES, series_body(ids=fresh.segment_ids[:2]))
    assert response.status_code == 200
    if kind == "not_json":
        with pytest.raises(ValueError):
            response.json()
        return
    attributes = response.json()["data"]["attributes"]
    stats = attributes["results"][0]["statistics"]
    if kind == "missing_statistic":
        assert "total_members" not in stats
    elif kind == "short_date_times":
        assert len(attributes["date_times"]) == len(stats["total_members"]) - 1
    else:
        assert stats["total_members"] == "n/a"


def test_call_records(fresh: Emulator) -> None:
    ids = fresh.segment_ids[:3]
    post(fresh, SERIES, series_body(ids=ids))
    (call,) = fresh.report_calls()
    assert call.segment_ids == ids and call.interval == "daily" and call.method == "POST"
    assert call.timeframe == {"start": "2024-01-01T00:00:00", "end": "2024-01-10T00:00:00"}
    assert call.headers["Authorization"] == f"Klaviyo-API-Key {KEY}"
    fresh.reset_calls()
    assert fresh.calls == []


# --------------------------------------------------------------------------------------------
# Admin and CLI


def test_admin_endpoints(fresh: Emulator) -> None:
    base = fresh.base_url
    post(fresh, SERIES, series_body(ids=fresh.segment_ids[:2]))
    requests.get(base + "/api/segments", headers=HEADERS, timeout=10)
    stats = requests.get(base + "/__admin/stats", timeout=10).json()
    assert stats["counts"]["POST /api/segment-series-reports"] == {"200": 1}
    assert stats["counts"]["GET /api/segments"] == {"200": 1}
    assert stats["report_calls"][0]["segment_ids"] == 2
    assert requests.post(base + "/__admin/faults", json={"fail_rate": 1.0}, timeout=10).status_code == 200
    assert post(fresh, SERIES, series_body()).status_code == 503
    assert requests.post(base + "/__admin/faults", json={"bogus": 1}, timeout=10).status_code == 400
    assert requests.post(base + "/__admin/faults", json={}, timeout=10).status_code == 200
    assert requests.post(base + "/__admin/limits", json={"burst": 1, "steady": 1, "daily": 1}, timeout=10).ok
    assert post(fresh, SERIES, series_body()).status_code == 200
    assert post(fresh, SERIES, series_body()).status_code == 429
    assert requests.post(base + "/__admin/limits", data="null", timeout=10).json() == {"limits": None}
    assert post(fresh, SERIES, series_body()).status_code == 200
    assert requests.post(base + "/__admin/reset", timeout=10).ok
    assert requests.get(base + "/__admin/stats", timeout=10).json()["total_calls"] == 0


def test_cli_serves_until_sigterm() -> None:
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "integration_tests.emulator", "--port", "0", "--segments", "12",
         "--api-key", "pk_cli", "--now", "2025-03-01T12:00:00", "--klaviyo-limits", "--time-scale", "60"],
        cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:") and line.endswith("(api key: pk_cli)")
        base = line.split()[3]
        response = requests.get(base + "/api/segments", headers={**HEADERS, "Authorization": "Klaviyo-API-Key pk_cli"},
                                timeout=10)
        assert response.status_code == 200 and len(response.json()["data"]) == 10
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
