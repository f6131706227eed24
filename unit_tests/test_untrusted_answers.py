"""Nothing an answer says is trusted: of a segment page's ``links.next`` only the cursor (its
query) is used, every page is asked of ``base_url`` (the API key goes nowhere else, whatever host
the link names) and a listing ends after ``max_pages`` pages; a listed segment needs an id and a
readable ``created``, and a report must answer what its call asked. Each wrong answer ends its
stream with one sentence naming the call, and spends no further report call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock
import yaml
from airbyte_cdk.models import AirbyteMessageSerializer, FailureType, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo_segments import SourceKlaviyoSegments, components
from source_klaviyo_segments.components import (
    MOST_LISTING_PAGES,
    BucketWindowFilter,
    SameHostCursorPagination,
    SeriesRowExtractor,
    ValuesRowExtractor,
    plan_segment_batches,
)
from unit_tests import klaviyo_mock as km
from unit_tests.klaviyo_mock import FakeKlaviyo

SEGMENTS_URL = f"{km.BASE_URL}/api/segments"
SERIES_URL = f"{km.BASE_URL}/api/segment-series-reports"
VALUES_URL = f"{km.BASE_URL}/api/segment-values-reports"
MANIFEST = Path(components.__file__).parent / "manifest.yaml"


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def read_with(pages: list[dict[str, Any]], stream: str = "segments", **overrides: Any) -> tuple[EntrypointOutput, list[Any]]:
    """Reads ``stream`` with ``GET /api/segments`` answering ``pages`` in turn; every other host
    answers too (an empty page), so that a request sent there is seen, not refused by the mock."""
    config = km.config(**overrides)
    fake = FakeKlaviyo(["SEG001", "SEG002"])
    answers = iter(pages)
    with requests_mock.Mocker() as mocker:
        mocker.register_uri(requests_mock.ANY, requests_mock.ANY, json={"data": []})
        fake.install(mocker)
        mocker.get(SEGMENTS_URL, json=lambda request, context: next(answers, {"data": []}))
        mode = SyncMode.incremental if stream == "segment_series" else SyncMode.full_refresh
        output = read(SourceKlaviyoSegments(config=config), config, km.catalog(stream, mode), expecting_exception=True)
        history = list(mocker.request_history)
    return output, history


def page(ids: list[str], next_link: str | None = None, **attributes: Any) -> dict[str, Any]:
    segments = [km.segment(i) for i in ids]
    for segment in segments:
        segment["attributes"].update(attributes)
    return {"data": segments, "links": {"self": SEGMENTS_URL, "next": next_link}}


def error_messages(output: EntrypointOutput) -> list[str]:
    return [e.trace.error.message for e in output.errors]


FIELDS = "fields%5Bsegment%5D=name%2Ccreated%2Cupdated%2Cis_active%2Cis_processing%2Cis_starred"


def listing_requests(history: list[Any]) -> list[Any]:
    return [r for r in history if r.path.rstrip("/") == "/api/segments"]


@pytest.mark.parametrize(
    "next_host",
    [
        "http://127.0.0.2:8765",  # another host: the one behind a proxy at base_url
        "http://127.0.0.1:9999",  # another port
        "https://127.0.0.1:8765",  # another scheme
        "//evil.example",  # scheme-relative
        "https://a.klaviyo.com",  # Klaviyo itself, behind a proxy
        "http://user:pass@127.0.0.2:8765",  # credentials of its own, which requests would send
        "",  # relative
    ],
)
def test_every_next_page_is_asked_of_base_url_with_the_links_cursor_whatever_host_it_names(next_host: str) -> None:
    first = page(["SEG001"], f"{next_host}/api/segments/?{FIELDS}&page%5Bcursor%5D=c2")
    second = page(["SEG002"], f"{next_host}/api/segments/?{FIELDS}&page%5Bcursor%5D=c3")
    output, history = read_with([first, second, page(["SEG003"])])
    assert not output.errors, error_messages(output)
    assert [r.record.data["id"] for r in output.records] == ["SEG001", "SEG002"]  # SEG003 is not in segment_ids
    assert {(r.scheme, r.netloc) for r in history} == {("http", "127.0.0.1:8765")}, [r.url for r in history]
    pages = listing_requests(history)
    assert [r.qs.get("page[cursor]") for r in pages] == [None, ["c2"], ["c3"]]
    assert all(r.path == "/api/segments" for r in pages)  # base_url's path, not the link's
    assert all(r.qs["fields[segment]"] == ["name,created,updated,is_active,is_processing,is_starred"] for r in pages)
    assert all(r.headers["Authorization"] == f"Klaviyo-API-Key {km.API_KEY}" for r in pages)
    assert km.API_KEY not in json.dumps([AirbyteMessageSerializer.dump(m) for m in output._messages])


def test_a_next_link_without_the_fields_is_asked_with_them() -> None:
    output, history = read_with([page(["SEG001"], "https://a.klaviyo.com/api/segments/?page%5Bcursor%5D=c2"), page(["SEG002"])])
    assert not output.errors, error_messages(output)
    asked = listing_requests(history)[1]
    assert asked.qs["page[cursor]"] == ["c2"] and asked.qs["fields[segment]"], asked.url


@pytest.mark.parametrize(
    "link",
    [
        "http://[::1",  # not a URL
        "next, please",  # nothing a URL could be read from
        "https://a.klaviyo.com/api/segments/?fields%5Bsegment%5D=name",  # no cursor
        "https://a.klaviyo.com/api/segments/?page%5Bcursor%5D=",  # an empty one
        "https://a.klaviyo.com/api/segments/page/2",  # the cursor in the path, where base_url's path goes
    ],
)
def test_a_next_link_carrying_no_cursor_ends_the_listing_in_one_sentence(link: str) -> None:
    output, history = read_with([page(["SEG001"], link)])
    stopped = [e.trace.error for e in output.errors if e.trace.error.message.startswith("The answer to GET /api/segments")]
    assert stopped, error_messages(output)
    assert stopped[0].message.startswith(
        f"The answer to GET /api/segments named as its next page {link!r}, which carries no page[cursor]"
    )
    assert "\n" not in stopped[0].message and stopped[0].failure_type == FailureType.system_error
    assert len(listing_requests(history)) == 1
    assert {(r.scheme, r.netloc) for r in history} == {("http", "127.0.0.1:8765")}


def test_a_next_link_back_to_a_page_already_read_ends_the_listing() -> None:
    looping = page(["SEG001"], "https://a.klaviyo.com/api/segments?page%5Bcursor%5D=2")
    output, history = read_with([looping, looping, looping])
    assert any("named as its next page one already read" in m for m in error_messages(output)), error_messages(output)
    assert len(listing_requests(history)) == 2


class SourceWithPageBound(SourceKlaviyoSegments):
    """The package's source with its manifest's pagination bounded at ``max_pages`` pages, as a
    manifest may set it: the bound the connector ships (``MOST_LISTING_PAGES``) is found by the
    same code after 10,000 pages."""

    max_pages = 3

    def _read_and_parse_yaml_file(self, path_to_yaml_file: str) -> Any:
        manifest = yaml.safe_load(MANIFEST.read_text())
        manifest["definitions"]["segments_stream"]["retriever"]["paginator"]["pagination_strategy"]["max_pages"] = self.max_pages
        return manifest


def test_a_listing_that_never_ends_is_stopped_after_max_pages_in_one_sentence() -> None:
    """Every answer names a new next page (a proxy or a mock that invents pages): the listing
    stops after ``max_pages`` pages, before any report call."""
    config = km.config()
    asked = []

    def endless(request: Any, context: Any) -> dict[str, Any]:
        asked.append(request.url)
        return page([f"SEG{len(asked):03d}"], f"https://a.klaviyo.com/api/segments/?page%5Bcursor%5D=p{len(asked) + 1}")

    with requests_mock.Mocker() as mocker:
        mocker.register_uri(requests_mock.ANY, requests_mock.ANY, json={"data": []})
        FakeKlaviyo(["SEG001"]).install(mocker)
        mocker.get(SEGMENTS_URL, json=endless)
        output = read(
            SourceWithPageBound(config=config),
            config,
            km.catalog("segment_series", SyncMode.incremental),
            expecting_exception=True,
        )
        history = list(mocker.request_history)
    stopped = [e.trace.error for e in output.errors if e.trace.error.message.startswith("The answers to GET /api/segments")]
    assert stopped, error_messages(output)
    assert stopped[0].message.startswith(
        "The answers to GET /api/segments still named a next page after 3 pages, the most one listing may take (30 segments"
    )
    assert "\n" not in stopped[0].message and stopped[0].failure_type == FailureType.system_error
    assert len(asked) == 3
    assert not [r for r in history if r.path.endswith("-reports")]
    assert {(r.scheme, r.netloc) for r in history} == {("http", "127.0.0.1:8765")}


def test_the_shipped_page_bound_is_the_named_constant() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    strategy = manifest["definitions"]["segments_stream"]["retriever"]["paginator"]["pagination_strategy"]
    assert "max_pages" not in strategy
    assert SameHostCursorPagination(cursor_value="", config={}, parameters={}).max_pages == MOST_LISTING_PAGES == 10_000


@pytest.mark.parametrize(
    "segment, said",
    [
        ({"type": "segment", "attributes": {"name": "no id"}}, "segment 2 of the page has no id"),
        ({"type": "segment", "id": "", "attributes": {}}, "segment 2 of the page has no id"),
        ({"type": "segment", "id": 7, "attributes": {}}, "segment 2 of the page has no id"),
        (km.segment("SEG002", created="last tuesday"), "segment SEG002 was created 'last tuesday', which is not a date-time"),
        (km.segment("SEG002", created="2024-01-01T00:00:00"), "segment SEG002 was created '2024-01-01T00:00:00', which is not"),
        ("SEG002", "item 2 of the page is not an object"),
    ],
)
def test_a_listed_segment_without_an_id_or_a_readable_created_stops_the_report_streams(segment: Any, said: str) -> None:
    listing = {"data": [km.segment("SEG001"), segment], "links": {"self": SEGMENTS_URL}}
    output, history = read_with([listing], stream="segment_series")
    messages = error_messages(output)
    assert any(m.startswith(f"Klaviyo listed segments the connector cannot use (GET /api/segments: {said}") for m in messages), (
        messages
    )
    assert not [r for r in history if r.path.endswith("-reports")]  # no report asked with a list it cannot trust
    assert not output.records


@pytest.mark.parametrize("body", [{"data": {"id": "SEG001"}}, {"errors": []}, ["SEG001"]])
def test_a_listing_without_a_data_list_is_refused_rather_than_read_as_no_segments(body: Any) -> None:
    output, _ = read_with([body])
    assert any("GET /api/segments: the answer has no data list" in m for m in error_messages(output)), error_messages(output)


def test_a_segment_created_null_is_read_as_unknown_and_takes_part_in_every_window() -> None:
    output, _ = read_with([page(["SEG001"], created=None)])
    assert not output.errors and [r.record.data["id"] for r in output.records] == ["SEG001"]
    batches = plan_segment_batches(
        [("SEG001", None), ("SEG002", "2030-01-01T00:00:00+00:00")], km.dt.datetime(2024, 1, 1), None, 100
    )
    assert batches == [["SEG001"]]


# -- reports -------------------------------------------------------------------------------------

WINDOW = {"start": "2024-03-01T00:00:00-05:00", "end": "2024-03-03T23:59:59-05:00"}
CONFIG = {"statistics": ["total_members"], "interval": "daily", "_derived": {"timezone": "America/New_York"}}


def answered(url: str, body: Any, asked: list[str], timeframe: dict[str, str] = WINDOW) -> requests.Response:
    """``body`` as Klaviyo's answer to a report call asking about ``asked`` over ``timeframe``."""
    request_body = {
        "data": {
            "attributes": {
                "filter": "any(segment_id," + json.dumps(asked, separators=(",", ":")) + ")",
                "timeframe": timeframe,
                "statistics": ["total_members"],
                "interval": "daily",
            }
        }
    }
    response = requests.Response()
    response.status_code, response._content = 200, json.dumps(body).encode()
    response.request = requests.Request("POST", url, json=request_body).prepare()
    return response


