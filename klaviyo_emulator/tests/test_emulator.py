"""Tests of the local Klaviyo emulator itself (klaviyo_emulator), over real HTTP.

No test sleeps: rate-limit windows run on an injected fake clock.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from klaviyo_emulator import Emulator, EmulatorConfig, Faults, RateLimits

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


def aware(text: str) -> str:
    """`text` with a "Z" offset when it is a naive ISO date-time (the default require_offset=True
    refuses naive ones; Klaviyo ignores the offset anyway, reading the wall time in the company zone)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    return text + "Z" if parsed.tzinfo is None and "T" in text else text


def aware_timeframe(timeframe: dict[str, Any]) -> dict[str, Any]:
    return {k: aware(v) if k in ("start", "end") and isinstance(v, str) else v for k, v in timeframe.items()}


def series_body(start: str = "2024-01-01T00:00:00", end: str = "2024-01-10T00:00:00", interval: str = "daily",
                ids: list[str] | None = None, stats: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {"statistics": ALL_STATS if stats is None else stats,
                                  "timeframe": {"start": aware(start), "end": aware(end)}, "interval": interval}
    if ids is not None:
        attributes["filter"] = "any(segment_id," + json.dumps(ids) + ")"
    attributes.update(extra)
    return {"data": {"type": "segment-series-report", "attributes": attributes}}


def values_body(timeframe: dict[str, str], ids: list[str] | None = None,
                stats: list[str] | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"statistics": ALL_STATS if stats is None else stats,
                                  "timeframe": aware_timeframe(timeframe)}
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


@pytest.mark.parametrize("revision", [None, "2023-02-22", "2023-02-22.pre", "2025-07-15.beta", "latest"])
def test_revision_must_be_known(emu: Emulator, revision: str | None) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "revision"}
    if revision:
        headers["revision"] = revision
    response = post(emu, SERIES, series_body(), headers)
    assert response.status_code == 400
    assert error_of(response)["source"] == {"parameter": "revision"}


