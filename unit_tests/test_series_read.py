from __future__ import annotations

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.mock_http import HttpMocker

from source_klaviyo_segments import SourceKlaviyoSegments
from unit_tests import klaviyo_mock as km


def test_daily_series_two_windows_each_bucket_once() -> None:
    # 118 days: the fewest windows of at most 59 days (no timezone: a day of DST margin) are two,
    # and the only two that cover it are Jan 1..Feb 28 and Feb 29..Apr 27.
    config = km.config(end_date="2024-04-28")
    with HttpMocker() as http:
        http.get(km.accounts_request(), km.accounts_response(None))
        http.get(km.segments_request(), km.segments_page(["SEG001", "SEG002", "OTHER"]))
        ids = ["SEG001", "SEG002"]
        # Klaviyo reads `end` inclusively: each answer carries the bucket that starts at `end`'s day.
        http.post(
            km.series_request(ids, "2024-01-01T00:00:00+00:00", "2024-02-28T23:59:59+00:00"),
            km.series_response(ids, km.day_range("2024-01-01", "2024-02-28")),
        )
        http.post(
            km.series_request(ids, "2024-02-29T00:00:00+00:00", "2024-04-27T23:59:59+00:00"),
            km.series_response(ids, km.day_range("2024-02-29", "2024-04-27")),
        )
        source = SourceKlaviyoSegments(config=config)
        output = read(source, config, km.catalog("segment_series", SyncMode.incremental))
    rows = [r.record.data for r in output.records]
    keys = [(r["segment_id"], r["date_time"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * 118
    assert output.most_recent_state.stream_state.__dict__ == {"date_time": "2024-04-27T00:00:00"}
