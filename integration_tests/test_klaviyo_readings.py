"""The installed connector against every reading of Klaviyo's contract the emulator offers
(issue "Speak Klaviyo's published contract, know the account's timezone").

Each test starts its own emulator in the mode it needs and runs the connector command as Airbyte
does. Expected values come from the emulator's truth oracle and from arithmetic done here with
``zoneinfo``, never from the connector's own helpers. Every report request body the emulator
recorded is checked against Klaviyo's published schemas (formats checked) and the official SDK.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openapi_client.models.segment_series_request_dto import SegmentSeriesRequestDTO
from openapi_client.models.segment_values_request_dto import SegmentValuesRequestDTO

from integration_tests.conftest import Run, config_for, run_connector
from klaviyo_emulator import Emulator, EmulatorConfig
from testkit.published import FORMATS_CHECKED, request_body_errors

NOW = dt.datetime(2025, 3, 1, 12, 0)  # the emulator's "now" (company wall time) where it is fixed
STATISTICS = ("total_members", "members_added", "members_removed", "net_members_changed")
FIRST_DATA_DAY = dt.datetime(2023, 6, 1)
ONE_SECOND = dt.timedelta(seconds=1)
HOUR = dt.timedelta(hours=1)
# Klaviyo's published caps per interval (weekly: a third party's 52 weeks).
CAPS = {"hourly": dt.timedelta(days=7), "daily": dt.timedelta(days=60), "weekly": dt.timedelta(weeks=52)}
SERIES = [("segment_series", "full_refresh")]
INCREMENTAL = [("segment_series", "incremental")]


# -- helpers -------------------------------------------------------------------------------------


def start_emulator(**settings: Any) -> Emulator:
    settings.setdefault("now", NOW)
    return Emulator(EmulatorConfig(**settings))


def succeeded(run: Run) -> None:
    assert run.returncode == 0 and not run.errors(), run.errors() or run.stderr[-3000:]


def naive(value: str) -> dt.datetime:
    """The wall time written in an ISO 8601 string, offset dropped."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def offsets_at(wall: dt.datetime, tz: ZoneInfo) -> set[dt.timedelta | None]:
    """The company offsets a wall time may carry (two around a fall-back)."""
    return {wall.replace(tzinfo=tz, fold=fold).utcoffset() for fold in (0, 1)}


def check_bodies(emu: Emulator, timezone_known: bool = True) -> None:
    """Every report body the emulator recorded: answered 200, valid against the published schema
    (formats checked) and the official SDK model, and carrying the offset the issue promises (the
    company's at that wall time, or +00:00 when the connector may not read the timezone)."""
    assert FORMATS_CHECKED
    calls = emu.report_calls(status=None)
    assert calls, "no report call was made"
    tz = ZoneInfo(emu.config.timezone)
    for call in calls:
        assert call.status == 200, (call.status, call.body)
        assert call.endpoint in ("series", "values")
        assert request_body_errors(call.endpoint, call.body) == []
        model = SegmentSeriesRequestDTO if call.endpoint == "series" else SegmentValuesRequestDTO
        assert model.from_dict(call.body) is not None
        assert len(call.segment_ids) <= 100
        timeframe = call.body["data"]["attributes"]["timeframe"]
        for name in ("start", "end"):
            if name not in timeframe:
                continue
            sent = dt.datetime.fromisoformat(timeframe[name])
            allowed = offsets_at(sent.replace(tzinfo=None), tz) if timezone_known else {dt.timedelta(0)}
            assert sent.utcoffset() in allowed, (name, timeframe[name])


def series_windows(emu: Emulator) -> list[tuple[dt.datetime, dt.datetime]]:
    """The distinct [start, end] wall-time windows of the series calls, in order."""
    windows = {
        (naive(c.timeframe["start"]), naive(c.timeframe["end"]))
        for c in emu.report_calls(status=None)
        if c.endpoint == "series" and c.timeframe and "start" in c.timeframe
    }
    return sorted(windows)


