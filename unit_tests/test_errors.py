"""Error paths: Klaviyo's refusals become one actionable sentence, retries are bounded, the daily
quota ends a sync with its finished windows saved, and the API key never leaks."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import requests_mock
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, FailureType, Status, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.state_builder import StateBuilder
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo_segments import SourceKlaviyoSegments
from source_klaviyo_segments.components import config_problem, prepare_config
from source_klaviyo_segments.run import run
from unit_tests import klaviyo_mock as km
from unit_tests.klaviyo_mock import FakeKlaviyo

SERIES_URL = f"{km.BASE_URL}/api/segment-series-reports"
VALUES_URL = f"{km.BASE_URL}/api/segment-values-reports"
# 2024-01-01..2024-04-28 is 118 days: without the timezone, windows are at most 59 days, and the
# fewest that cover it are two full ones, whatever plan the connector picks among the fewest.
END_DATE = "2024-04-28"
DAYS = 118
SECOND_WINDOW = "2024-02-29T00:00:00"
FIRST_WINDOW_LAST_BUCKET = "2024-02-28T00:00:00"
IDS = ["SEG001", "SEG002"]


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps are recorded, not slept."""
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", lambda seconds: slept.append(seconds))
    return slept


def read_series(responses_for_window: dict[str, list[dict[str, Any]]], **overrides: Any) -> tuple[EntrypointOutput, FakeKlaviyo]:
    """Reads daily series for 2024-01-01..``END_DATE`` (two windows of 59 days: the second starts at
    ``SECOND_WINDOW``); a window whose start is a key of ``responses_for_window`` gets those canned
    responses first, then the fake's real answer."""
    config = km.config(**{"end_date": END_DATE, **overrides})
    fake = FakeKlaviyo(IDS)
    pending = {start: list(responses) for start, responses in responses_for_window.items()}
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        real_answer = fake._series

        def answer(request: Any, context: Any) -> Any:
            start = json.loads(request.body)["data"]["attributes"]["timeframe"]["start"][:19]  # the wall time
            if pending.get(start):
                fake.bodies.append(json.loads(request.body))  # every attempt, answered or not
                canned = pending[start].pop(0)
                context.status_code = canned["status"]
                context.headers.update(canned.get("headers", {}))
                return canned.get("json", {})
            return real_answer(request, context)

        mocker.post(SERIES_URL, json=answer)
        output = read(
            SourceKlaviyoSegments(config=config),
            config,
            km.catalog("segment_series", SyncMode.incremental),
            expecting_exception=True,
        )
    return output, fake


def klaviyo_error(status: int, detail: str) -> dict[str, Any]:
    return {"errors": [{"id": "x", "status": status, "code": "invalid", "title": "Invalid input.", "detail": detail}]}


def all_output(output: EntrypointOutput) -> str:
    return "\n".join(json.dumps(m.model_dump() if hasattr(m, "model_dump") else str(m), default=str) for m in output._messages)


def test_a_400_stops_with_klaviyos_detail_as_a_config_error() -> None:
    detail = "The timeframe for daily interval cannot be longer than 60 days."
    output, _ = read_series({"2024-01-01T00:00:00": [{"status": 400, "json": klaviyo_error(400, detail)}]})
    errors = [e.trace.error for e in output.errors]
    assert any(e.failure_type == FailureType.config_error and detail in e.message for e in errors), errors


@pytest.mark.parametrize("body", [[], None, {"errors": []}, {"errors": [None]}, {"errors": "down"}, "Bad Gateway"])
def test_error_bodies_of_any_shape_are_retried_or_refused_cleanly(body: Any) -> None:
    # A proxy or an outage may answer with anything; the error message must not be what breaks.
    output, _ = read_series({SECOND_WINDOW: [{"status": 503, "json": body}]})
    assert not output.errors, output.errors
    assert len(output.records) == 2 * DAYS

    output, _ = read_series({"2024-01-01T00:00:00": [{"status": 400, "json": body}]})
    errors = [e.trace.error for e in output.errors]
    assert any(
        e.failure_type == FailureType.config_error and e.message == "Klaviyo refused the request (4XX): no detail given"
        for e in errors
    ), errors


