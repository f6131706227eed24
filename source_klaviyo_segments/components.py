"""The few pieces ``manifest.yaml`` cannot say on its own.

- ``SegmentBatchRetriever``: one partition (a series window, a values timeframe) is read for every
  batch of up to 100 segments, so a window's state is saved only once all its batches are in.
- ``SeriesRowExtractor`` / ``ValuesRowExtractor``: a report response becomes one row per segment
  per bucket (or per timeframe); a malformed response stops the stream instead of misaligning.
- ``TimeframeFields``: stamps a values row with the timeframe it was asked for.
- ``BucketWindowFilter``: keeps a bucket only if it starts inside the window that asked for it.
- ``RetryAfterBackoff``: waits what a 429 asks, or ends the sync when it asks for the daily quota.
- ``ReportPacer``: spaces report calls within Klaviyo's burst and steady limits before they are sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import InitVar, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Union
from urllib.parse import urlparse

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.extractors.record_filter import RecordFilter
from airbyte_cdk.sources.declarative.partition_routers.partition_router import PartitionRouter
from airbyte_cdk.sources.declarative.retrievers.simple_retriever import SimpleRetriever
from airbyte_cdk.sources.declarative.transformations import RecordTransformation
from airbyte_cdk.sources.streams.call_rate import AbstractCallRatePolicy, APIBudget
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.types import Config, StreamSlice, StreamState
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .constants import MAX_RATE_LIMIT_WAIT_SECONDS
from .windows import (
    bucket_ended_before,
    bucket_in_window,
    company_date_time,
    plan_segment_batches,
    timeframe_bound,
    wall_time,
)

LOGGER = logging.getLogger("airbyte")


def malformed_response(detail: str) -> AirbyteTracedException:
    return AirbyteTracedException(
        message=f"Klaviyo sent a report the connector cannot read ({detail}); no rows were written for it. "
        "Retry the sync; if it happens again, report it with this message.",
        internal_message=detail,
        failure_type=FailureType.system_error,
    )


def _report_attributes(response: requests.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise malformed_response("the body is not JSON") from None
    attributes = body.get("data", {}).get("attributes") if isinstance(body, dict) else None
    if not isinstance(attributes, dict) or not isinstance(attributes.get("results"), list):
        raise malformed_response("data.attributes.results is missing")
    return attributes


def _segment_id(result: Any) -> str:
    segment_id = result.get("groupings", {}).get("segment_id") if isinstance(result, dict) else None
    if not isinstance(segment_id, str):
        raise malformed_response("a result has no groupings.segment_id")
    return segment_id


# Exact types: a bool is not a count. Klaviyo's schema does not promise numbers, and a statistic
# may be null (a segment that did not exist yet): null is written as null.
_STATISTIC_TYPES = (int, float, type(None))


def _statistic(value: Any, where: str) -> Union[int, float, None]:
    if type(value) not in _STATISTIC_TYPES:
        raise malformed_response(f"{where} is {value!r}, not a number or null")
    return value  # type: ignore[no-any-return]


def series_rows(
    attributes: Mapping[str, Any], statistics: list[str], interval: str, timezone: str | None = None
) -> Iterator[dict[str, Any]]:
    """Turn a series report's ``results`` x ``date_times`` into one row per segment per bucket,
    each ``date_time`` placed in company time when the account's timezone is known (Klaviyo may
    write them with the company's offset or in UTC: it does not say).

    >>> attrs = {"date_times": ["2024-01-01T05:00:00+00:00", "2024-01-02T05:00:00+00:00"],
    ...          "results": [{"groupings": {"segment_id": "A"}, "statistics": {"total_members": [None, 5]}}]}
    >>> list(series_rows(attrs, ["total_members"], "daily", "America/New_York"))  # doctest: +NORMALIZE_WHITESPACE
    [{'segment_id': 'A', 'interval': 'daily', 'date_time': '2024-01-01T00:00:00-05:00', 'total_members': None},
     {'segment_id': 'A', 'interval': 'daily', 'date_time': '2024-01-02T00:00:00-05:00', 'total_members': 5}]
    """
    date_times = attributes.get("date_times")
    if not isinstance(date_times, list) or not all(isinstance(d, str) for d in date_times):
        raise malformed_response("data.attributes.date_times is missing or not a list of date-times")
    try:
        date_times = [company_date_time(d, timezone) for d in date_times]
    except ValueError:
        raise malformed_response("data.attributes.date_times holds a value that is not a date-time") from None
    for result in attributes["results"]:
        segment_id = _segment_id(result)
        values = result.get("statistics")
        if not isinstance(values, dict):
            raise malformed_response(f"segment {segment_id} has no statistics")
        columns = []
        for statistic in statistics:
            column = values.get(statistic)
            if not isinstance(column, list) or len(column) != len(date_times):
                raise malformed_response(
                    f"segment {segment_id}'s {statistic} has {len(column) if isinstance(column, list) else 'no'} "
                    f"values for {len(date_times)} date_times"
                )
            # One pass per column, not a call per value: this is the connector's per-row hot path.
            if not all(type(value) in _STATISTIC_TYPES for value in column):
                index = next(i for i, value in enumerate(column) if type(value) not in _STATISTIC_TYPES)
                _statistic(column[index], f"segment {segment_id}'s {statistic} at {date_times[index]}")
            columns.append(column)
        for index, date_time in enumerate(date_times):
            row: dict[str, Any] = {"segment_id": segment_id, "interval": interval, "date_time": date_time}
            for statistic, column in zip(statistics, columns, strict=True):
                row[statistic] = column[index]
            yield row


def values_rows(attributes: Mapping[str, Any], statistics: list[str]) -> Iterator[dict[str, Any]]:
    """Turn a values report's ``results`` into one row per segment (timeframe fields are added
    from the partition by the manifest).

    >>> list(values_rows({"results": [{"groupings": {"segment_id": "A"},
    ...                                "statistics": {"members_added": 4}}]}, ["members_added"]))
    [{'segment_id': 'A', 'members_added': 4}]
    """
    for result in attributes["results"]:
        segment_id = _segment_id(result)
        values = result.get("statistics")
        if not isinstance(values, dict):
            raise malformed_response(f"segment {segment_id} has no statistics")
        row: dict[str, Any] = {"segment_id": segment_id}
        for statistic in statistics:
            if statistic not in values:
                raise malformed_response(f"segment {segment_id} has no {statistic}")
            row[statistic] = _statistic(values[statistic], f"segment {segment_id}'s {statistic}")
        yield row


@dataclass
class SeriesRowExtractor(RecordExtractor):
    """A ``segment-series-report`` response -> rows ``{segment_id, interval, date_time, <statistics>}``.

    Without the account's timezone, ``date_times`` written in UTC cannot be placed in company
    time, and the bucket-in-window rule compares company wall times: said once, with the fix.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    _warned_of_utc: bool = field(init=False, repr=False, default=False)

    def extract_records(self, response: requests.Response) -> Iterable[Mapping[str, Any]]:
        timezone = self.config.get("_derived", {}).get("timezone")
        attributes = _report_attributes(response)
        if timezone is None and not self._warned_of_utc and _written_in_utc(attributes.get("date_times")):
            self._warned_of_utc = True
            LOGGER.warning(
                "Klaviyo wrote bucket starts in UTC and the API key may not read the account's timezone "
                "(scope accounts:read): unless the account is on UTC, a bucket at a window's edge may be "
                "missed. Give the key accounts:read."
            )
        yield from series_rows(attributes, self.config["statistics"], self.config["interval"], timezone)