def check_windows_tile(emu: Emulator, interval: str, first: dt.datetime, end: dt.datetime) -> None:
    """Windows are [start, next_start - 1 s], touch without overlapping from `first` to `end`
    (exclusive), and each fits Klaviyo's cap in wall time and in elapsed company time."""
    windows = series_windows(emu)
    assert windows[0][0] == first, windows[0]
    for (_, last_second), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert last_second + ONE_SECOND == next_start, (last_second, next_start)
    assert windows[-1][1] + ONE_SECOND == end, windows[-1]
    tz = ZoneInfo(emu.config.timezone)
    cap = CAPS.get(interval)
    for start, last_second in windows:
        assert start.minute == start.second == 0 and last_second.minute == last_second.second == 59
        if cap is None:
            continue
        wall_span = last_second - start
        real_span = last_second.replace(tzinfo=tz, fold=1).astimezone(dt.timezone.utc) - start.replace(
            tzinfo=tz, fold=0
        ).astimezone(dt.timezone.utc)
        assert wall_span <= cap and real_span <= cap, (start, last_second)


def rows_by_bucket(emu: Emulator, rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """{(segment_id, oracle key): statistics}; each row's date_time is in company time (the same
    instant as Klaviyo's, written with the company's offset) and no bucket comes twice."""
    tz = ZoneInfo(emu.config.timezone)
    oracle_keys: dict[str, str] = {}
    keyed: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        written = row["date_time"]
        if written not in oracle_keys:
            assert dt.datetime.fromisoformat(written).astimezone(tz).isoformat() == written, written
            oracle_keys[written] = emu.bucket_key(written)
        key = (row["segment_id"], oracle_keys[written])
        assert key not in keyed, f"bucket emitted twice: {key}"
        # .get: Airbyte's serializer leaves null fields out: an absent statistic is null
        keyed[key] = {s: row.get(s) for s in STATISTICS}
    return keyed


def week_floor(day: dt.datetime, week_start: str) -> dt.datetime:
    """Start of the week holding `day` (Monday = weekday 0; Sunday = weekday 6)."""
    back = day.weekday() if week_start == "monday" else (day.weekday() + 1) % 7
    return day.replace(hour=0, minute=0, second=0) - dt.timedelta(days=back)


def report_call_count(emu: Emulator) -> int:
    return len(emu.report_calls(status=None))


def accounts_calls(emu: Emulator) -> int:
    return sum(1 for c in emu.calls if c.endpoint == "accounts")


# -- 1, 2: the account's timezone buys Klaviyo's full caps ---------------------------------------


@pytest.mark.parametrize("accounts_scope", [True, False], ids=["timezone-known", "no-accounts-read"])
def test_14_days_hourly_250_segments_calls_and_rows(tmp_path: Path, accounts_scope: bool) -> None:
    """14 days hourly in April 2024 (no DST change): full 7-day windows when the timezone is known
    (2 per batch), 167-hour margins without accounts:read (ceil(336 / 167) = 3 per batch)."""
    with start_emulator(segments=250, accounts_scope=accounts_scope) as emu:
        config = config_for(emu, interval="hourly", start_date="2024-04-01", end_date="2024-04-15")
        if not accounts_scope:
            check = run_connector(tmp_path, "check", config)
            assert check.of("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED", check.messages
            assert emu.report_calls(status=None) == []
            emu.reset_calls()
        run = run_connector(tmp_path, "read", config, INCREMENTAL)
        succeeded(run)
        windows = 14 // 7 if accounts_scope else math.ceil(14 * 24 / 167)  # 2 full caps, or 3 margins
        assert report_call_count(emu) == math.ceil(250 / 100) * windows == (6 if accounts_scope else 9)
        assert accounts_calls(emu) == 1
        check_bodies(emu, timezone_known=accounts_scope)
        check_windows_tile(emu, "hourly", dt.datetime(2024, 4, 1), dt.datetime(2024, 4, 15))
        truth = emu.truth_series("hourly", dt.datetime(2024, 4, 1), dt.datetime(2024, 4, 15))
        assert len(truth) == 250 * 14 * 24
        assert rows_by_bucket(emu, run.records("segment_series")) == truth
        assert run.states()[-1]["stream"]["stream_state"] == {"date_time": "2024-04-14T23:00:00"}


# -- 3: the company's now, and a resumed sync --------------------------------------------------


def test_tokyo_without_end_date_reaches_the_company_hour_and_resumes_from_it(tmp_path: Path) -> None:
    tz = ZoneInfo("Asia/Tokyo")

    def tokyo_hour() -> dt.datetime:
        return dt.datetime.now(tz).replace(tzinfo=None, minute=0, second=0, microsecond=0)

    with start_emulator(segments=3, timezone="Asia/Tokyo", now=None) as emu:
        hour_before = tokyo_hour()
        start = dt.datetime.combine(hour_before.date() - dt.timedelta(days=1), dt.time())
        config = config_for(emu, interval="hourly", start_date=start.date().isoformat(), lookback_window_days=0)
        first = run_connector(tmp_path, "read", config, INCREMENTAL)
        hour_after = tokyo_hour()
        succeeded(first)
        check_bodies(emu)
        rows = first.records("segment_series")
        newest = max(naive(r["date_time"]) for r in rows)
        assert newest in {hour_before, hour_after}, (newest, hour_before, hour_after)
        assert {r["date_time"][19:] for r in rows} == {"+09:00"}
        truth = emu.truth_series("hourly", start, newest + HOUR)
        assert rows_by_bucket(emu, rows) == truth
        assert len(truth) == 3 * int((newest + HOUR - start) / HOUR)
        state = first.states()[-1]
        assert state["stream"]["stream_state"] == {"date_time": newest.isoformat()}

        emu.reset_calls()
        second = run_connector(tmp_path, "read", config, INCREMENTAL, state=[state])
        hour_after_second = tokyo_hour()
        succeeded(second)
        check_bodies(emu)
        starts = [naive(c.body["data"]["attributes"]["timeframe"]["start"]) for c in emu.report_calls(status=None)]
        assert starts and all(s == newest for s in starts), starts  # lookback 0: from the saved bucket
        reread = {naive(r["date_time"]) for r in second.records("segment_series")}
        assert newest in reread and reread <= {newest, newest + HOUR}, reread
        assert max(reread) <= hour_after_second
        again = emu.truth_series("hourly", newest, max(reread) + HOUR)
        assert rows_by_bucket(emu, second.records("segment_series")) == again


# -- 4: weeks starting Sunday or Monday --------------------------------------------------------


@pytest.mark.parametrize("week_start", ["sunday", "monday"])
@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2023-06-01", "2025-02-24"),  # Klaviyo's first day (a Thursday), two 52-week windows
        ("2023-11-15", "2025-01-10"),  # Wednesday to Friday, two 52-week windows
    ],
)
def test_weekly_buckets_once_whichever_day_weeks_start(tmp_path: Path, week_start: str, start: str, end: str) -> None:
    with start_emulator(segments=2, week_start=week_start) as emu:
        config = config_for(emu, interval="weekly", start_date=start, end_date=end)
        run = run_connector(tmp_path, "read", config, SERIES)
        succeeded(run)
        check_bodies(emu)
        begin, stop = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
        first = week_floor(begin, week_start)  # the bucket holding start_date ...
        if first < FIRST_DATA_DAY:  # ... or the first whole one when that begins before Klaviyo's data
            first += dt.timedelta(weeks=1)
        truth = emu.truth_series("weekly", first, stop)
        got = rows_by_bucket(emu, run.records("segment_series"))
        assert got == truth
        starts = sorted({naive(k[1]) for k in got})
        assert starts[0] == first
        assert all(b - a == dt.timedelta(weeks=1) for a, b in zip(starts, starts[1:], strict=False))
        assert {s.weekday() for s in starts} == {6 if week_start == "sunday" else 0}
        assert len(starts) == math.ceil((stop - first) / dt.timedelta(weeks=1))
        windows = series_windows(emu)
        assert len(windows) == math.ceil((stop - windows[0][0]) / CAPS["weekly"])
        check_windows_tile(emu, "weekly", windows[0][0], stop)