def test_429_waits_what_retry_after_says_then_succeeds(no_real_sleep: list[float]) -> None:
    throttled = {"status": 429, "headers": {"Retry-After": "7"}, "json": klaviyo_error(429, "Request was throttled.")}
    output, _ = read_series({"2024-01-01T00:00:00": [throttled, throttled]})
    assert not output.errors
    # Exactly what Retry-After asks, never less, plus the second of margin the CDK always adds
    # (airbyte_cdk/sources/streams/http/rate_limiting.py); the pacer's burst gaps stay under a second.
    assert [s for s in no_real_sleep if s > 1] == [7 + 1, 7 + 1]
    assert len({(r.record.data["segment_id"], r.record.data["date_time"]) for r in output.records}) == 2 * DAYS


def test_5xx_is_retried_with_backoff() -> None:
    failing = {"status": 503, "json": klaviyo_error(503, "MetricServiceRetryableError")}
    output, _ = read_series({SECOND_WINDOW: [failing, failing, failing]})
    assert not output.errors
    assert len(output.records) == 2 * DAYS


def test_persistent_5xx_gives_up_after_bounded_retries() -> None:
    failing = {"status": 503, "json": klaviyo_error(503, "MetricServiceRetryableError")}
    output, fake = read_series({SECOND_WINDOW: [failing] * 50})
    assert output.errors
    assert len(fake.bodies) == 1 + 1 + 5  # the healthy window, then the failing one tried and retried 5 times


def test_daily_quota_ends_the_sync_with_finished_windows_saved() -> None:
    quota = {"status": 429, "headers": {"Retry-After": "18000"}, "json": klaviyo_error(429, "Request was throttled.")}
    output, _ = read_series({SECOND_WINDOW: [quota]})
    errors = [e.trace.error for e in output.errors]
    assert any(
        e.failure_type == FailureType.transient_error and "daily report quota" in e.message and "5 h 00 min" in e.message
        for e in errors
    ), errors
    # The first window (Jan 1 to Feb 28) finished for every batch: its newest bucket is the state.
    states = [s.state.stream.stream_state.__dict__ for s in output.state_messages]
    assert {"date_time": FIRST_WINDOW_LAST_BUCKET} in states
    assert all(s.get("date_time", "") <= FIRST_WINDOW_LAST_BUCKET for s in states)


def test_a_long_retry_after_on_a_503_is_not_called_the_daily_quota() -> None:
    outage = {"status": 503, "headers": {"Retry-After": "18000"}, "json": klaviyo_error(503, "Maintenance.")}
    output, _ = read_series({SECOND_WINDOW: [outage]})
    messages = [e.trace.error.message for e in output.errors]
    assert any(m.startswith("Klaviyo asked the connector (503) to come back in 5 h 00 min") for m in messages), messages
    assert not any("quota" in m for m in messages), messages


def one_bucket_report(statistics: dict[str, Any]) -> dict[str, Any]:
    """A series report for one bucket of SEG001 carrying ``statistics`` as given."""
    results = [{"groupings": {"segment_id": "SEG001"}, "statistics": statistics}]
    return {"data": {"attributes": {"results": results, "date_times": ["2024-03-01T00:00:00-05:00"]}}}


ALL_STATISTICS = ("total_members", "members_added", "members_removed", "net_members_changed")


@pytest.mark.parametrize(
    "malformed",
    [
        one_bucket_report({"total_members": [1]}),
        one_bucket_report({s: [1, 2] for s in ALL_STATISTICS}),
        one_bucket_report({s: ["n/a"] for s in ALL_STATISTICS}),
        {"data": {}},
    ],
    ids=["missing-statistic", "wrong-length", "not-a-number", "no-results"],
)
def test_malformed_reports_stop_the_stream_with_a_clear_error(malformed: dict[str, Any]) -> None:
    output, _ = read_series({SECOND_WINDOW: [{"status": 200, "json": malformed}]})
    messages = [e.trace.error.message for e in output.errors]
    assert any("Klaviyo sent a report the connector cannot read" in m for m in messages), messages
    assert not [r for r in output.records if r.record.data["date_time"] >= SECOND_WINDOW]