def series(results: list[tuple[str, list[Any]]], date_times: list[str]) -> dict[str, Any]:
    return {
        "data": {
            "type": "segment-series-report",
            "attributes": {
                "date_times": date_times,
                "results": [{"groupings": {"segment_id": i}, "statistics": {"total_members": v}} for i, v in results],
            },
        }
    }


DAYS = ["2024-03-01T00:00:00-05:00", "2024-03-02T00:00:00-05:00"]


def series_rows_of(body: Any, asked: list[str]) -> list[Any]:
    return list(SeriesRowExtractor(config=CONFIG, parameters={}).extract_records(answered(SERIES_URL, body, asked)))


@pytest.mark.parametrize(
    "body, said",
    [
        (
            series([("SEG001", [1, 2]), ("SEG999", [1, 2])], DAYS),
            "it answers about segment 'SEG999', which the call did not ask about",
        ),
        (series([("SEG001", [1, 2]), ("SEG001", [3, 4])], DAYS), "it answers about segment SEG001 twice"),
        (
            {"data": {"attributes": {"date_times": DAYS, "results": [{"groupings": {}, "statistics": {}}]}}},
            "a result has no groupings.segment_id",
        ),
        (
            series([("SEG001", [1, 2.5])], DAYS),
            "segment SEG001's total_members at 2024-03-02T00:00:00-05:00 is 2.5, not a whole number",
        ),
        (series([("SEG001", [1, True])], DAYS), "is true, not a whole number or null"),
        (series([("SEG001", [1, {"n": 2}])], DAYS), 'is {"n": 2}, not a whole number or null'),
        (series([("SEG001", [1])], DAYS), "segment SEG001's total_members has 1 values for 2 date_times"),
        (
            series([("SEG001", [1, 2])], ["2024-03-01T00:00:00-05:00", "soon"]),
            "date_times holds 'soon', which is not a date-time with an offset",
        ),
        (
            series([("SEG001", [1, 2])], ["2024-03-01T00:00:00-05:00", "2024-03-02T00:00:00"]),
            "which is not a date-time with an offset",
        ),
        (
            series([("SEG001", [1, 2])], ["2024-03-01T00:00:00-05:00", "2024-03-01T05:00:00+00:00"]),
            "date_times names a bucket twice",
        ),
        (
            series([("SEG001", [1, 2])], ["2024-03-01T00:00:00-05:00", "2024-04-01T00:00:00-04:00"]),
            "date_times holds 2024-04-01T00:00:00-04:00, outside the timeframe asked for",
        ),
        (series([("SEG001", [1, 2])], ["2024-03-01T00:00:00-05:00", "0001-01-01T00:00:00+05:00"]), "which is out of range"),
    ],
)
def test_a_series_report_that_does_not_answer_its_call_is_refused_naming_the_call(body: Any, said: str) -> None:
    with pytest.raises(AirbyteTracedException) as refused:
        series_rows_of(body, ["SEG001", "SEG002"])
    call = f"POST /api/segment-series-reports for {WINDOW['start']} to {WINDOW['end']}"
    assert refused.value.message.startswith(f"Klaviyo sent a report the connector cannot read ({call}: "), refused.value.message
    assert said in refused.value.message
    assert refused.value.failure_type == FailureType.system_error