def _written_in_utc(date_times: Any) -> bool:
    return isinstance(date_times, list) and bool(date_times) and all(
        isinstance(d, str) and d.endswith(("Z", "+00:00")) for d in date_times
    )


@dataclass
class ValuesRowExtractor(RecordExtractor):
    """A ``segment-values-report`` response -> rows ``{segment_id, <statistics>}``."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def extract_records(self, response: requests.Response) -> Iterable[Mapping[str, Any]]:
        yield from values_rows(_report_attributes(response), self.config["statistics"])


@dataclass
class TimeframeFields(RecordTransformation):
    """Stamps a values row with its partition's ``timeframe``, ``timeframe_start`` and
    ``timeframe_end`` (null for a Klaviyo key; AddFields would drop a null)."""

    def transform(
        self,
        record: dict[str, Any],
        config: Config | None = None,
        stream_state: StreamState | None = None,
        stream_slice: StreamSlice | None = None,
    ) -> None:
        timeframe = (stream_slice.partition if stream_slice else {}).get("values_timeframe") or {}
        for key in ("timeframe", "timeframe_start", "timeframe_end"):
            record[key] = timeframe.get(key)


@dataclass
class BucketWindowFilter(RecordFilter):
    """Keeps a series row only if its bucket starts inside the window of the request, and did not
    end before its segment was created.

    Windows touch without overlapping, so whether Klaviyo treats a timeframe's ``end`` as
    inclusive or exclusive, each bucket is emitted by exactly one window. A segment has no rows
    before the bucket that holds its creation.
    """

    def filter_records(
        self,
        records: Iterable[Mapping[str, Any]],
        stream_state: StreamState,
        stream_slice: StreamSlice | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        window = stream_slice.cursor_slice if stream_slice else {}
        start, last_second = window.get("start_time"), window.get("end_time")
        if not start or not last_second:
            yield from records
            return
        created: Mapping[str, str | None] = (stream_slice.partition if stream_slice else {}).get("segment_created") or {}
        interval, timezone = self.config["interval"], self.config.get("_derived", {}).get("timezone")
        for record in records:
            if not bucket_in_window(record["date_time"], start, last_second):
                continue
            if bucket_ended_before(record["date_time"], interval, created.get(record["segment_id"]), timezone):
                continue
            yield record


class _SliceWithCachedHash(StreamSlice):
    """A window's slice that hashes once: the cursor looks up every record's slice in a dict, and
    ``StreamSlice`` re-serializes itself for each hash. Equal to (and hashing like) the original."""

    _hash: int

    @classmethod
    def of(cls, original: StreamSlice) -> _SliceWithCachedHash:
        window = cls(
            partition=original.partition, cursor_slice=original.cursor_slice, extra_fields=original.extra_fields
        )
        window._hash = StreamSlice.__hash__(original)
        return window

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: Any) -> bool:
        return StreamSlice.__eq__(self, other)


def series_timeframe(window: Mapping[str, Any], timezone: str | None) -> dict[str, Any]:
    """The ``timeframe`` a series window is asked for: its first and last second as RFC 3339
    date-times with the account's offset (``{}`` for a partition that is not a window).

    >>> series_timeframe({"start_time": "2024-03-01T00:00:00", "end_time": "2024-04-29T23:59:59"}, "America/New_York")
    {'timeframe': {'start': '2024-03-01T00:00:00-05:00', 'end': '2024-04-29T23:59:59-04:00'}}
    """
    start, last_second = window.get("start_time"), window.get("end_time")
    if not start or not last_second:
        return {}
    bounds = {
        "start": timeframe_bound(wall_time(start), timezone),
        "end": timeframe_bound(wall_time(last_second), timezone, last=True),
    }
    return {"timeframe": bounds}


@dataclass
class SegmentBatchRetriever(SimpleRetriever):
    """Reads one partition (a series window, a values timeframe) once per batch of the segments
    that existed by its end.

    The segments and their ``created`` are listed once per sync, on first use, from ``segments``.
    Each partition asks only about the segments created before it ends (a timeframe key, relative
    to now, asks about all of them), oldest first, ``batch_size`` at a time
    (``plan_segment_batches``): a segment costs nothing before it existed. The partition is merged
    with each batch's ``segment_id`` list and their ``created`` (for ``BucketWindowFilter``), and
    every record is re-attached to the partition itself, so the cursor closes a window only when
    every batch of it has been read.
    """

    segments: PartitionRouter | None = None
    batch_size: int = 100
    _segments: list[tuple[str, str | None]] | None = field(init=False, repr=False, default=None)
    _segments_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def _listed_segments(self) -> list[tuple[str, str | None]]:
        """``(id, created)`` of every segment to report on, listed once."""
        with self._segments_lock:
            if self._segments is None:
                if self.segments is None:
                    raise ValueError("SegmentBatchRetriever needs `segments`")
                listed = []
                for partition in self.segments.stream_slices():
                    created = (partition.extra_fields or {}).get("created")
                    listed.append((str(partition.partition["segment_id"]), created if isinstance(created, str) else None))
                self._segments = listed
                self._warn_of_missing_segments(listed)
            if self._segments == [] and self.config.get("segment_ids"):
                # Reading on would close every window empty and move the state past them.
                message = "None of the `segment_ids` are in the Klaviyo account: fix them, or remove the field."
                raise AirbyteTracedException(message=message, failure_type=FailureType.config_error)
            return self._segments

    def _warn_of_missing_segments(self, segments: list[tuple[str, str | None]]) -> None:
        """A configured segment that is gone (deleted since setup) is skipped, with a warning."""
        found = {segment_id for segment_id, _ in segments}
        missing = [segment_id for segment_id in self.config.get("segment_ids") or [] if segment_id not in found]
        if missing:
            LOGGER.warning(
                "%s: not in the Klaviyo account, so skipped; remove them from `segment_ids`.", ", ".join(missing)
            )

    def _values_calls(self) -> int | None:
        """Every call the values timeframes of this sync need (they are known from the config):
        what a full-refresh ``segment_values`` must be granted at once. ``None`` for a window stream."""
        timeframes = self.config.get("_derived", {}).get("values_timeframes")
        if self.name != "segment_values" or not isinstance(timeframes, list):
            return None
        partitions = [StreamSlice(partition={"values_timeframe": timeframe}, cursor_slice={}) for timeframe in timeframes]
        return sum(len(self._batches(partition)) for partition in partitions)

    def _batches(self, partition: StreamSlice) -> list[list[str]]:
        """The batches ``partition`` asks about: the segments that existed by its end."""
        segments = self._listed_segments()
        end = partition_end(partition)
        timezone = self.config.get("_derived", {}).get("timezone")
        return plan_segment_batches(segments, end, timezone, int(self.batch_size))

    def _log_allowance_spent(self, allowance: ReportCallAllowance) -> None:
        if allowance.spent_logged:
            return
        allowance.spent_logged = True
        if allowance.stopped:
            LOGGER.warning("A report failed: no further report calls in this sync; the next one resumes from the saved state.")
        else:
            LOGGER.warning(
                "max_report_requests (%s) reached after %s report calls: the rest is left for the next sync, "
                "which resumes from the saved state.",
                allowance.limit,
                allowance.reserved,
            )

    def _cut_short(self, allowance: ReportCallAllowance) -> AirbyteTracedException:
        """The error that ends a stream which cannot resume, so that its table is not replaced by
        the part of it read so far (the stream ends incomplete)."""
        if allowance.stopped:
            message = f"{self.name} was not read in full: the sync stopped after a report it could not use (see the error above)."
            return AirbyteTracedException(message=message, failure_type=FailureType.transient_error)
        message = (
            f"`max_report_requests` ({allowance.limit}) leaves too few report calls to read {self.name} in full "
            "in one sync: raise it, or read the stream incrementally if it can be."
        )
        return AirbyteTracedException(message=message, failure_type=FailureType.config_error)

    def read_records(
        self,
        records_schema: Mapping[str, Any],
        stream_slice: StreamSlice | None = None,
    ) -> Iterable[Any]:
        partition = _SliceWithCachedHash.of(stream_slice or StreamSlice(partition={}, cursor_slice={}))
        batches = self._batches(partition)
        created = dict(self._listed_segments())
        allowance = ReportCallAllowance.for_sync(self.config)
        most_batches = -(-len(created) // int(self.batch_size))
        if not allowance.reserve(self.name, len(batches), most_batches, self._values_calls()):
            if self.name not in allowance.resumable:
                raise self._cut_short(allowance)
            # Left for the next sync: the state stays at the last window read in full.
            self._log_allowance_spent(allowance)
            return
        window = series_timeframe(partition.cursor_slice, self.config.get("_derived", {}).get("timezone"))
        try:
            for batch in batches:
                batch_slice = StreamSlice(
                    partition={
                        **partition.partition,
                        "segment_id": batch,
                        "segment_created": {segment_id: created.get(segment_id) for segment_id in batch},
                        **window,
                    },
                    cursor_slice=partition.cursor_slice,
                )
                for record in super().read_records(records_schema, batch_slice):
                    yield self._reassociate_with_original_slice(record, partition)
        except Exception:
            # A report the sync cannot use (malformed, refused, the daily quota): later windows
            # would only spend calls that the next sync, resuming from the state, makes again.
            allowance.stop()
            raise


def partition_end(partition: StreamSlice) -> dt.datetime | None:
    """Where a partition's data ends, exclusive, in company wall time: a series window's last
    second plus one, a custom values window's end; ``None`` for a timeframe key.

    >>> window = {"start_time": "2024-01-01T00:00:00", "end_time": "2024-02-29T23:59:59"}
    >>> partition_end(StreamSlice(partition={}, cursor_slice=window))
    datetime.datetime(2024, 3, 1, 0, 0)
    """
    last_second = partition.cursor_slice.get("end_time")
    if last_second:
        return wall_time(last_second) + dt.timedelta(seconds=1)
    timeframe_end = (partition.partition.get("values_timeframe") or {}).get("timeframe_end")
    return wall_time(timeframe_end) if timeframe_end else None


@dataclass
class RetryAfterBackoff(BackoffStrategy):
    """Waits the ``Retry-After`` seconds of a 429; a longer wait than ``max_waiting_time_in_seconds``
    is Klaviyo's daily quota, so the sync ends (keeping the state of finished windows) with a
    transient error saying when to run it again. Without the header, defers to the next strategy.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    max_waiting_time_in_seconds: float = MAX_RATE_LIMIT_WAIT_SECONDS

    def backoff_time(
        self,
        response_or_exception: Union[requests.Response, requests.RequestException] | None,
        attempt_count: int,
    ) -> float | None:
        if not isinstance(response_or_exception, requests.Response):
            return None
        header = response_or_exception.headers.get("Retry-After", "")
        try:
            wait = float(header)
        except ValueError:
            return None
        if wait > float(self.max_waiting_time_in_seconds):
            retry_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=wait)
            response = response_or_exception
            # Only report calls have a daily quota; any other long wait is said as it is.
            quota = response.status_code == 429 and ReportPacer.is_report_call(response.request)
            what = "Klaviyo's daily report quota is used up; it frees up" if quota else (
                f"Klaviyo asked the connector ({response.status_code}) to come back"
            )
            raise AirbyteTracedException(
                message=(
                    f"{what} in {_duration(wait)} (at {retry_at:%Y-%m-%d %H:%M} UTC). "
                    "Run the sync again then: it resumes from the last saved window."
                ),
                internal_message=f"{response.status_code} with Retry-After: {header}",
                failure_type=FailureType.transient_error,
            )
        return max(wait, 0.0)


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