def test_null_statistics_are_written_as_null_and_the_sync_goes_on() -> None:
    # Klaviyo's response schema leaves statistics untyped; a segment that did not exist yet has none.
    nulls = one_bucket_report({s: [None] for s in ALL_STATISTICS})
    output, _ = read_series({SECOND_WINDOW: [{"status": 200, "json": nulls}]})
    assert not output.errors, output.errors
    row = next(r.record.data for r in output.records if r.record.data["date_time"].startswith("2024-03-01"))
    # Airbyte's serializer drops null fields: absent is null to every destination.
    assert all(row.get(s) is None for s in ALL_STATISTICS) and row["segment_id"] == "SEG001"
    second_window = [r.record.data for r in output.records if r.record.data["date_time"] >= SECOND_WINDOW]
    assert second_window == [row]  # the window's report held one bucket; nothing else was invented


def test_the_api_key_never_appears_even_when_klaviyo_echoes_the_request(
    tmp_path: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    echo = klaviyo_error(400, f"Bad request with headers Authorization: Klaviyo-API-Key {km.API_KEY}")
    config_path, catalog_path = tmp_path / "config.json", tmp_path / "catalog.json"
    config_path.write_text(json.dumps(km.config()))
    catalog_path.write_text(
        json.dumps(
            km.catalog("segment_series", SyncMode.incremental).model_dump(mode="json")
            if hasattr(km.catalog("segment_series"), "model_dump")
            else ConfiguredAirbyteCatalogSerializer.dump(km.catalog("segment_series", SyncMode.incremental))
        )
    )
    fake = FakeKlaviyo(IDS)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        mocker.post(SERIES_URL, status_code=400, json=echo)
        # The CDK's entrypoint ends a sync whose stream failed by raising (its hook prints it, exit 1).
        with pytest.raises(AirbyteTracedException):
            run(["read", "--config", str(config_path), "--catalog", str(catalog_path)])
    printed = capfd.readouterr()  # the CDK logs to the stdout it was set up with
    lines = [json.loads(line) for line in printed.out.splitlines() if line.startswith('{"type":"TRACE"')]
    errors = [line["trace"]["error"]["message"] for line in lines if line["trace"]["type"] == "ERROR"]
    assert errors[0] == "Klaviyo refused the request (400): Bad request with headers Authorization: Klaviyo-API-Key ****"
    assert km.API_KEY not in printed.out + printed.err
    # Nothing of the answer but the response filter's sentence: no request or answer dump in any line.
    assert "Request (body)" not in printed.out and "Response (headers)" not in printed.out


def test_a_key_pasted_with_a_line_break_is_sent_trimmed_and_never_printed(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path, catalog_path = tmp_path / "config.json", tmp_path / "catalog.json"
    config_path.write_text(json.dumps(km.config(api_key=f" {km.API_KEY}\n", end_date=END_DATE)))
    catalog = km.catalog("segment_series", SyncMode.incremental)
    catalog_path.write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog)))
    fake = FakeKlaviyo(IDS)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        real_answer = fake._series

        def echo_on_the_second_window(request: Any, context: Any) -> Any:
            # Klaviyo may echo the request's headers in an error: here is an error path to print the key.
            if json.loads(request.body)["data"]["attributes"]["timeframe"]["start"].startswith(SECOND_WINDOW):
                context.status_code = 400
                return klaviyo_error(400, f"Bad request with headers Authorization: {request.headers['Authorization']}")
            return real_answer(request, context)

        mocker.post(SERIES_URL, json=echo_on_the_second_window)
        with pytest.raises(AirbyteTracedException):  # the CDK's end of a sync whose stream failed
            run(["read", "--config", str(config_path), "--catalog", str(catalog_path)])
        sent = {r.headers["Authorization"] for r in mocker.request_history}
    assert sent == {f"Klaviyo-API-Key {km.API_KEY}"}
    printed = capsys.readouterr()
    assert '"type": "RECORD"' in printed.out or '"type":"RECORD"' in printed.out
    assert "Klaviyo refused the request (400): Bad request with headers Authorization: Klaviyo-API-Key " in printed.out
    assert km.API_KEY not in printed.out + printed.err