def test_a_series_report_is_read_as_asked_whole_numbers_kept_and_a_missing_segment_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = series([("SEG001", [1.0, None])], ["2024-03-01T05:00:00+00:00", "2024-03-02T00:00:00-05:00"])
    body["data"]["attributes"]["extra"] = {"anything": [1]}  # extra attributes are allowed, and ignored
    rows = series_rows_of(body, ["SEG001", "SEG002"])
    assert rows == [
        {"segment_id": "SEG001", "interval": "daily", "date_time": "2024-03-01T00:00:00-05:00", "total_members": 1},
        {"segment_id": "SEG001", "interval": "daily", "date_time": "2024-03-02T00:00:00-05:00", "total_members": None},
    ]
    assert type(rows[0]["total_members"]) is int
    assert "has no results for SEG002: no rows for it there" in caplog.text


def test_edge_buckets_outside_the_window_are_left_to_the_window_filter() -> None:
    # Klaviyo may answer from the bucket holding the start to the first one after the end.
    body = series(
        [("SEG001", [1, 2, 3])], ["2024-02-29T00:00:00-05:00", "2024-03-03T00:00:00-05:00", "2024-03-04T00:00:00-05:00"]
    )
    rows = series_rows_of(body, ["SEG001"])
    window = km_slice(["SEG001"])
    kept = list(BucketWindowFilter(config=CONFIG, condition="", parameters={}).filter_records(rows, {}, window))
    assert [r["date_time"] for r in kept] == ["2024-03-03T00:00:00-05:00"]


