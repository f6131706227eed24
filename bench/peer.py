"""The peer: what a user writes without this connector, with Klaviyo's official SDK.

``klaviyo-api`` (``KlaviyoAPI``) pointed at the emulator through its ``test_host`` (which becomes the
openapi_client ``Configuration.host``): list the segments with ``Segments.get_segments`` (paged),
then one ``Reporting.query_segment_series`` per segment per window (``bench.minimum.fewest_calls`` with the
company zone known: at most 60 days), as the SDK's examples do (``equals(segment_id,"…")``). 429s
are left to the SDK's own retry (``RetryWithExponentialBackoff``: Retry-After plus
exponential backoff, ``max_retries`` 3, the SDK's default).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Sequence
from urllib.parse import parse_qs, urlparse

from bench.ceiling import COMPANY_TIMEZONE, STATISTICS, report_body, rfc3339
from bench.minimum import ONE_SECOND, fewest_calls


def list_segment_ids(klaviyo: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    cursor: str | None = None
    calls = 0
    while True:
        page = klaviyo.Segments.get_segments(fields_segment=["name"], page_cursor=cursor)
        calls += 1
        ids += [item["id"] for item in page["data"]]
        following = (page.get("links") or {}).get("next")
        if not following:
            return ids, calls
        # The SDK only unwraps https:// links itself; the emulator serves http://.
        cursor = parse_qs(urlparse(following).query)["page[cursor]"][0]


def run_peer(
    base_url: str,
    api_key: str,
    start: dt.datetime,
    end: dt.datetime,
    segments: int | None = None,
    interval: str = "daily",
    statistics: Sequence[str] = STATISTICS,
) -> dict[str, Any]:
    """Reads ``segments`` segments (all when None) the per-segment way; returns calls, rows, time."""
    from klaviyo_api import KlaviyoAPI
    from openapi_client.exceptions import ApiException

    started = time.perf_counter()
    klaviyo = KlaviyoAPI(api_key, test_host=base_url, options={"USE_DICTIONARY_FOR_RESPONSE_DATA": True})
    ids, list_calls = list_segment_ids(klaviyo)
    chosen = ids if segments is None else ids[:segments]
    list_seconds = time.perf_counter() - started
    rows = requests_made = given_up = 0
    report_started = time.perf_counter()
    for segment_id in chosen:
        for window_start, window_end in fewest_calls(interval, start, end, COMPANY_TIMEZONE, 1).windows:
            body = report_body("segment-series-report", statistics=list(statistics), interval=interval,
                               timeframe={"start": rfc3339(window_start), "end": rfc3339(window_end - ONE_SECOND)},
                               filter=f'equals(segment_id,"{segment_id}")')
            requests_made += 1
            try:
                answer = klaviyo.Reporting.query_segment_series(body)
            except ApiException:
                given_up += 1  # the SDK's retries ran out: these buckets are simply missing
                continue
            attributes = answer["data"]["attributes"]
            rows += len(attributes["date_times"]) * len(attributes["results"])
    return {
        "segments": len(chosen),
        "segments_listed": len(ids),
        "list_calls": list_calls,
        "report_requests": requests_made,
        "given_up": given_up,
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "report_seconds": time.perf_counter() - report_started,
        "list_seconds": list_seconds,
    }