def test_check_names_missing_segments_and_spends_no_report_call() -> None:
    config = km.config(segment_ids=["SEG001", "GONE99"])
    fake = FakeKlaviyo(["SEG001", "SEG002"])
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        status = SourceKlaviyoSegments(config=config).check(logger=__import__("logging").getLogger(), config=config)
        posts = [r for r in mocker.request_history if r.method == "POST"]
    assert status.status == Status.FAILED
    assert "GONE99" in (status.message or "") and "SEG001" not in (status.message or "")
    assert posts == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"start_date": "2024-05-01", "end_date": "2024-01-01"}, "must be later than `start_date`"),
        ({"start_date": "yesterday"}, "`start_date` is 'yesterday': write it YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, such as"),
        ({"segment_ids": []}, "`segment_ids` is empty"),
        ({"segment_ids": ["A", "A"]}, "more than once"),
        ({"statistics": ["total_members", "bogus"]}, "`statistics` has 'bogus', which is not one of total_members,"),
        ({"interval": "yearly"}, "`interval`"),
        ({"values_timeframe": "last_2_days"}, "`values_timeframe`"),
        ({"base_url": "a.klaviyo.com"}, "`base_url` is 'a.klaviyo.com': write it http(s)://host[:port][/path]"),
        ({"lookback_window_days": -1}, "`lookback_window_days`"),
        ({"api_key": "pk_abc def"}, "`api_key` has a space"),
        # Wrong JSON types: the field and what it must be, not "is empty".
        ({"segment_ids": "abc123"}, '`segment_ids` must be a list of segment ids, such as ["RpKvCF"].'),
        ({"statistics": "total_members"}, '`statistics` must be a list of statistics, such as ["total_members"'),
        ({"lookback_window_days": "2"}, "`lookback_window_days` must be a whole number, 0 or more."),
        ({"start_date": 20240101}, "`start_date` must be text written YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, such as 2024-01-01"),
    ],
)
def test_bad_config_is_refused_in_one_sentence(overrides: dict[str, Any], expected: str) -> None:
    config = km.config(**overrides)
    status = SourceKlaviyoSegments(config=config).check(logger=__import__("logging").getLogger(), config=config)
    assert status.status == Status.FAILED
    assert expected in (status.message or "")
    assert status.message.count(". ") <= 1 and "Traceback" not in status.message


def test_whole_numbers_written_as_floats_are_accepted_as_the_spec_accepts_them() -> None:
    # JSON Schema counts 2.0 as an integer, so a UI or a script may send it; refusing it would
    # contradict the spec the user was shown.
    output, fake = read_series({}, end_date="2024-03-15", lookback_window_days=2.0, max_report_requests=50.0)
    assert not output.errors, output.errors
    assert {r.record.data["segment_id"] for r in output.records} == set(IDS)
    assert len(fake.bodies) == 2  # both windows read: a budget of 50.0 means 50


def test_an_end_date_in_the_future_spends_no_report_call_on_the_future() -> None:
    now = lambda: dt.datetime(2024, 3, 10, 12)  # noqa: E731
    derived = prepare_config(km.config(start_date="2024-01-01", end_date="2030-01-01", values_timeframe="custom"), km.SPEC, now)[
        "_derived"
    ]
    assert derived["series_end"] == "2024-03-10T11:59:59"
    assert [t["request_timeframe"] for t in derived["values_timeframes"]] == [
        {"start": "2024-01-01T00:00:00+00:00", "end": "2024-03-10T11:59:59+00:00"}
    ]
    problem = config_problem(km.config(start_date="2024-04-01", end_date=None), km.SPEC, now)
    assert problem == "`start_date` (2024-04-01T00:00:00) is in the future: Klaviyo has no segment data for it yet."