def km_slice(ids: list[str]) -> Any:
    from airbyte_cdk.sources.types import StreamSlice

    return StreamSlice(
        partition={"segment_id": ids, "segment_created": {}},
        cursor_slice={"start_time": "2024-03-01T00:00:00", "end_time": "2024-03-03T23:59:59"},
    )


@pytest.mark.parametrize(
    "results, said",
    [
        ([("SEG009", 1)], "it answers about segment 'SEG009', which the call did not ask about"),
        ([("SEG001", 1), ("SEG001", 2)], "it answers about segment SEG001 twice"),
        ([("SEG001", "12")], 'segment SEG001\'s total_members is "12", not a whole number or null'),
        ([("SEG001", [12])], "segment SEG001's total_members is [12], not a whole number or null"),
    ],
)
def test_a_values_report_that_does_not_answer_its_call_is_refused(results: list[tuple[str, Any]], said: str) -> None:
    body = {
        "data": {
            "attributes": {"results": [{"groupings": {"segment_id": i}, "statistics": {"total_members": v}} for i, v in results]}
        }
    }
    with pytest.raises(AirbyteTracedException) as refused:
        list(
            ValuesRowExtractor(config=CONFIG, parameters={}).extract_records(
                answered(VALUES_URL, body, ["SEG001"], {"key": "last_30_days"})
            )
        )
    assert refused.value.message.startswith(
        f"Klaviyo sent a report the connector cannot read (POST /api/segment-values-reports: {said});"
    )


