"""Builders for Klaviyo requests and responses, for tests against the CDK's ``HttpMocker``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Iterable

import yaml
from airbyte_cdk.models import ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpRequest, HttpResponse

import source_klaviyo_segments
from source_klaviyo_segments import SourceKlaviyoSegments
from source_klaviyo_segments.components import STATISTICS

# The connection specification, as the manifest states it: what config_problem and prepare_config judge by.
SPEC = yaml.safe_load(
    (Path(source_klaviyo_segments.__file__).with_name("manifest.yaml")).read_text(encoding="utf-8")
)["spec"]["connection_specification"]

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