class ReportPacer(APIBudget):
    """Spaces report calls so that they stay within Klaviyo's published limits *before* they are
    sent, instead of learning them from 429s.

    - Burst (1 call a second): a report call goes out at least ``burst_gap_seconds`` after the
      start of the previous one.
    - Steady (2 calls per fixed minute): after an answer whose ``RateLimit-Remaining`` is 0, the
      next report call waits the ``RateLimit-Reset`` seconds it named (Klaviyo sends seconds from
      now; the CDK's ``HttpAPIBudget`` reads that header as an epoch time, hence this class).
    - A 429 uses up no slot: its ``Retry-After`` is waited out by the error handler
      (``RetryAfterBackoff``), the remaining count is forgotten, and the next answer's headers set
      it again.

    Nothing is paced until the server shows that it limits report calls (a ``RateLimit-*`` header
    or a 429): Klaviyo always does, and a stand-in without limits is then read at full speed.
    Other requests (``GET /api/segments``, ``GET /api/accounts``) are never held back.

    >>> clock = iter([0.0, 0.0, 0.4, 0.4, 0.4, 1.0]).__next__
    >>> pacer = ReportPacer(clock=clock, sleep=lambda s: print(f"sleep {s:.1f}"))
    >>> pacer.wait_for_report_slot()  # the first call goes at once
    >>> pacer.note_limits(remaining=1, reset_seconds=40)
    >>> pacer.wait_for_report_slot()  # 0.4 s after the first one started: the burst limit holds it
    sleep 0.6
    """

    # Above this, a wait is worth a line in the log: a person should know why nothing moves.
    LOGGED_WAIT_SECONDS = 5.0

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
        burst_gap_seconds: float = 1.0,
    ) -> None:
        super().__init__(policies=[])
        # Looked up at call time, so tests that fake time.sleep / time.monotonic reach these too.
        self.clock: Callable[[], float] = clock or (lambda: time.monotonic())
        self.sleep: Callable[[float], Any] = sleep or (lambda seconds: time.sleep(seconds))
        self.burst_gap_seconds = burst_gap_seconds
        self._limited = False
        self._last_start: float | None = None
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def is_report_call(request: Any) -> bool:
        path = urlparse(str(getattr(request, "url", "") or "")).path.rstrip("/")
        return path.endswith("-reports")

    def note_limits(self, remaining: int, reset_seconds: float) -> None:
        """What an answer's ``RateLimit-Remaining`` / ``RateLimit-Reset`` headers said."""
        with self._lock:
            self._limited = True
            self._remaining = remaining
            self._reset_at = self.clock() + reset_seconds

    def note_throttled(self) -> None:
        """A 429: the attempt counts for nothing; the next answer's headers tell the truth."""
        with self._lock:
            self._limited = True
            self._remaining = None

    def next_slot_wait(self, now: float) -> tuple[float, str]:
        """How long a report call starting at ``now`` must wait, and why ("" when it need not)."""
        if not self._limited:
            return 0.0, ""
        steady = self._reset_at - now if self._remaining is not None and self._remaining <= 0 else 0.0
        burst = self._last_start + self.burst_gap_seconds - now if self._last_start is not None else 0.0
        if steady >= burst and steady > 0:
            return steady, "Klaviyo's report calls for this minute are used up (2 a minute)"
        if burst > 0:
            return burst, "Klaviyo allows 1 report call a second"
        return 0.0, ""

    def wait_for_report_slot(self) -> None:
        # Sleeping under the lock holds back every other report call too: none may go out early.
        with self._lock:
            wait, why = self.next_slot_wait(self.clock())
            if wait > 0:
                if wait > self.LOGGED_WAIT_SECONDS:
                    LOGGER.info("Waiting %.0f s before the next report call: %s.", wait, why)
                self.sleep(wait)
                if self._remaining is not None and self._remaining <= 0:
                    self._remaining = None  # a new window: unknown until its first answer
            self._last_start = self.clock()
            if self._remaining is not None:
                self._remaining -= 1

    def acquire_call(self, request: Any, block: bool = True, timeout: float | None = None) -> None:
        if self.is_report_call(request):
            self.wait_for_report_slot()

    def get_matching_policy(self, request: Any) -> AbstractCallRatePolicy | None:
        return None

    def update_from_response(self, request: Any, response: Any) -> None:
        if not self.is_report_call(request) or not isinstance(response, requests.Response):
            return
        if response.status_code == 429:
            self.note_throttled()
            return
        try:
            remaining = int(response.headers["RateLimit-Remaining"])
            reset_seconds = float(response.headers["RateLimit-Reset"])
        except (KeyError, ValueError):
            return
        self.note_limits(remaining, reset_seconds)


