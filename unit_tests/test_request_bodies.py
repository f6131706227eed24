"""What the connector sends is what Klaviyo accepts: the request schemas Klaviyo publishes (formats
checked: RFC 3339 date-times with an offset), the official SDK's request models, the rules they do
not carry (timeframe caps, 100 ids, the filter grammar), and the fewest calls."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest
import requests_mock
from openapi_client.models.segment_series_request_dto import SegmentSeriesRequestDTO
from openapi_client.models.segment_values_request_dto import SegmentValuesRequestDTO

from testkit.published import FORMATS_CHECKED, TIMEFRAME_KEYS, request_body_errors
from unit_tests import klaviyo_mock as km
from unit_tests.klaviyo_mock import FILTER, FakeKlaviyo

CAP = {"hourly": dt.timedelta(days=7), "daily": dt.timedelta(days=60), "weekly": dt.timedelta(weeks=52)}
SEGMENTS = [f"S{n:04d}" for n in range(250)]


def sync(
    stream: str, segment_ids: list[str] | None = None, timezone: str | None = None, **config_overrides: object
) -> tuple[FakeKlaviyo, list]:
    config = km.config(segment_ids=None, **config_overrides)
    fake = FakeKlaviyo(segment_ids or SEGMENTS, timezone=timezone)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        output = km.read_source(config, km.catalog(stream))
    assert not output.errors, output.errors
    return fake, [r.record.data for r in output.records]


def wall(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value[:19])


def assert_common_rules(body: dict) -> None:
    assert FORMATS_CHECKED, "install rfc3339-validator: without it jsonschema skips date-time formats"
    kind = "series" if body["data"]["type"] == "segment-series-report" else "values"
    assert request_body_errors(kind, body) == []
    attributes = body["data"]["attributes"]
    match = FILTER.match(attributes["filter"])
    assert match, attributes["filter"]
    assert len(match.group(1).split('","')) <= 100
    assert len(set(attributes["statistics"])) == len(attributes["statistics"])


@pytest.mark.parametrize("interval", ["hourly", "daily", "weekly", "monthly"])
def test_series_bodies_pass_the_sdk_and_the_caps(interval: str) -> None:
    end = {"hourly": "2024-01-20", "daily": "2024-06-01", "weekly": "2025-06-01", "monthly": "2025-12-01"}[interval]
    fake, rows = sync("segment_series", interval=interval, start_date="2024-01-01", end_date=end)
    assert fake.bodies
    for body in fake.bodies:
        SegmentSeriesRequestDTO.from_dict(body)  # raises if the SDK's model rejects it
        assert_common_rules(body)
        timeframe = body["data"]["attributes"]["timeframe"]
        assert set(timeframe) == {"start", "end"}
        # The key may not read the timezone here: the offset is +00:00 (Klaviyo ignores it).
        assert timeframe["start"].endswith("+00:00") and timeframe["end"].endswith("+00:00")
        start, last = wall(timeframe["start"]), wall(timeframe["end"])
        assert start >= dt.datetime(2023, 6, 1)
        if interval == "monthly":
            assert last - start < dt.timedelta(weeks=52)
        else:
            assert last - start < CAP[interval]
    assert rows


def test_250_segments_400_days_daily_cost_3_batches_times_7_windows() -> None:
    fake, rows = sync("segment_series", start_date="2024-01-01", end_date="2025-02-04")
    assert len(fake.bodies) == math.ceil(250 / 100) * math.ceil(400 / 60) == 21
    batch_sizes = sorted(len(FILTER.match(b["data"]["attributes"]["filter"]).group(1).split('","')) for b in fake.bodies)
    assert batch_sizes == [50] * 7 + [100] * 14
    keys = {(r["segment_id"], r["date_time"]) for r in rows}
    assert len(rows) == len(keys) == 250 * 400


@pytest.mark.parametrize("timeframe", TIMEFRAME_KEYS)
def test_values_key_bodies_pass_the_sdk(timeframe: str) -> None:
    fake, rows = sync("segment_values", segment_ids=SEGMENTS[:120], values_timeframe=timeframe)
    assert len(fake.bodies) == 2
    for body in fake.bodies:
        SegmentValuesRequestDTO.from_dict(body)
        assert_common_rules(body)
        assert body["data"]["attributes"]["timeframe"] == {"key": timeframe}
    assert {r["segment_id"] for r in rows} == set(SEGMENTS[:120])
    # Airbyte's serializer omits null fields: absent is null to every destination.
    assert {(r["timeframe"], r.get("timeframe_start"), r.get("timeframe_end")) for r in rows} == {(timeframe, None, None)}


def test_values_custom_timeframe_is_cut_into_touching_years() -> None:
    fake, rows = sync(
        "segment_values", segment_ids=SEGMENTS[:3], values_timeframe="custom", start_date="2023-06-01", end_date="2025-03-01"
    )
    timeframes = sorted(
        b["data"]["attributes"]["timeframe"]["start"] + "/" + b["data"]["attributes"]["timeframe"]["end"] for b in fake.bodies
    )
    # At most 365 days each (2023-06-01 to 2024-06-01 would be 366: 2024 is a leap year).
    assert timeframes == [
        "2023-06-01T00:00:00+00:00/2024-05-30T23:59:59+00:00",
        "2024-05-31T00:00:00+00:00/2025-02-28T23:59:59+00:00",
    ]
    for body in fake.bodies:
        SegmentValuesRequestDTO.from_dict(body)
    labels = {r["timeframe"] for r in rows}
    assert labels == {"2023-06-01T00:00:00/2024-05-31T00:00:00", "2024-05-31T00:00:00/2025-03-01T00:00:00"}
    assert len(rows) == 3 * 2


def test_segments_stream_lists_every_page_and_never_the_definition() -> None:
    config = km.config(segment_ids=None)
    fake = FakeKlaviyo(SEGMENTS[:25])
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        output = km.read_source(config, km.catalog("segments"))
        first = next(r for r in mocker.request_history if r.path == "/api/segments")
    assert first.qs["fields[segment]"] == ["name,created,updated,is_active,is_processing,is_starred"]
    rows = [r.record.data for r in output.records]
    assert [r["id"] for r in rows] == SEGMENTS[:25]
    assert set(rows[0]) == {"id", "name", "created", "updated", "is_active", "is_processing", "is_starred"}


@pytest.mark.parametrize(
    ("interval", "start", "end", "windows"),
    [
        ("hourly", "2024-04-01", "2024-04-15", 2),  # no daylight-saving change: Klaviyo's full 7 days
        ("daily", "2024-04-01", "2024-05-31", 1),  # 60 days, Klaviyo's full cap
        ("hourly", "2024-10-30", "2024-11-13", 3),  # holds New York's fall-back: that window is 167 hours
    ],
)
def test_with_the_accounts_timezone_timeframes_carry_its_offsets_and_windows_use_the_full_caps(
    interval: str, start: str, end: str, windows: int
) -> None:
    zone = ZoneInfo("America/New_York")
    fake, rows = sync(
        "segment_series", segment_ids=SEGMENTS[:3], timezone="America/New_York", interval=interval, start_date=start, end_date=end
    )
    assert len(fake.bodies) == windows
    for body in fake.bodies:
        assert_common_rules(body)
        for bound in body["data"]["attributes"]["timeframe"].values():
            # The company's own offset at that wall time (Klaviyo ignores it, the spec requires one).
            assert bound[19:] == wall(bound).replace(tzinfo=zone).strftime("%z")[:3] + ":00"
        timeframe = body["data"]["attributes"]["timeframe"]
        real = dt.datetime.fromisoformat(timeframe["end"]) - dt.datetime.fromisoformat(timeframe["start"])
        assert real < CAP[interval] and wall(timeframe["end"]) - wall(timeframe["start"]) < CAP[interval]
    assert rows
