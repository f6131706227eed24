"""The unit tests' Klaviyo: builders of requests and responses for the CDK's ``HttpMocker``, and
``FakeKlaviyo``, which answers whatever report a whole sync sends and records the bodies.

Why not the emulator (``klaviyo_emulator``, which the integration tests use): unit tests run the
connector in-process through the CDK's entrypoint with ``requests`` intercepted (``requests_mock``,
what ``HttpMocker`` is built on), so they open no socket and start no server; and they assert exact
cells, so every value here is a function of (segment, date_time, statistic) a test can recompute
(``series_value``), where the emulator serves realistic data checked against its own oracle.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import requests_mock
import yaml
from airbyte_cdk.models import ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.sources.declarative.parsers.manifest_reference_resolver import ManifestReferenceResolver
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpRequest, HttpResponse

import source_klaviyo_segments
from source_klaviyo_segments import SourceKlaviyoSegments

# The connection specification, as the CDK resolves the manifest's "#/..." references (the spec's
# statistics default refers to its enum): what config_problem and prepare_config judge by.
SPEC = ManifestReferenceResolver().preprocess_manifest(
    yaml.safe_load((Path(source_klaviyo_segments.__file__).with_name("manifest.yaml")).read_text(encoding="utf-8"))
)["spec"]["connection_specification"]

# Klaviyo's statistics, as its published API reference lists them for the segment reports (the
# `statistics` of SegmentSeriesRequestDTO and SegmentValuesRequestDTO): the fake's own, not the
# connector's, so that it answers as Klaviyo would whatever the connector's spec says.
STATISTICS: tuple[str, ...] = ("total_members", "members_added", "members_removed", "net_members_changed")

BASE_URL = "http://127.0.0.1:8765"
API_KEY = "pk_unit_test_secret_4f9a"


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": BASE_URL,
        "segment_ids": ["SEG001", "SEG002"],
        "start_date": "2024-01-01",
        "end_date": "2024-03-15",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def catalog(stream: str, sync_mode: SyncMode = SyncMode.full_refresh) -> ConfiguredAirbyteCatalog:
    return CatalogBuilder().with_stream(stream, sync_mode).build()


def segments_request(cursor: str | None = None) -> HttpRequest:
    if cursor:
        return HttpRequest(
            f"{BASE_URL}/api/segments?page%5Bcursor%5D={cursor}&fields%5Bsegment%5D=name%2Ccreated%2Cupdated%2Cis_active%2Cis_processing%2Cis_starred"
        )
    return HttpRequest(
        f"{BASE_URL}/api/segments",
        query_params={"fields[segment]": "name,created,updated,is_active,is_processing,is_starred"},
    )


def accounts_request() -> HttpRequest:
    return HttpRequest(f"{BASE_URL}/api/accounts", query_params={"fields[account]": "timezone"})


def account(timezone: str) -> dict[str, Any]:
    return {"data": [{"type": "account", "id": "AbC123", "attributes": {"timezone": timezone}}], "links": {"self": "x"}}


def account_forbidden() -> dict[str, Any]:
    detail = "You do not have permission to perform this action (missing scope accounts:read)."
    return {"errors": [{"id": "x", "status": 403, "code": "permission_denied", "title": "Forbidden", "detail": detail}]}


def accounts_response(timezone: str | None) -> HttpResponse:
    """``GET /api/accounts``: the account's timezone, or 403 when ``None`` (no accounts:read)."""
    if timezone is None:
        return HttpResponse(json.dumps(account_forbidden()), 403)
    return HttpResponse(json.dumps(account(timezone)), 200)


def segment(segment_id: str, created: str = "2023-05-01T10:00:00+00:00") -> dict[str, Any]:
    return {
        "type": "segment",
        "id": segment_id,
        "attributes": {
            "name": f"Segment {segment_id}",
            "created": created,
            "updated": "2024-01-01T10:00:00+00:00",
            "is_active": True,
            "is_processing": False,
            "is_starred": False,
        },
        "links": {"self": f"{BASE_URL}/api/segments/{segment_id}/"},
    }


def segments_page(ids: Iterable[str], next_cursor: str | None = None) -> HttpResponse:
    next_link = (
        f"{BASE_URL}/api/segments?page%5Bcursor%5D={next_cursor}&fields%5Bsegment%5D=name%2Ccreated%2Cupdated%2Cis_active%2Cis_processing%2Cis_starred"
        if next_cursor
        else None
    )
    body = {"data": [segment(i) for i in ids], "links": {"self": "x", "next": next_link}}
    return HttpResponse(json.dumps(body), 200)


def series_body(
    ids: list[str], start: str, end: str, interval: str = "daily", statistics: Iterable[str] = STATISTICS
) -> dict[str, Any]:
    return {
        "data": {
            "type": "segment-series-report",
            "attributes": {
                "statistics": list(statistics),
                "timeframe": {"start": start, "end": end},
                "interval": interval,
                "filter": "any(segment_id," + json.dumps(ids, separators=(",", ":")) + ")",
            },
        }
    }


def series_request(ids: list[str], start: str, end: str, interval: str = "daily") -> HttpRequest:
    return HttpRequest(f"{BASE_URL}/api/segment-series-reports", body=series_body(ids, start, end, interval))