# -- 5: date_times written in UTC --------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "interval", "start", "end"),
    [
        ("Australia/Sydney", "daily", "2024-03-01", "2024-05-15"),  # DST ends 2024-04-07
        ("Australia/Sydney", "hourly", "2024-04-03", "2024-04-12"),  # the repeated 02:00 hour
        ("America/New_York", "daily", "2024-10-01", "2024-12-15"),  # DST ends 2024-11-03
        ("America/New_York", "hourly", "2024-11-01", "2024-11-12"),  # the repeated 01:00 hour
    ],
)
def test_date_times_in_utc_each_bucket_once(tmp_path: Path, timezone: str, interval: str, start: str, end: str) -> None:
    with start_emulator(segments=2, timezone=timezone, date_times_in="utc") as emu:
        config = config_for(emu, interval=interval, start_date=start, end_date=end)
        run = run_connector(tmp_path, "read", config, SERIES)
        succeeded(run)
        check_bodies(emu)
        begin, stop = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
        check_windows_tile(emu, interval, begin, stop)
        truth = emu.truth_series(interval, begin, stop)
        assert all(k[1].endswith("+00:00") for k in truth)
        rows = run.records("segment_series")
        assert rows_by_bucket(emu, rows) == truth
        tz = ZoneInfo(timezone)
        utc = dt.timezone.utc  # (aware datetimes sharing a tzinfo subtract as wall times)
        hours = int((stop.replace(tzinfo=tz).astimezone(utc) - begin.replace(tzinfo=tz).astimezone(utc)) / HOUR)
        assert len(truth) == 2 * (hours if interval == "hourly" else (stop - begin).days)