@pytest.mark.parametrize(("remaining", "expected_waits"), [("0", [30.0]), ("3", [])])
def test_report_calls_wait_out_the_window_only_when_ratelimit_headers_say_it_is_used_up(
    no_real_sleep: list[float], remaining: str, expected_waits: list[float]
) -> None:
    config = km.config()
    fake = FakeKlaviyo(IDS)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        mocker.post(SERIES_URL, json=fake._series, headers={"RateLimit-Remaining": remaining, "RateLimit-Reset": "30"})
        output = km.read_source(config, km.catalog("segment_series", SyncMode.incremental))
    assert not output.errors
    assert len(fake.bodies) == 2
    # Pacing happens before a call, never as a fixed sleep: one wait, before the second window.
    assert [s for s in no_real_sleep if s >= 1] == pytest.approx(expected_waits, abs=0.5)


def test_both_report_streams_wait_for_one_pacer_so_the_second_stream_meets_no_spent_minute(
    no_real_sleep: list[float],
) -> None:
    # Klaviyo's limits are per account: segment_values' answer says the minute is used up, so
    # segment_series' first call waits for its reset instead of earning a 429.
    config = km.config()
    fake = FakeKlaviyo(IDS)
    spent = {"RateLimit-Remaining": "0", "RateLimit-Reset": "30"}
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        mocker.post(VALUES_URL, json=fake._values, headers=spent)
        mocker.post(SERIES_URL, json=fake._series, headers={"RateLimit-Remaining": "1", "RateLimit-Reset": "50"})
        catalog = CatalogBuilder().with_stream("segment_values", SyncMode.full_refresh).with_stream(
            "segment_series", SyncMode.incremental
        ).build()
        output = km.read_source(config, catalog)
    assert not output.errors
    assert [b["data"]["type"] for b in fake.bodies][:2] == ["segment-values-report", "segment-series-report"]
    assert [s for s in no_real_sleep if s >= 1] == pytest.approx([30.0], abs=0.5)


def test_check_reports_an_unreachable_base_url_within_seconds(no_real_sleep: list[float]) -> None:
    config = km.config()
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{km.BASE_URL}/api/segments", exc=__import__("requests").exceptions.ConnectionError("refused"))
        status = SourceKlaviyoSegments(config=config).check(logger=__import__("logging").getLogger(), config=config)
    assert status.status == Status.FAILED
    assert km.BASE_URL in (status.message or "") and "base_url" in (status.message or "")
    assert sum(no_real_sleep) < 20


def test_max_report_requests_ends_the_sync_cleanly_and_the_next_one_finishes() -> None:
    def sync(state: list[Any] | None) -> tuple[EntrypointOutput, FakeKlaviyo]:
        config = km.config(start_date="2024-01-01", end_date="2024-06-01", max_report_requests=2)
        fake = FakeKlaviyo(IDS + [f"X{n:03d}" for n in range(150)])  # 2 batches of ids per window
        config["segment_ids"] = fake.segment_ids
        with requests_mock.Mocker() as mocker:
            fake.install(mocker)
            catalog = km.catalog("segment_series", SyncMode.incremental)
            output = read(SourceKlaviyoSegments(catalog=catalog, config=config, state=state), config, catalog, state)
        return output, fake

    # The first sync starts from no state: it may be a full refresh, so stopping short is an error
    # (a config error: the platform does not retry it), after the state of what it read is saved.
    first, fake = sync(None)
    (error, *_) = [e.trace.error for e in first.errors]
    assert error.failure_type == FailureType.config_error
    assert error.message.startswith("`max_report_requests` (2) stopped segment_series after 2 of its 6 report calls")
    assert len(fake.bodies) == 2  # one whole window (both batches), then the allowance is spent
    state = first.most_recent_state.stream_state.__dict__
    assert state == {"date_time": FIRST_WINDOW_LAST_BUCKET}

    rows = {(r.record.data["segment_id"], r.record.data["date_time"]) for r in first.records}
    while True:
        state_messages = StateBuilder().with_stream_state("segment_series", state).build()
        following, fake = sync(state_messages)  # resumed from a state: incremental, so it ends cleanly
        assert not following.errors and len(fake.bodies) <= 2
        if following.most_recent_state.stream_state.__dict__ != {"date_time": "2024-05-31T00:00:00"}:
            assert "`max_report_requests` (2) reached" in " ".join(m.log.message for m in following.logs)
        rows |= {(r.record.data["segment_id"], r.record.data["date_time"]) for r in following.records}
        new_state = following.most_recent_state.stream_state.__dict__
        if new_state == state:
            break
        state = new_state
    assert state == {"date_time": "2024-05-31T00:00:00"}
    assert len(rows) == 152 * 152  # 152 segments x 152 days (Jan 1 to May 31), none missing


