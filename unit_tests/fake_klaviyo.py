"""An in-process Klaviyo for unit tests: answers any report body, records every request.

Built on ``requests_mock`` (what the CDK's ``HttpMocker`` uses) with callbacks, so tests can
read a whole sync without listing each request, then inspect what was sent.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

import requests_mock

from unit_tests.klaviyo_mock import BASE_URL, account, account_forbidden, segment, series_value

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