def test_a_report_answering_another_segment_stops_the_stream_after_that_call_without_a_retry() -> None:
    """A wrong answer costs one report call: no retry, and no later window asks again (a 5XX
    would be retried; the next sync resumes from the state)."""
    config = km.config(end_date="2024-06-01")
    fake = FakeKlaviyo(["SEG001", "SEG002"])
    calls = []

    def wrong_segment(request: Any, context: Any) -> Any:
        calls.append(json.loads(request.body))
        answer = fake._series(request, context)
        if len(calls) == 2:
            answer["data"]["attributes"]["results"][0]["groupings"]["segment_id"] = "SEG404"
        return answer

    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        mocker.post(SERIES_URL, json=wrong_segment)
        output = read(
            SourceKlaviyoSegments(config=config),
            config,
            km.catalog("segment_series", SyncMode.incremental),
            expecting_exception=True,
        )
    assert len(calls) == 2  # three windows planned; the second answered wrong; the third never asked
    messages = error_messages(output)
    assert any("it answers about segment 'SEG404', which the call did not ask about" in m for m in messages), messages
    second_start = calls[1]["data"]["attributes"]["timeframe"]["start"][:19]
    assert not [r for r in output.records if r.record.data["date_time"][:19] >= second_start]
    assert output.state_messages  # the first window's state is kept: the next sync resumes there


@pytest.mark.parametrize("timezone", ["A" * 300, "Mars/Olympus_Mons", "../../etc/passwd"])
def test_an_account_timezone_this_machine_cannot_know_is_planned_without_not_a_traceback(timezone: str) -> None:
    config = km.config()
    fake = FakeKlaviyo(["SEG001", "SEG002"], timezone=timezone)
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        output = read(SourceKlaviyoSegments(config=config), config, km.catalog("segments"), expecting_exception=True)
    assert not output.errors, error_messages(output)
    assert [r.record.data["id"] for r in output.records] == ["SEG001", "SEG002"]