def read_values_and_series(
    series_mode: SyncMode, max_report_requests: int, series_first: bool = False
) -> tuple[EntrypointOutput, FakeKlaviyo]:
    """segment_values (last_30_days) and segment_series (Jan to May 2024: 3 windows) for 152
    segments: 2 batches, so values needs 2 report calls and series 6."""
    fake = FakeKlaviyo(IDS + [f"X{n:03d}" for n in range(150)])
    config = km.config(
        start_date="2024-01-01", end_date="2024-06-01", segment_ids=fake.segment_ids, max_report_requests=max_report_requests
    )
    # Discover's order, in which Airbyte reads them (the streams share max_report_requests in read order).
    catalog = (
        CatalogBuilder().with_stream("segment_values", SyncMode.full_refresh).with_stream("segment_series", series_mode).build()
    )
    if series_first:
        catalog.streams.reverse()
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        output = read(SourceKlaviyoSegments(catalog=catalog, config=config), config, catalog, expecting_exception=True)
    return output, fake


STOPPED_AFTER_2_OF_6 = "`max_report_requests` (4) stopped segment_series after 2 of its 6 report calls"


def final_statuses(output: EntrypointOutput) -> dict[str, str]:
    return {name: output.get_stream_statuses(name)[-1].name for name in ("segment_values", "segment_series")}


def test_max_report_requests_keeps_the_calls_a_full_refresh_stream_needs() -> None:
    # Values cannot resume, so its 2 calls are kept for it; series takes the other 2: one whole
    # window, its state saved, then a config error (it started from no state: maybe a full refresh).
    output, fake = read_values_and_series(SyncMode.incremental, max_report_requests=4)
    values = [r for r in output.records if r.record.stream == "segment_values"]
    assert len({r.record.data["segment_id"] for r in values}) == 152
    series_calls = [b for b in fake.bodies if b["data"]["type"] == "segment-series-report"]
    assert len(series_calls) == 2
    (error, *_) = [e.trace.error for e in output.errors]
    assert error.message.startswith("`max_report_requests` (4) stopped segment_series after 2 of its 6 report calls")
    assert final_statuses(output) == {"segment_values": "COMPLETE", "segment_series": "INCOMPLETE"}


@pytest.mark.parametrize(
    ("series_mode", "limit", "cut_short", "sentence"),
    [
        (SyncMode.full_refresh, 4, "segment_series", STOPPED_AFTER_2_OF_6),
        (SyncMode.incremental, 4, "segment_series", STOPPED_AFTER_2_OF_6),
        (SyncMode.incremental, 1, "segment_values", "`max_report_requests` (1) leaves segment_values 1 report call, "
         "fewer than the 2 it needs to be read in full: raise it to at least 2."),
    ],
)  # fmt: skip
def test_a_stream_read_short_from_no_state_fails_rather_than_end_short(
    series_mode: SyncMode, limit: int, cut_short: str, sentence: str
) -> None:
    # Ending "cleanly" would let an overwrite destination replace the table with part of it. The
    # components never see the sync mode: both modes give the same verdict.
    output, _ = read_values_and_series(series_mode, max_report_requests=limit)
    errors = [e.trace.error for e in output.errors]
    assert any(e.failure_type == FailureType.config_error and e.message.startswith(sentence) for e in errors), errors
    assert final_statuses(output)[cut_short] == "INCOMPLETE"