def day_range(first: str, last: str, offset: str = "-05:00") -> list[str]:
    """Daily bucket starts from ``first`` to ``last`` inclusive, with an offset, as Klaviyo writes them."""
    day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    out = []
    while day <= end:
        out.append(f"{day.isoformat()}T00:00:00{offset}")
        day += dt.timedelta(days=1)
    return out


def series_value(segment_id: str, date_time: str, statistic: str) -> int:
    """A deterministic value per cell, so tests can tell any two cells apart."""
    return (sum(map(ord, segment_id + date_time)) * (STATISTICS.index(statistic) + 3)) % 997


def series_response(
    ids: list[str], date_times: list[str], statistics: Iterable[str] = STATISTICS, status: int = 200
) -> HttpResponse:
    results = [
        {
            "groupings": {"segment_id": i},
            "statistics": {s: [series_value(i, d, s) for d in date_times] for s in statistics},
        }
        for i in reversed(ids)  # Klaviyo does not promise an order
    ]
    body = {
        "data": {
            "type": "segment-series-report",
            "id": "r1",
            "attributes": {"results": results, "date_times": date_times},
        }
    }
    return HttpResponse(json.dumps(body), status)


def read_source(
    config: dict[str, Any], catalog: ConfiguredAirbyteCatalog, state: Any = None, **kwargs: Any
) -> EntrypointOutput:
    """A read as the connector's entrypoint runs it: the source is built with the catalog (its sync
    modes plan the report-call allowance) and the config (the account's timezone is asked for then)."""
    return read(SourceKlaviyoSegments(catalog=catalog, config=config, state=state), config, catalog, state, **kwargs)


# -- FakeKlaviyo: a whole sync without listing each request --------------------------------------

FILTER = re.compile(r'^any\(segment_id,\["([A-Za-z0-9_]+(?:","[A-Za-z0-9_]+)*)"\]\)$')
STEP = {"hourly": dt.timedelta(hours=1), "daily": dt.timedelta(days=1), "weekly": dt.timedelta(weeks=1)}


def bucket_starts(start: str, end: str, interval: str) -> list[dt.datetime]:
    """Bucket starts from ``start`` through ``end`` inclusive (the harsher reading of ``end``)."""
    first, last = dt.datetime.fromisoformat(start[:19]), dt.datetime.fromisoformat(end[:19])
    out, current = [], first
    while current <= last:
        out.append(current)
        if interval == "monthly":
            current = (current.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        else:
            current += STEP[interval]
    return out


@dataclass
class FakeKlaviyo:
    """``timezone`` is what ``GET /api/accounts`` names; ``None``: the key lacks accounts:read (403).
    ``created`` gives a segment's creation (ISO 8601 with an offset); the others were created
    before Klaviyo's first day of data."""

    segment_ids: list[str]
    offset: str = "-05:00"
    timezone: str | None = None
    created: dict[str, str] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def install(self, mocker: requests_mock.Mocker) -> None:
        mocker.get(f"{BASE_URL}/api/segments", json=self._segments)
        if self.timezone is None:
            mocker.get(f"{BASE_URL}/api/accounts", status_code=403, json=account_forbidden())
        else:
            mocker.get(f"{BASE_URL}/api/accounts", json=account(self.timezone))
        mocker.post(f"{BASE_URL}/api/segment-series-reports", json=self._series)
        mocker.post(f"{BASE_URL}/api/segment-values-reports", json=self._values)

    def _segments(self, request: Any, context: Any) -> dict[str, Any]:
        page = int(request.qs.get("page[cursor]", ["0"])[0])
        ids = self.segment_ids[page * 10 : page * 10 + 10]
        more = (page + 1) * 10 < len(self.segment_ids)
        next_link = f"{BASE_URL}/api/segments?page[cursor]={page + 1}" if more else None
        return {"data": [segment(i, *[self.created[i]] if i in self.created else []) for i in ids], "links": {"next": next_link}}

    def _ids(self, body: dict[str, Any]) -> list[str]:
        match = FILTER.match(body["data"]["attributes"]["filter"])
        assert match, body["data"]["attributes"]["filter"]
        return match.group(1).split('","')

    def _series(self, request: Any, context: Any) -> dict[str, Any]:
        body = json.loads(request.body)
        self.bodies.append(body)
        attributes = body["data"]["attributes"]
        starts = bucket_starts(attributes["timeframe"]["start"], attributes["timeframe"]["end"], attributes["interval"])
        date_times = [f"{s.isoformat()}{self.offset}" for s in starts]
        results = [
            {
                "groupings": {"segment_id": i},
                "statistics": {s: [series_value(i, d, s) for d in date_times] for s in attributes["statistics"]},
            }
            for i in reversed(self._ids(body))
            if i in self.segment_ids
        ]
        return {"data": {"type": "segment-series-report", "attributes": {"results": results, "date_times": date_times}}}

    def _values(self, request: Any, context: Any) -> dict[str, Any]:
        body = json.loads(request.body)
        self.bodies.append(body)
        attributes = body["data"]["attributes"]
        label = json.dumps(attributes["timeframe"], sort_keys=True)
        results = [
            {"groupings": {"segment_id": i}, "statistics": {s: series_value(i, label, s) for s in attributes["statistics"]}}
            for i in self._ids(body)
            if i in self.segment_ids
        ]
        return {"data": {"type": "segment-values-report", "attributes": {"results": results}}}