@pytest.mark.parametrize("revision", ["2024-10-15", "2026-10-15", "2026-07-15.pre", "2025-07-15.pre"])
def test_known_revisions_accepted(emu: Emulator, revision: str) -> None:
    assert post(emu, SERIES, series_body(), {**HEADERS, "revision": revision}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded", None])
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
    if isinstance(attributes.get("timeframe"), dict):
        attributes = {**attributes, "timeframe": aware_timeframe(attributes["timeframe"])}
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
    ("filter unclosed single quote", SERIES, _with({"filter": "equals(segment_id,'abc)"}), "Invalid filter provided",
     "/data/attributes/filter"),
    ("filter bare value", SERIES, _with({"filter": "equals(segment_id,abc)"}), "must be a quoted string",
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
    assert call.timeframe == {"start": "2024-01-01T00:00:00Z", "end": "2024-01-10T00:00:00Z"}
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
    root = Path(__file__).resolve().parents[2]  # klaviyo_emulator/tests/ -> the repository
    process = subprocess.Popen(
        [sys.executable, "-m", "klaviyo_emulator", "--port", "0", "--segments", "12",
         "--api-key", "pk_cli", "--now", "2025-03-01T12:00:00", "--klaviyo-limits", "--time-scale", "60"],
        cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:") and line.endswith(", api key: pk_cli)")
        base = line.split()[3]
        assert line.split()[5] == base.rsplit(":", 1)[1] + ","  # "(port 40123, api key: ...)"
        response = requests.get(base + "/api/segments", headers={**HEADERS, "Authorization": "Klaviyo-API-Key pk_cli"},
                                timeout=10)
        assert response.status_code == 200 and len(response.json()["data"]) == 10
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


# --------------------------------------------------------------------------------------------
# Modes: readings the documentation leaves open (EmulatorConfig fields, CLI flags)


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


ACCOUNTS = "/api/accounts"


def test_accounts_endpoint_shape(emu: Emulator) -> None:
    response = requests.get(emu.base_url + ACCOUNTS, params={"fields[account]": "timezone"}, headers=HEADERS,
                            timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/vnd.api+json"
    document = response.json()
    assert set(document) == {"data", "links"} and document["links"]["self"].startswith(emu.base_url + ACCOUNTS)
    (account,) = document["data"]
    assert account["type"] == "account" and isinstance(account["id"], str) and account["id"]
    assert account["attributes"] == {"timezone": "America/New_York"}
    assert account["links"]["self"].startswith("http")
    full = requests.get(emu.base_url + ACCOUNTS + "/", headers=HEADERS, timeout=10).json()["data"][0]["attributes"]
    assert {"test_account", "contact_information", "timezone", "preferred_currency", "public_api_key",
            "locale"} <= set(full)
    assert {"default_sender_name", "default_sender_email", "organization_name", "street_address"} <= set(
        full["contact_information"])
    nested = requests.get(emu.base_url + ACCOUNTS, headers=HEADERS, timeout=10,
                          params={"fields[account]": "id,locale,contact_information.street_address.city"})
    assert nested.json()["data"][0]["attributes"] == {"locale": "en-US",
                                                      "contact_information": {"street_address": {"city": "Boston"}}}
    bad = requests.get(emu.base_url + ACCOUNTS, params={"fields[account]": "timezone,bogus"}, headers=HEADERS,
                       timeout=10)
    assert bad.status_code == 400 and error_of(bad)["source"] == {"parameter": "fields[account]"}
    assert requests.post(emu.base_url + ACCOUNTS, headers=HEADERS, timeout=10).status_code == 405


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "Europe/London", "Australia/Sydney"])
def test_accounts_timezone_follows_config(zone: str) -> None:
    with make(segments=1, timezone=zone) as emulator:
        document = requests.get(emulator.base_url + ACCOUNTS, params={"fields[account]": "timezone"},
                                headers=HEADERS, timeout=10).json()
        assert document["data"][0]["attributes"]["timezone"] == zone


def test_accounts_scope() -> None:
    with make(segments=3, accounts_scope=False) as emulator:
        response = requests.get(emulator.base_url + ACCOUNTS, headers=HEADERS, timeout=10)
        assert response.status_code == 403
        error = error_of(response)
        assert error["code"] == "permission_denied" and "accounts:read" in error["detail"]
        assert requests.get(emulator.base_url + "/api/segments", headers=HEADERS, timeout=10).status_code == 200
        assert post(emulator, SERIES, series_body()).status_code == 200
        noscope = {**HEADERS, "Authorization": "Klaviyo-API-Key pk_emulator_noscope"}
        assert requests.get(emulator.base_url + ACCOUNTS, headers=noscope, timeout=10).status_code == 403
    with make(segments=3) as emulator:
        noscope = {**HEADERS, "Authorization": "Klaviyo-API-Key pk_emulator_noscope"}
        assert requests.get(emulator.base_url + ACCOUNTS, headers=noscope, timeout=10).status_code == 403
        assert requests.get(emulator.base_url + ACCOUNTS, headers=HEADERS, timeout=10).status_code == 200


def test_accounts_rate_limits_are_their_own_bucket() -> None:
    clock = FakeClock()
    with make(segments=3, clock=clock, limits=RateLimits.klaviyo()) as emulator:
        url = emulator.base_url + ACCOUNTS
        first = requests.get(url, headers=HEADERS, timeout=10)
        assert first.status_code == 200
        assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("15", "14")
        burst = requests.get(url, headers=HEADERS, timeout=10)
        assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
        assert "RateLimit-Limit" not in burst.headers
        assert post(emulator, SERIES, series_body()).status_code == 200  # reports have their own quota
        statuses = []
        for _ in range(15):
            clock.advance(1.0)
            statuses.append(requests.get(url, headers=HEADERS, timeout=10).status_code)
        assert statuses == [200] * 14 + [429]  # 15 per minute


def test_rate_limit_headers_on_every_admitted_answer() -> None:
    clock = FakeClock()
    with make(segments=3, clock=clock, limits=RateLimits(burst=100, steady=100, daily=1000)) as emulator:
        listing = requests.get(emulator.base_url + "/api/segments", headers=HEADERS, timeout=10)
        assert listing.headers["RateLimit-Limit"] == "750" and listing.headers["RateLimit-Remaining"] == "749"
        bad_listing = requests.get(emulator.base_url + "/api/segments", params={"sort": "color"}, headers=HEADERS,
                                   timeout=10)
        assert bad_listing.status_code == 400 and bad_listing.headers["RateLimit-Remaining"] == "748"
        invalid_body = post(emulator, SERIES, series_body(stats=[]))
        assert invalid_body.status_code == 400
        assert (invalid_body.headers["RateLimit-Limit"], invalid_body.headers["RateLimit-Remaining"]) == ("100", "99")
        assert invalid_body.headers["RateLimit-Reset"] == "60"
        values = post(emulator, VALUES, values_body({"key": "today"}))
        assert values.status_code == 200 and values.headers["RateLimit-Remaining"] == "98"
        emulator.set_faults(Faults(fail_rate=1.0))
        failed = post(emulator, SERIES, series_body())
        assert failed.status_code == 503 and failed.headers["RateLimit-Remaining"] == "97"
        emulator.set_faults(Faults())
        # Refused before admission: no RateLimit headers (and no quota used).
        unauthenticated = post(emulator, SERIES, series_body(), {**HEADERS, "Authorization": "Klaviyo-API-Key x"})
        assert unauthenticated.status_code == 401 and "RateLimit-Limit" not in unauthenticated.headers
    with make(segments=3) as unlimited:
        for response in (post(unlimited, SERIES, series_body()),
                         requests.get(unlimited.base_url + "/api/segments", headers=HEADERS, timeout=10),
                         requests.get(unlimited.base_url + ACCOUNTS, headers=HEADERS, timeout=10)):
            assert response.status_code == 200
            assert not any(name.lower().startswith("ratelimit") for name in response.headers)


def test_report_content_type_application_json_accepted(emu: Emulator) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.api+json"):
        assert post(emu, SERIES, series_body(), {**HEADERS, "Content-Type": content_type}).status_code == 200


def test_single_quoted_filters(emu: Emulator) -> None:
    a, b = emu.segment_ids[1], emu.segment_ids[2]
    for text, wanted in ((f"any(segment_id,['{a}','{b}'])", {a, b}), (f"equals(segment_id,'{a}')", {a}),
                         (f"any(segment_id,['{a}',\"{b}\"])", {a, b})):
        table = series_table(post(emu, SERIES, _with({"filter": text})))
        assert {sid for sid, _ in table} == wanted, text
        assert set(values_table(post(emu, VALUES, _with({"filter": text}, "values")))) == wanted
    listing = requests.get(emu.base_url + "/api/segments", params={"filter": f"any(id,['{a}','{b}'])"},
                           headers=HEADERS, timeout=10)
    assert [item["id"] for item in listing.json()["data"]] == [a, b]


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


def test_klaviyo_limits_burst_time_scale() -> None:
    limits = RateLimits.klaviyo(60, burst_time_scale=1.0)
    assert limits.burst_window == pytest.approx(1.0) and limits.steady_window == pytest.approx(1.0)
    assert limits.daily_window == pytest.approx(1440.0)
    assert RateLimits.klaviyo(60) == RateLimits.klaviyo(60, None)
    assert RateLimits.klaviyo(60).burst_window == pytest.approx(1 / 60)
    assert (RateLimits().list_burst, RateLimits().list_steady) == (75, 750)
    assert (RateLimits().accounts_burst, RateLimits().accounts_steady) == (1, 15)
    with pytest.raises(ValueError):
        RateLimits.klaviyo(60, burst_time_scale=0)
    clock = FakeClock()
    with make(segments=2, clock=clock, limits=limits) as emulator:
        assert post(emulator, SERIES, series_body()).status_code == 200
        clock.advance(0.5)
        burst = post(emulator, SERIES, series_body())
        assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
        clock.advance(0.5)
        assert post(emulator, SERIES, series_body()).status_code == 200
        # Admin: the same limits by JSON.
        admin = requests.post(emulator.base_url + "/__admin/limits", json={"time_scale": 60, "burst_time_scale": 1},
                              timeout=10)
        assert admin.json()["limits"]["burst_window"] == pytest.approx(1.0)
        assert admin.json()["limits"]["steady_window"] == pytest.approx(1.0)


def test_config_rejects_unknown_modes() -> None:
    for field_name in ("cap_mode", "week_start", "date_times_in", "before_creation", "edges"):
        with pytest.raises(ValueError, match=field_name):
            bogus: dict[str, Any] = {field_name: "bogus"}
            EmulatorConfig(**bogus)
    with pytest.raises(ValueError):
        EmulatorConfig(created_spread=(datetime(2024, 2, 1), datetime(2024, 1, 1)))


def test_cli_flags_map_to_config() -> None:
    from klaviyo_emulator.__main__ import build_parser, config_from_args

    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.require_offset, defaults.cap_mode, defaults.accounts_scope, defaults.week_start,
            defaults.date_times_in, defaults.created_spread, defaults.before_creation, defaults.edges) == (
        True, "elapsed", True, "monday", "company", None, "zero", "inclusive")
    config = config_from_args(build_parser().parse_args([
        "--no-require-offset", "--cap-mode", "wall", "--no-accounts-scope", "--week-start", "sunday",
        "--date-times-in", "utc", "--created-spread", "2024-01-01T00:00:00", "2024-02-01T00:00:00",
        "--before-creation", "null", "--edges", "generous", "--klaviyo-limits", "--time-scale", "60",
        "--burst-time-scale", "1"]))
    assert (config.require_offset, config.cap_mode, config.accounts_scope, config.week_start,
            config.date_times_in, config.before_creation, config.edges) == (
        False, "wall", False, "sunday", "utc", "null", "generous")
    assert config.created_spread == (datetime(2024, 1, 1), datetime(2024, 2, 1))
    assert config.limits is not None and config.limits.burst_window == pytest.approx(1.0)
    assert config.limits.steady_window == pytest.approx(1.0)


def test_cli_busy_port_is_one_sentence_and_exit_2() -> None:
    root = Path(__file__).resolve().parents[2]  # klaviyo_emulator/tests/ -> the repository
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "klaviyo_emulator", "--port", str(port)],
                                cwd=root, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (f"port {port} on 127.0.0.1 is already in use: stop what holds it, "
                                     "or pass --port 0 for a free port.")


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