def test_a_catalog_that_reads_series_first_leaves_values_a_sentence_counting_what_series_took() -> None:
    output, fake = read_values_and_series(SyncMode.incremental, max_report_requests=4, series_first=True)
    assert len(fake.bodies) == 4 and all(b["data"]["type"] == "segment-series-report" for b in fake.bodies)
    messages = [e.trace.error.message for e in output.errors]
    assert (
        "`max_report_requests` (4) leaves segment_values 0 report calls after 4 for segment_series, "
        "fewer than the 2 it needs to be read in full: raise it to at least 6."
    ) in messages
    assert final_statuses(output) == {"segment_values": "INCOMPLETE", "segment_series": "INCOMPLETE"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"start_date": "01/01/2025"}, "start_date"),
        ({"segment_ids": []}, "segment_ids"),
        ({"lookback_window_days": -1}, "lookback_window_days"),
        ({"max_report_requests": "2"}, "max_report_requests"),
        ({"interval": "yearly"}, "interval"),
    ],
)
def test_the_command_line_refuses_a_config_the_spec_refuses_in_the_connectors_words(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], overrides: dict[str, Any], field: str
) -> None:
    # The CDK's own schema messages quote a regex or a bare value, without naming the field.
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(km.config(**overrides)))
    run(["check", "--config", str(config_path)])
    statuses = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "CONNECTION_STATUS" in line]
    message = statuses[-1]["connectionStatus"]["message"]
    assert statuses[-1]["connectionStatus"]["status"] == "FAILED"
    # The CDK wraps a check's reason (the same in every runtime); the sentence is the connector's.
    assert config_problem(km.config(**overrides), km.SPEC) in message
    assert f"`{field}`" in message and "Config validation error" not in message


def test_a_segment_gone_from_the_account_is_skipped_with_a_warning() -> None:
    output, _ = read_series({}, segment_ids=["SEG001", "GONE99"])
    assert not output.errors, output.errors
    assert {r.record.data["segment_id"] for r in output.records} == {"SEG001"}
    warnings = [m.log.message for m in output.logs if m.log.level.name == "WARN"]
    assert any("GONE99" in w and "`segment_ids`" in w for w in warnings), warnings


def test_a_sync_whose_segments_are_all_gone_fails_without_moving_the_state() -> None:
    output, fake = read_series({}, segment_ids=["GONE98", "GONE99"])
    messages = [e.trace.error.message for e in output.errors]
    expected = (
        "None of the `segment_ids` is in the Klaviyo account (GONE98, GONE99): "
        "fix them, or remove the field to read every segment."
    )
    assert expected in messages
    assert not fake.bodies
    states = [s.state.stream.stream_state.__dict__ for s in output.state_messages]
    assert all(s.get("date_time", "") <= "2024-01-01T00:00:00" for s in states), states  # never past the start


@pytest.mark.parametrize(
    ("flag", "content", "expected"),
    [
        ("config", None, "does not exist: check the path given to --config."),
        ("config", "{not json", "is not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
        ("config", "[1, 2]", "is valid JSON but not a JSON object of settings"),
        ("catalog", None, "does not exist: check the path given to --catalog."),
        ("catalog", '{"streams": 3}', "is valid JSON but not an Airbyte configured catalog"),
        ("state", "nope", "is not valid JSON"),
        ("state", '[{"type": "NOPE"}]', "is valid JSON but not a list of Airbyte state messages"),
    ],
)
def test_a_missing_or_broken_file_is_one_sentence_naming_it_and_a_non_zero_exit(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], flag: str, content: str | None, expected: str
) -> None:
    files = {"config": tmp_path / "config.json", "catalog": tmp_path / "catalog.json", "state": tmp_path / "state.json"}
    files["config"].write_text(json.dumps(km.config()))
    files["catalog"].write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(km.catalog("segment_series"))))
    files["state"].write_text("[]")
    if content is None:
        files[flag].unlink()
    else:
        files[flag].write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        run(["read", "--config", str(files["config"]), "--catalog", str(files["catalog"]), "--state", str(files["state"])])
    assert exit_info.value.code == 1
    printed = capsys.readouterr()
    (line,) = [json.loads(x) for x in printed.out.splitlines() if x.startswith("{")]
    message = line["trace"]["error"]["message"]
    assert message.startswith(f"The {flag} file {files[flag]} {expected}")
    assert line["trace"]["error"]["failure_type"] == "config_error"
    assert "Traceback" not in printed.out + printed.err and message.count(". ") == 0
