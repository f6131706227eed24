"""Per-record costs of the steps a ``segment_series`` record goes through, each timed alone (no
profiler overhead, best of 11), on one realistic report: 100 segments x 60 daily buckets = 6,000 rows."""

from __future__ import annotations

import datetime as dt
import gc
import json
import time
from typing import Any, Callable

from bench.common import STATISTICS

ROWS_SEGMENTS, ROWS_DAYS = 100, 60
WINDOW = {"start_time": "2024-01-01T00:00:00", "end_time": "2024-02-29T23:59:59"}


def sample_report() -> dict[str, Any]:
    first = dt.datetime(2024, 1, 1)
    date_times = [(first + dt.timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%S-05:00") for day in range(ROWS_DAYS)]
    results = [
        {"groupings": {"segment_id": f"S{index:05d}"},
         "statistics": {name: [index * 7 + day for day in range(ROWS_DAYS)] for name in STATISTICS}}
        for index in range(ROWS_SEGMENTS)
    ]
    return {"data": {"type": "segment-series-report", "id": "x", "attributes": {"results": results, "date_times": date_times}}}


def per_row(function: Callable[[], Any], rows: int, repeat: int = 11) -> float:
    """Best-of-``repeat`` microseconds per row of ``function`` (which handles ``rows`` rows)."""
    best = float("inf")
    gc.collect()
    gc.disable()  # as timeit does: a collection landing in one step is noise, not its cost
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            function()
            best = min(best, time.perf_counter() - started)
    finally:
        gc.enable()
    return best / rows * 1e6


def per_record_costs() -> list[tuple[str, str, float, str]]:
    """(key, step, microseconds per record, who owns it)."""
    from airbyte_cdk.entrypoint import AirbyteEntrypoint
    from airbyte_cdk.sources.streams.concurrent.state_converters.datetime_stream_state_converter import (
        CustomFormatConcurrentStreamStateConverter,
    )
    from airbyte_cdk.sources.types import Record, StreamSlice
    from airbyte_cdk.sources.utils.record_helper import stream_data_to_airbyte_message
    from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, update_secrets

    from source_klaviyo_segments.components import BucketWindowFilter, _SliceWithCachedHash, series_rows

    document = sample_report()
    body = json.dumps(document)
    attributes = document["data"]["attributes"]
    rows = list(series_rows(attributes, list(STATISTICS), "daily"))
    count = len(rows)
    window = StreamSlice(partition={}, cursor_slice=dict(WINDOW))
    bucket_filter = BucketWindowFilter(config={}, parameters={}, condition="")
    converter = CustomFormatConcurrentStreamStateConverter(
        datetime_format="%Y-%m-%dT%H:%M:%S", input_datetime_formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]
    )
    records = [Record(data=row, stream_name="segment_series", associated_slice=window) for row in rows]
    cached = _SliceWithCachedHash.of(window)
    window_records = [Record(data=row, stream_name="segment_series", associated_slice=cached) for row in rows]
    messages = [stream_data_to_airbyte_message("segment_series", row) for row in rows]
    lines = [AirbyteEntrypoint.airbyte_message_to_string(message) for message in messages]
    update_secrets(["pk_emulator_key"])

    costs = [
        ("json_decode", "parse the response JSON (stdlib json, per row)", per_row(lambda: json.loads(body), count),
         "requests / stdlib"),
        ("series_rows", "SeriesRowExtractor: series_rows() builds the row",
         per_row(lambda: list(series_rows(attributes, list(STATISTICS), "daily")), count), "connector"),
        ("bucket_filter", "BucketWindowFilter: keep the bucket if it starts in the window",
         per_row(lambda: list(bucket_filter.filter_records(rows, {}, window)), count), "connector"),
        ("cursor_parse", "cursor observe: parse date_time with strptime('%Y-%m-%dT%H:%M:%S%z')",
         per_row(lambda: [converter.parse_value(row["date_time"]) for row in rows], count), "CDK (format from manifest)"),
        ("slice_hash", "cursor observe: hash a plain StreamSlice (json.dumps + sha256)",
         per_row(lambda: [hash(record.associated_slice) for record in records], count), "CDK"),
        ("window_hash", "cursor observe: hash the window slice records carry (hashed once)",
         per_row(lambda: [hash(record.associated_slice) for record in window_records], count), "connector"),
        ("to_message", "Record -> AirbyteMessage (stream_data_to_airbyte_message)",
         per_row(lambda: [stream_data_to_airbyte_message("segment_series", row) for row in rows], count), "CDK"),
        ("serialize", "AirbyteMessage -> JSON line (serializer + orjson)",
         per_row(lambda: [AirbyteEntrypoint.airbyte_message_to_string(m) for m in messages], count), "CDK"),
        ("filter_secrets", "filter_secrets on every output line (run.py)",
         per_row(lambda: [filter_secrets(line) for line in lines], count),
         "connector"),
        ("ceiling_dumps", "for scale: the ceiling's json.dumps of a RECORD line",
         per_row(lambda: [json.dumps({"type": "RECORD", "record": {"stream": "segment_series", "data": row, "emitted_at": 1}})
                          for row in rows], count), "ceiling"),
    ]
    return costs


if __name__ == "__main__":
    for _key, name, micros, owner in per_record_costs():
        print(f"{micros:8.2f} us  {owner:28s} {name}")