# -- 6: null statistics ------------------------------------------------------------------------


CREATED = (dt.datetime(2024, 3, 6, 6, 30), dt.datetime(2024, 3, 9, 18, 45))  # first and last segment


def test_null_statistics_are_written_as_null(tmp_path: Path) -> None:
    """Segments created mid-range, Klaviyo reporting null before each one's creation.

    Series: a segment has no row before the bucket that holds its creation, and from there on its
    rows are Klaviyo's numbers. Values for a key (relative to now) ask about every segment: the
    ones created after the timeframe carry nulls, and the sync goes on. (Airbyte's serializer
    leaves a null field out of the record: absent is null to every destination.)"""
    with start_emulator(segments=3, created_spread=CREATED, before_creation="null") as emu:
        config = config_for(emu, interval="daily", start_date="2024-03-01", end_date="2024-03-20")
        run = run_connector(tmp_path, "read", config, INCREMENTAL)
        succeeded(run)
        check_bodies(emu)
        truth = emu.truth_series("daily", dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 20))
        kept = {k: v for k, v in truth.items() if v["total_members"] is not None}
        assert len(kept) < len(truth)  # some buckets ended before their segment existed
        assert rows_by_bucket(emu, run.records("segment_series")) == kept

    late = (dt.datetime(2025, 3, 1, 1), dt.datetime(2025, 3, 1, 10))  # after last_month (February 2025), before now
    with start_emulator(segments=3, created_spread=late, before_creation="null") as emu:
        values = [("segment_values", "full_refresh")]
        run = run_connector(tmp_path, "read", config_for(emu, values_timeframe="last_month"), values)
        succeeded(run)
        check_bodies(emu)
        rows = run.records("segment_values")
        assert len(rows) == 3
        assert all(row.get(statistic) is None for row in rows for statistic in STATISTICS), rows
        truth_values = emu.truth_values("last_month")
        assert all(v[s] is None for v in truth_values.values() for s in STATISTICS)

        catalog = run_connector(tmp_path, "discover", config_for(emu)).of("CATALOG")[0]["catalog"]
        for stream in catalog["streams"]:
            if stream["name"] in ("segment_series", "segment_values"):
                for statistic in STATISTICS:
                    declared = stream["json_schema"]["properties"][statistic]["type"]
                    assert "null" in (declared if isinstance(declared, list) else [declared]), (statistic, declared)


