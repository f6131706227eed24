"""Answers drawn from Klaviyo's published response schemas (``hypothesis-jsonschema``), fed to the
listing and to the report extractors: anything the spec allows ends in rows or in one of the
connector's own one-sentence errors, no request leaves ``base_url``'s host whatever host a page's
``links.next`` names, and every row carries a segment id its call asked about and a bucket inside
its window.

Each schema is drawn from twice: as published (mostly answers the connector must refuse), and
narrowed towards answers to the call made (``published(schema, narrower)``: still bodies the spec
allows, but ones whose ids, dates and lengths can line up, so the reading path is exercised too).
The examples are fixed by the ``ci`` profile (``derandomize``, the root conftest.py)."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.constants import ENV_REQUEST_CACHE_PATH
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from source_klaviyo_segments import SourceKlaviyoSegments
from source_klaviyo_segments.components import BucketWindowFilter, SeriesRowExtractor, ValuesRowExtractor
from testkit.published.drawn import SEGMENT_LIST, published, report_schema
from unit_tests import klaviyo_mock as km

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
HOME = ("http", "127.0.0.1:8765")
ASKED_POOL = ["SEG001", "SEG002", "SEG003"]
NOT_ASKED = "SEG999"

# -- the listing ------------------------------------------------------------------------------------

FIRST_PAGE = f"{km.BASE_URL}/api/segments?fields%5Bsegment%5D=name%2Ccreated%2Cupdated%2Cis_active%2Cis_processing%2Cis_starred"
# Links a page may name: on base_url's host (absolute or relative, with a cursor or back to the first
# page), and elsewhere (the host behind a proxy, another scheme or port, credentials of its own). Each
# with a cursor is asked of base_url; one without ends the listing in a sentence.
LINKS = [
    f"{km.BASE_URL}/api/segments?page%5Bcursor%5D=2",
    "/api/segments/?page%5Bcursor%5D=3",
    FIRST_PAGE,
    "http://127.0.0.2:8765/api/segments?page%5Bcursor%5D=2",
    "https://127.0.0.1:8765/api/segments?page%5Bcursor%5D=2",
    "http://u:p@a.klaviyo.com/api/segments/?page%5Bcursor%5D=3",
    "http://127.0.0.1:8766/api/segments",
]
LISTING_TOWARDS_ANSWERS = {
    "properties": {
        "data": {
            "maxItems": 3,
            "items": {
                "properties": {
                    "id": {"enum": ["SEG001", "SEG002", "SEG003", ""]},
                    "attributes": {
                        "properties": {
                            "created": {"enum": ["2023-05-01T10:00:00+00:00", "2024-02-10T00:00:00-05:00", None, "2024-01-01"]}
                        }
                    },
                }
            },
        },
        "links": {"properties": {"next": {"enum": LINKS}}, "required": ["next"]},
    },
    "required": ["links"],
}
# A listing's last page names no next page; the pages before it name one of LINKS.
LAST_PAGE = {"properties": {"links": {"not": {"required": ["next"]}}}}
PAGES = st.tuples(
    st.lists(st.one_of(published(SEGMENT_LIST, LISTING_TOWARDS_ANSWERS), published(SEGMENT_LIST)), max_size=1),
    published(SEGMENT_LIST, LAST_PAGE),
).map(lambda pages: [*pages[0], pages[1]])
OUR_LISTING_ERRORS = ("Klaviyo listed segments the connector cannot use (GET /api/segments: ", "The answer to GET /api/segments ")


@pytest.fixture(scope="module")
def source_and_config() -> tuple[SourceKlaviyoSegments, Any]:
    """The source and its prepared config, built once (the account's timezone is refused: 403)."""
    config = km.config(segment_ids=None)
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{km.BASE_URL}/api/accounts", status_code=403, json=km.account_forbidden())
        source = SourceKlaviyoSegments(config=config)
        return source, source.configure(config, "/tmp")  # noqa: S108 - nothing is written there


def segments_stream(source_and_config: tuple[SourceKlaviyoSegments, Any], cache_dir: str) -> Any:
    """The manifest's ``segments`` stream with a request cache of its own: the listing is cached
    (one listing per run), so each example needs a stream that has not seen the others' pages."""
    source, prepared = source_and_config
    with mock.patch.dict(os.environ, {ENV_REQUEST_CACHE_PATH: cache_dir}):
        return next(stream for stream in source.streams(prepared) if stream.name == "segments")


@settings(SETTINGS, max_examples=15)
@given(pages=PAGES)
def test_any_listing_the_spec_allows_ends_in_its_segments_or_one_sentence_and_stays_on_base_urls_host(
    source_and_config: tuple[SourceKlaviyoSegments, Any], pages: list[Any]
) -> None:
    answers = iter(pages)
    with tempfile.TemporaryDirectory() as cache_dir, requests_mock.Mocker() as mocker:
        stream = segments_stream(source_and_config, cache_dir)
        mocker.register_uri(requests_mock.ANY, requests_mock.ANY, json={"data": []})  # another host: seen, not refused
        mocker.get(f"{km.BASE_URL}/api/segments", json=lambda request, context: next(answers, {"data": []}))
        records: list[Any] = []
        try:
            for partition in stream.generate_partitions():
                records.extend(record.data for record in partition.read())
        except AirbyteTracedException as refused:
            assert refused.message and refused.message.startswith(OUR_LISTING_ERRORS), refused.message
            assert "\n" not in refused.message
        else:
            # Every segment was read as listed, each with an id.
            read_pages = [body for body in pages[: len([r for r in mocker.request_history if r.path == "/api/segments"])]]
            assert [r["id"] for r in records] == [s["id"] for body in read_pages for s in body["data"]]
            assert all(isinstance(r["id"], str) and r["id"] for r in records)
            # Each page after the first was asked with the cursor its previous page's link named.
            asked = [r for r in mocker.request_history if r.path == "/api/segments"]
            for before, request in zip(read_pages[:-1], asked[1:], strict=True):
                named = parse_qs(urlsplit(before["links"]["next"]).query)["page[cursor]"]
                assert request.qs["page[cursor]"] == [c.lower() for c in named]  # requests_mock lowercases qs
        assert {(r.scheme, r.netloc) for r in mocker.request_history} == {HOME}, [r.url for r in mocker.request_history]


# -- the reports ------------------------------------------------------------------------------------

WINDOW = {"start": "2024-03-01T00:00:00-05:00", "end": "2024-03-03T23:59:59-05:00"}
WINDOW_SLICE = {"start_time": "2024-03-01T00:00:00", "end_time": "2024-03-03T23:59:59"}
# Bucket starts around the window: its days, its edges, the same instant in UTC, and far off.
DATE_TIMES = [
    "2024-02-29T00:00:00-05:00",
    "2024-03-01T00:00:00-05:00",
    "2024-03-02T00:00:00-05:00",
    "2024-03-02T05:00:00+00:00",
    "2024-03-03T00:00:00-05:00",
    "2024-03-04T00:00:00-05:00",
    "2024-06-01T00:00:00-04:00",
]
STATISTICS = ["total_members", "members_added"]


def series_towards_answers(buckets: int) -> dict[str, Any]:
    column = {"type": "array", "minItems": buckets, "maxItems": buckets, "items": {"type": ["integer", "null"]}}
    return {
        "properties": {
            "data": {
                "properties": {
                    "attributes": {
                        "properties": {
                            "date_times": {
                                "minItems": buckets,
                                "maxItems": buckets,
                                "uniqueItems": True,
                                "items": {"enum": DATE_TIMES},
                            },
                            "results": {
                                "minItems": 1,
                                "maxItems": 3,
                                "items": {
                                    "properties": {
                                        "groupings": {
                                            "properties": {"segment_id": {"enum": [*ASKED_POOL, NOT_ASKED]}},
                                            "required": ["segment_id"],
                                        },
                                        "statistics": {
                                            "properties": {s: column for s in STATISTICS},
                                            "required": STATISTICS,
                                        },
                                    }
                                },
                            },
                        }
                    }
                }
            }
        }
    }


VALUES_TOWARDS_ANSWERS = {
    "properties": {
        "data": {
            "properties": {
                "attributes": {
                    "properties": {
                        "results": {
                            "minItems": 1,
                            "maxItems": 3,
                            "items": {
                                "properties": {
                                    "groupings": {
                                        "properties": {"segment_id": {"enum": [*ASKED_POOL, NOT_ASKED]}},
                                        "required": ["segment_id"],
                                    },
                                    "statistics": {
                                        "properties": {s: {"type": ["integer", "null", "number"]} for s in STATISTICS},
                                        "required": STATISTICS,
                                    },
                                }
                            },
                        }
                    }
                }
            }
        }
    }
}
SERIES_BODIES = st.one_of(published(report_schema("series")), published(report_schema("series"), series_towards_answers(2)))
VALUES_BODIES = st.one_of(published(report_schema("values")), published(report_schema("values"), VALUES_TOWARDS_ANSWERS))
ASKED = st.lists(st.sampled_from(ASKED_POOL), min_size=1, max_size=3, unique=True)
TIMEZONES = st.sampled_from(["America/New_York", None])


def answered(url: str, body: Any, asked: list[str], timeframe: dict[str, str]) -> requests.Response:
    request_body = {
        "data": {
            "attributes": {
                "filter": "any(segment_id," + json.dumps(asked, separators=(",", ":")) + ")",
                "timeframe": timeframe,
                "statistics": STATISTICS,
            }
        }
    }
    response = requests.Response()
    response.status_code, response._content = 200, json.dumps(body).encode()
    response.request = requests.Request("POST", url, json=request_body).prepare()
    return response


def rows_or_refusal(extract: Any, call: str) -> list[Any]:
    """The rows, or ``[]`` when the answer was refused with the connector's own one sentence."""
    try:
        return list(extract())
    except AirbyteTracedException as refused:
        assert refused.message and refused.message.startswith(f"Klaviyo sent a report the connector cannot read ({call}"), (
            refused.message
        )
        assert "\n" not in refused.message
        return []


@SETTINGS
@given(body=SERIES_BODIES, asked=ASKED, timezone=TIMEZONES)
def test_any_series_report_the_spec_allows_gives_rows_of_asked_segments_inside_the_window_or_one_sentence(
    body: Any, asked: list[str], timezone: str | None
) -> None:
    config = {"statistics": STATISTICS, "interval": "daily", "_derived": {"timezone": timezone}}
    response = answered(f"{km.BASE_URL}/api/segment-series-reports", body, asked, WINDOW)
    extractor = SeriesRowExtractor(config=config, parameters={})
    window = StreamSlice(partition={"segment_id": asked, "segment_created": {}}, cursor_slice=WINDOW_SLICE)
    keep = BucketWindowFilter(config=config, condition="", parameters={})
    rows = rows_or_refusal(
        lambda: list(keep.filter_records(extractor.extract_records(response), {}, window)), "POST /api/segment-series-reports"
    )
    assert all(row["segment_id"] in asked for row in rows)
    assert all(WINDOW_SLICE["start_time"] <= row["date_time"][:19] <= WINDOW_SLICE["end_time"] for row in rows)
    assert len({(row["segment_id"], row["date_time"]) for row in rows}) == len(rows)  # each bucket once
    assert all(row[s] is None or type(row[s]) is int for row in rows for s in STATISTICS)


@SETTINGS
@given(body=VALUES_BODIES, asked=ASKED)
def test_any_values_report_the_spec_allows_gives_rows_of_asked_segments_or_one_sentence(body: Any, asked: list[str]) -> None:
    config = {"statistics": STATISTICS, "interval": "daily", "_derived": {"timezone": None}}
    response = answered(f"{km.BASE_URL}/api/segment-values-reports", body, asked, {"key": "last_30_days"})
    extractor = ValuesRowExtractor(config=config, parameters={})
    rows = rows_or_refusal(lambda: extractor.extract_records(response), "POST /api/segment-values-reports")
    assert all(row["segment_id"] in asked for row in rows)
    assert len({row["segment_id"] for row in rows}) == len(rows)
    assert all(row[s] is None or type(row[s]) is int for row in rows for s in STATISTICS)


def test_the_narrowed_draws_reach_the_reading_path() -> None:
    """The narrowed schemas do give answers that are read: else the properties above would hold of
    refusals alone."""
    read: list[int] = []

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=published(report_schema("series"), series_towards_answers(3)))
    def series(body: Any) -> None:
        config = {"statistics": STATISTICS, "interval": "daily", "_derived": {"timezone": "America/New_York"}}
        response = answered(f"{km.BASE_URL}/api/segment-series-reports", body, ASKED_POOL, WINDOW)
        read.append(
            len(rows_or_refusal(lambda: SeriesRowExtractor(config=config, parameters={}).extract_records(response), "POST"))
        )

    series()
    assert sum(1 for rows in read if rows) >= 3, read
