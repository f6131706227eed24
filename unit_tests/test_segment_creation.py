"""A segment costs nothing before it existed: a report window asks only about the segments created
before it ends, packed oldest first, so each window makes ``ceil(existing / 100)`` calls; and no
row is written for a bucket that ended before its segment was created."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests_mock
from airbyte_cdk.models import SyncMode
from hypothesis import given, settings
from hypothesis import strategies as st

from source_klaviyo_segments import SourceKlaviyoSegments
from source_klaviyo_segments.components import plan_segment_batches
from unit_tests import klaviyo_mock as km
from unit_tests.klaviyo_mock import FILTER, FakeKlaviyo

NEW_YORK = ZoneInfo("America/New_York")
PER_CALL = 100  # Klaviyo: "Max of 100 ... per ANY filter"


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


creations = st.lists(
    st.one_of(
        st.none(),
        st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2026, 1, 1), timezones=st.just(NEW_YORK)),
        st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2026, 1, 1), timezones=st.just(dt.timezone.utc)),
    ),
    min_size=0,
    max_size=450,
)


@settings(max_examples=60, deadline=None)
@given(
    created=creations,
    window_end=st.datetimes(min_value=dt.datetime(2023, 6, 1), max_value=dt.datetime(2025, 12, 31)),
    timezone_known=st.booleans(),
)
def test_batches_cover_exactly_the_segments_existing_by_the_windows_end_in_the_fewest_calls(
    created: list[dt.datetime | None], window_end: dt.datetime, timezone_known: bool
) -> None:
    segments = [(f"S{n:04d}", iso(at) if at else None) for n, at in enumerate(created)]
    batches = plan_segment_batches(segments, window_end, "America/New_York" if timezone_known else None, PER_CALL)
    asked = [segment_id for batch in batches for segment_id in batch]
    assert len(asked) == len(set(asked))  # no segment twice in one window
    if timezone_known:
        end = window_end.replace(tzinfo=NEW_YORK)
        existing = {f"S{n:04d}" for n, at in enumerate(created) if at is None or at < end}
    else:  # the window may end as late as UTC-12 allows; nothing that might exist is left out
        end = window_end.replace(tzinfo=dt.timezone.utc) + dt.timedelta(hours=12)
        existing = {f"S{n:04d}" for n, at in enumerate(created) if at is None or at < end}
    assert set(asked) == existing
    assert len(batches) == math.ceil(len(existing) / PER_CALL)
    assert all(0 < len(batch) <= PER_CALL for batch in batches)


def test_a_two_year_backfill_asks_each_window_only_about_the_segments_that_existed() -> None:
    ids = [f"S{n:04d}" for n in range(300)]
    first = dt.datetime(2023, 6, 1, tzinfo=dt.timezone.utc)
    # Created evenly over two years: segment n at first + n x (730 days / 300).
    created = {segment_id: iso(first + dt.timedelta(days=730) * n / len(ids)) for n, segment_id in enumerate(ids)}
    config = km.config(segment_ids=None, start_date="2023-06-01", end_date="2025-06-01")
    fake = FakeKlaviyo(ids, created=created)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        output = km.read_source(config, km.catalog("segment_series", SyncMode.incremental))
    assert not output.errors, output.errors

    # Without accounts:read, windows are 59 days from 2023-06-01; each asks about the segments
    # created before its end (read as late as UTC-12 allows), in ceil(existing / 100) calls.
    expected_calls = 0
    window_start = dt.datetime(2023, 6, 1)
    while window_start < dt.datetime(2025, 6, 1):
        window_end = min(window_start + dt.timedelta(days=59), dt.datetime(2025, 6, 1))
        latest = window_end.replace(tzinfo=dt.timezone.utc) + dt.timedelta(hours=12)
        existing = sum(dt.datetime.fromisoformat(c) < latest for c in created.values())
        expected_calls += math.ceil(existing / PER_CALL)
        window_start = window_end
    assert len(fake.bodies) == expected_calls < math.ceil(300 / PER_CALL) * 13
    for body in fake.bodies:
        window_end = dt.datetime.fromisoformat(body["data"]["attributes"]["timeframe"]["end"])
        for segment_id in FILTER.match(body["data"]["attributes"]["filter"]).group(1).split('","'):
            assert dt.datetime.fromisoformat(created[segment_id]) < window_end + dt.timedelta(hours=12, seconds=1)

    rows: dict[str, list[str]] = {}
    for record in output.records:
        rows.setdefault(record.record.data["segment_id"], []).append(record.record.data["date_time"])
    for segment_id, date_times in rows.items():
        born = dt.datetime.fromisoformat(created[segment_id])
        first_bucket = min(dt.datetime.fromisoformat(d) for d in date_times)
        range_start = dt.datetime.fromisoformat("2023-06-01T00:00:00" + fake.offset)
        if born < range_start:  # born before the range: its rows start with the range
            assert first_bucket == range_start, (segment_id, first_bucket)
        else:  # the first row is the bucket (a day, in the offset Klaviyo wrote) holding the creation
            assert first_bucket <= born < first_bucket + dt.timedelta(days=1), (segment_id, first_bucket, born)
        assert len(date_times) == len(set(date_times))


def test_a_timeframe_key_asks_about_every_segment() -> None:
    ids = [f"S{n:04d}" for n in range(150)]
    created = {segment_id: "2099-01-01T00:00:00+00:00" for segment_id in ids[:120]}  # not yet, by any window
    config = km.config(segment_ids=None, values_timeframe="last_30_days")
    fake = FakeKlaviyo(ids, created=created)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        output = km.read_source(config, km.catalog("segment_values"))
    assert not output.errors
    asked: list[Any] = [FILTER.match(b["data"]["attributes"]["filter"]).group(1).split('","') for b in fake.bodies]
    assert sorted(i for batch in asked for i in batch) == ids and len(asked) == 2


def read_values(limit: int | None, monkeypatch: Any = None) -> tuple[Any, FakeKlaviyo]:
    """Custom segment_values over 2023-06-01..2025-06-01 (3 windows of at most 365 days) for 150
    segments: 50 created before Klaviyo's data, 100 on 2025-05-31 (inside the last window, a day
    long), so the windows need 1 + 1 + 2 = 4 calls (a window asks only about the segments that
    existed by its end)."""
    ids = [f"S{n:04d}" for n in range(150)]
    created = {segment_id: "2025-05-31T10:00:00-04:00" for segment_id in ids[50:]}
    fake = FakeKlaviyo(ids, created=created, timezone="America/New_York")
    config = km.config(segment_ids=None, values_timeframe="custom", start_date="2023-06-01", end_date="2025-06-01",
                       max_report_requests=limit)  # fmt: skip
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        output = km.read_source(config, km.catalog("segment_values"), expecting_exception=True)
    return output, fake


def test_max_report_requests_grants_a_full_refresh_stream_exactly_what_its_windows_need() -> None:
    fits, fake = read_values(limit=4)
    assert not fits.errors, fits.errors
    assert len(fake.bodies) == 4 and len(fits.records) == 50 + 50 + 150

    short, fake = read_values(limit=3)
    messages = [e.trace.error.message for e in short.errors]
    expected = (
        "`max_report_requests` (3) leaves segment_values 3 report calls, fewer than the 4 it needs to be read in full: "
        "raise it to at least 4."
    )
    assert expected in messages, messages
    assert fake.bodies == [] and short.records == []  # refused before spending a call or writing part of the table


@pytest.mark.parametrize("status", [404, 500, 429])
def test_an_accounts_endpoint_that_fails_does_not_stop_the_sync(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    # The timezone only refines the plan: a proxy without the endpoint, or an outage of it, is not fatal.
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    fake = FakeKlaviyo(["S0001", "S0002"])
    config = km.config(segment_ids=None)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        mocker.get(f"{km.BASE_URL}/api/accounts", status_code=status, json={"errors": []}, headers={"Retry-After": "1"})
        output = km.read_source(config, km.catalog("segment_series", SyncMode.incremental))
        status_check = SourceKlaviyoSegments(config=config).check(logger=__import__("logging").getLogger(), config=config)
    assert not output.errors, output.errors
    assert {r.record.data["segment_id"] for r in output.records} == {"S0001", "S0002"}
    assert all(b["data"]["attributes"]["timeframe"]["start"].endswith("+00:00") for b in fake.bodies)  # planned without it
    assert status_check.status.name == "SUCCEEDED", status_check.message


def test_a_start_date_in_the_companys_future_is_refused_even_when_it_is_past_in_utc() -> None:
    # Etc/GMT+12 is UTC-12: six hours ago in UTC is six hours ahead of the company's now.
    fake = FakeKlaviyo(["S0001"], timezone="Etc/GMT+12")
    utc_now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    config = km.config(segment_ids=None, start_date=(utc_now - dt.timedelta(hours=6)).isoformat(), end_date=None)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        output = km.read_source(config, km.catalog("segment_series"), expecting_exception=True)
    messages = [e.trace.error.message for e in output.errors]
    assert any("is in the future" in m for m in messages), messages
    assert fake.bodies == []