# -- 7: how Klaviyo reads a timeframe's edges, and how it measures caps -------------------------


@pytest.mark.parametrize(
    ("edges", "cap_mode", "interval", "start", "end"),
    [
        ("generous", "elapsed", "daily", "2024-01-01", "2024-06-15"),  # 3 windows
        ("generous", "elapsed", "hourly", "2024-03-05", "2024-03-26"),  # 3 windows, spring-forward
        ("strict", "elapsed", "daily", "2024-01-01", "2024-06-15"),
        ("strict", "elapsed", "hourly", "2024-03-05", "2024-03-26"),
        ("generous", "wall", "hourly", "2024-10-28", "2024-11-12"),  # fall-back: margin windows
    ],
)
def test_timeframe_edges_and_cap_readings_each_bucket_once(
    tmp_path: Path, edges: str, cap_mode: str, interval: str, start: str, end: str
) -> None:
    with start_emulator(segments=2, edges=edges, cap_mode=cap_mode) as emu:
        config = config_for(emu, interval=interval, start_date=start, end_date=end)
        run = run_connector(tmp_path, "read", config, SERIES)
        succeeded(run)
        check_bodies(emu)
        begin, stop = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
        check_windows_tile(emu, interval, begin, stop)
        assert len(series_windows(emu)) >= 3
        truth = emu.truth_series(interval, begin, stop)
        assert rows_by_bucket(emu, run.records("segment_series")) == truth


# -- without accounts:read, Klaviyo writing date_times in UTC ----------------------------------


def test_no_accounts_read_and_utc_date_times_say_what_is_at_risk(tmp_path: Path) -> None:
    """Both undocumented points at once: the key may not read the timezone and Klaviyo writes
    date_times in UTC. The connector cannot place them in company time then (Tokyo's midnight is
    15:00 UTC the day before, so a window's first bucket reads as the previous window's): it says
    so once, naming the scope that fixes it."""
    with start_emulator(segments=1, timezone="Asia/Tokyo", date_times_in="utc", accounts_scope=False) as emu:
        config = config_for(emu, interval="daily", start_date="2024-01-01", end_date="2024-03-15")
        run = run_connector(tmp_path, "read", config, SERIES)
        succeeded(run)
        check_bodies(emu, timezone_known=False)
        warnings = [m["log"]["message"] for m in run.of("LOG") if m["log"]["level"] == "WARN" and "UTC" in m["log"]["message"]]
        assert len(warnings) == 1 and "accounts:read" in warnings[0], warnings


# -- 8: only the window holding a fall-back is cut -----------------------------------------------


BUCKET = {"hourly": HOUR, "daily": dt.timedelta(days=1)}