class ReportCallAllowance:
    """How many report calls a sync may still make (``max_report_requests``); unlimited if ``None``,
    none at all once the sync is stopping (``stop``) after a report it could not use.

    A partition is read whole or not at all: ``reserve`` grants all of its batches or none, so a
    window is never half-read (which would move the state past the batches left out). A stream
    that cannot resume (full refresh) is granted all its partitions at its first one, or nothing,
    and a resumable stream leaves those calls to it: a full-refresh table is never replaced by
    part of itself.

    >>> allowance = ReportCallAllowance(6)
    >>> allowance.plan(resumable={"series"}, whole_partitions={"values": 2})
    >>> allowance.reserve("series", 2), allowance.reserve("series", 2)  # 4 of 6 kept for values
    (True, False)
    >>> allowance.reserve("values", 2), allowance.reserve("values", 2)  # both its partitions at once
    (True, True)
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.reserved = 0
        self.spent_logged = False
        self.stopped = False
        self.resumable: set[str] = set()
        self._whole_partitions: dict[str, int] = {}
        self._granted_whole: set[str] = set()
        self._lock = threading.Lock()

    def plan(self, resumable: set[str], whole_partitions: dict[str, int]) -> None:
        """Which streams resume from state if cut short, and how many partitions each full-refresh
        stream (whose count is known before it starts) must be granted at once."""
        with self._lock:
            self.resumable = set(resumable)
            self._whole_partitions = dict(whole_partitions)

    def stop(self) -> None:
        with self._lock:
            self.stopped = True

    def _fits(self, calls: int) -> bool:
        return self.limit is None or self.reserved + calls <= self.limit

    def reserve(self, stream: str, calls: int, most_calls: int | None = None, stream_calls: int | None = None) -> bool:
        """Grants ``stream`` the ``calls`` of its next partition (a partition's batches).

        ``most_calls`` is the most any partition may need (every segment): what is kept for the
        streams that must be read whole and have not started. ``stream_calls`` is what a stream
        read whole needs for all its partitions, when known exactly; it is granted all of them at
        its first partition, or none, and then nothing more."""
        most = max(calls, most_calls or 0)
        with self._lock:
            if self.stopped:
                return False
            if stream in self._granted_whole:
                return True
            if stream in self._whole_partitions:
                needed = stream_calls if stream_calls is not None else self._whole_partitions[stream] * most
                if not self._fits(needed):
                    return False
                del self._whole_partitions[stream]
                self.reserved += needed
                self._granted_whole.add(stream)
                return True
            # Calls kept for the full-refresh streams still to come, unless they cannot fit anyway.
            kept = sum(n * most for n in self._whole_partitions.values())
            if not self._fits(kept):
                kept = 0
            if not self._fits(calls + kept):
                return False
            self.reserved += calls
            return True

    _per_sync: dict[str, ReportCallAllowance] = {}
    _per_sync_lock = threading.Lock()

    @classmethod
    def for_sync(cls, config: Mapping[str, Any]) -> ReportCallAllowance:
        """The one allowance of the sync this config was prepared for: the config itself must stay
        plain JSON, so it carries the sync's id and the allowance lives here."""
        derived = config.get("_derived", {})
        with cls._per_sync_lock:
            sync_id = derived.get("sync_id", "")
            if sync_id not in cls._per_sync:
                cls._per_sync[sync_id] = cls(config.get("max_report_requests"))
            return cls._per_sync[sync_id]

    def __repr__(self) -> str:
        return f"ReportCallAllowance(limit={self.limit}, reserved={self.reserved})"