def fewest_windows(interval: str, first: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> int:
    """The fewest whole-bucket windows tiling [first, end) that each fit Klaviyo's cap in wall and
    in elapsed company time: greedily, each as long as fits."""
    cap, count, at = CAPS[interval], 0, first
    while at < end:
        following = min(at + cap, end)
        while following.replace(tzinfo=tz, fold=1).astimezone(dt.timezone.utc) - at.replace(tzinfo=tz) > cap:
            following -= BUCKET[interval]
        count, at = count + 1, following
    return count


# Ranges one window shorter than a margin on every window allows, each holding New York's
# 2024-11-03 fall-back: 335 hours (2 x 167 < 335 <= 168 + 167), 179 days (3 x 59 < 179 <= 60 + 59 + 60).
FALL_BACK_RANGES = {"hourly": ("2024-10-30T00:00:00", "2024-11-12T23:00:00"), "daily": ("2024-09-01", "2025-02-27")}


@pytest.mark.parametrize(
    ("interval", "edges", "cap_mode", "date_times_in"),
    [
        ("hourly", "generous", "elapsed", "company"),
        ("hourly", "strict", "elapsed", "utc"),
        ("daily", "generous", "elapsed", "utc"),
        ("daily", "inclusive", "wall", "company"),
    ],
)
def test_only_the_window_holding_a_fall_back_gives_up_a_bucket(
    tmp_path: Path, interval: str, edges: str, cap_mode: str, date_times_in: str
) -> None:
    """With the timezone known the cursor's windows take Klaviyo's full caps; the call for the
    window holding the fall-back asks for one bucket less, and the calls after it run a bucket
    behind, each reading into the next window. The calls are as few as fit Klaviyo's caps read
    either way, every bucket comes once (120 segments: two batches per call), and the state ends
    at the last bucket."""
    start, end = FALL_BACK_RANGES[interval]
    begin, stop = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
    with start_emulator(segments=120, edges=edges, cap_mode=cap_mode, date_times_in=date_times_in) as emu:
        run = run_connector(tmp_path, "read", config_for(emu, interval=interval, start_date=start, end_date=end), INCREMENTAL)
        succeeded(run)
        check_bodies(emu)
        check_windows_tile(emu, interval, begin, stop)
        windows = fewest_windows(interval, begin, stop, ZoneInfo(emu.config.timezone))
        margin_windows = math.ceil((stop - begin) / (CAPS[interval] - BUCKET[interval]))
        assert len(series_windows(emu)) == windows == margin_windows - 1
        assert report_call_count(emu) == 2 * windows
        truth = emu.truth_series(interval, begin, stop)
        assert rows_by_bucket(emu, run.records("segment_series")) == truth
        last_bucket = (stop - BUCKET[interval]).isoformat()
        assert run.states()[-1]["stream"]["stream_state"] == {"date_time": last_bucket}


def test_a_sync_stopped_after_a_window_that_read_ahead_resumes_without_a_gap(tmp_path: Path) -> None:
    """``max_report_requests`` stops the first sync after the cursor window holding the fall-back,
    whose last call read on into the next window for every batch: the state is the newest bucket
    written, every segment has every bucket up to it, and the next sync finishes the job."""
    begin, stop = dt.datetime(2024, 9, 1), dt.datetime(2025, 4, 28)  # cursor windows of 60 days: 4
    with start_emulator(segments=120, now=dt.datetime(2025, 6, 1)) as emu:
        # Window 1: 2 calls; window 2 (holds the fall-back): its own 59 days, then 60 more, 4 calls;
        # window 3 would need 2 more.
        config = config_for(emu, interval="daily", start_date="2024-09-01", end_date="2025-04-28", max_report_requests=6)
        first = run_connector(tmp_path, "read", config, INCREMENTAL)
        # A first sync (no state) may be a full refresh: stopped short, it ends with a config error
        # once the state of what it read is saved.
        assert first.returncode == 1
        assert first.errors()[0]["message"].startswith("`max_report_requests` (6) stopped segment_series after 6 of its 8")
        assert report_call_count(emu) == 6
        truth = emu.truth_series("daily", begin, stop)
        written = rows_by_bucket(emu, first.records("segment_series"))
        newest = max(naive(key[1]) for key in written)
        read_until = begin + CAPS["daily"] + (CAPS["daily"] - BUCKET["daily"]) + CAPS["daily"]
        assert newest == read_until - BUCKET["daily"]
        assert first.states()[-1]["stream"]["stream_state"] == {"date_time": newest.isoformat()}
        assert written == {key: value for key, value in truth.items() if naive(key[1]) <= newest}

        second = run_connector(tmp_path, "read", config, INCREMENTAL, state=[first.states()[-1]])
        succeeded(second)
        resumed = rows_by_bucket(emu, second.records("segment_series"))
        # From the lookback (one day) before the state on, to the end: nothing missed.
        assert min(naive(key[1]) for key in resumed) == newest - BUCKET["daily"]
        assert {**written, **resumed} == truth
