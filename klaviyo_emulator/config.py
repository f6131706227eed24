"""Configuration objects of the emulator: what to serve and which faults to inject."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Callable

from .ratelimit import RateLimits

ENDPOINTS = ("accounts", "segments", "series", "values")
MALFORMED_KINDS = ("missing_statistic", "short_date_times", "not_json", "wrong_type")
CAP_MODES = ("elapsed", "wall")
WEEK_STARTS = ("monday", "sunday")
DATE_TIMES_IN = ("company", "utc")
BEFORE_CREATION = ("zero", "null")
EDGES = ("inclusive", "strict", "generous")
FUTURE_TIMEFRAMES = ("empty", "refuse")


@dataclass(frozen=True)
class Faults:
    """Injected failures. Rates are shares in [0, 1] drawn from `random.Random(seed)`.

    - fail_rate: share of valid report calls answered 503 (MetricServiceRetryableError).
    - drop_rate: share of API requests whose socket is closed without any response.
    - slow_seconds: real delay before answering an API request.
    - daily_exhausted: every report call gets 429 with Retry-After = seconds to the daily reset.
    - echo_request_in_errors: error bodies echo the request headers, Authorization included.
    - malformed: corrupt successful report responses ("missing_statistic": the first requested
      statistic is absent from every result; "short_date_times": series date_times lose their last
      entry; "not_json": an HTML body; "wrong_type": every statistic value is the string "n/a").
    - next_link_base: segment pages' links.next (and prev) name this base URL (scheme://host:port)
      instead of the emulator's own, as a proxy passing on another host's links would.
    - refuse_endpoint: every request to this endpoint ("accounts", "segments", "series" or "values")
      that passes authentication is answered 400 `invalid` (echoing the request's headers too when
      echo_request_in_errors is on).
    """

    fail_rate: float = 0.0
    drop_rate: float = 0.0
    slow_seconds: float = 0.0
    daily_exhausted: bool = False
    echo_request_in_errors: bool = False
    malformed: str | None = None
    next_link_base: str | None = None
    refuse_endpoint: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("fail_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must not be negative")
        if self.malformed is not None and self.malformed not in MALFORMED_KINDS:
            raise ValueError(f"malformed must be one of {MALFORMED_KINDS} or None")
        if self.refuse_endpoint is not None and self.refuse_endpoint not in ENDPOINTS:
            raise ValueError(f"refuse_endpoint must be one of {ENDPOINTS} or None")

    @classmethod
    def from_json(cls, body: Any) -> Faults:
        """Build from an admin JSON object; unknown keys raise ValueError."""
        return cls(**_known_fields(cls, body))


def _known_fields(cls: type, body: Any) -> dict[str, Any]:
    """`body` as constructor kwargs of dataclass `cls`, rejecting anything else."""
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(body) - names)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    return dict(body)


def limits_from_json(body: Any) -> RateLimits | None:
    """Admin JSON to limits: null = no limits; {"time_scale": s} = RateLimits.klaviyo(s);
    {"time_scale": s, "burst_time_scale": b} = RateLimits.klaviyo(s, b); else RateLimits fields."""
    if body is None:
        return None
    if isinstance(body, dict) and "time_scale" in body and set(body) <= {"time_scale", "burst_time_scale"}:
        burst = body.get("burst_time_scale")
        return RateLimits.klaviyo(float(body["time_scale"]), None if burst is None else float(burst))
    return RateLimits(**_known_fields(RateLimits, body))


@dataclass
class EmulatorConfig:
    """What the emulator serves.

    `now` is the naive company-local wall time the data ends at (None = the real clock). `clock` is the
    monotonic clock used for rate-limit windows and CallRecord.at (inject a fake to avoid sleeping).
    `port` 0 picks a free port.

    Readings of what Klaviyo leaves open (defaults follow the published material; see the package
    docstring for the exact contract of each):

    - require_offset: True = a custom timeframe's start/end must carry a UTC offset (RFC 3339
      date-time, as the spec types them); a naive one gets 400 `invalid` pointing at
      /data/attributes/timeframe/start (or /end). The offset is ignored either way. False = naive
      times are accepted too.
    - cap_mode: "elapsed" = interval caps measure end - start in elapsed time in the company zone;
      "wall" = in wall time (a DST fall-back window is then not an hour longer).
    - accounts_scope: False = the main key lacks accounts:read, so GET /api/accounts answers 403.
    - week_start: "monday" | "sunday": first day of weekly buckets and of this_week / last_week.
    - date_times_in: "company" = series date_times carry the company offset
      (2024-01-05T00:00:00-05:00); "utc" = the same instants written in UTC (2024-01-05T05:00:00+00:00).
    - created_spread: (first, last) naive company-local wall times; segment i of N (sorted ids) is
      created at first + (last - first) * i / (N - 1), measured in elapsed time. None = every segment
      was created before the data starts (2023-06-01).
    - created_times: one naive company-local creation wall time per segment (sorted ids keep their
      order), for uneven creation dates; exclusive with created_spread. Same data rules as created_spread.
    - before_creation: "zero" = buckets before a segment's creation report 0 (total_members 0);
      "null" = a bucket (or values timeframe) ending at or before the creation instant reports null
      for every statistic.
    - edges: "inclusive" = buckets whose start wall time is in [floor_bucket(start), end];
      "strict" = in [start, end]; "generous" = in [floor_bucket(start), first bucket start after end].
    - future_timeframe: a custom timeframe whose start is after `now` (Klaviyo's docs do not say what
      it answers). "empty" = answered like any other: series date_times [] and empty statistic
      lists, values counting over the part up to now (nothing); "refuse" = 400 `invalid` at
      /data/attributes/timeframe/start saying the timeframe is in the future. A timeframe that
      starts at or before now is served up to now in both modes, and timeframe keys always are.
    """

    segments: int = 25
    timezone: str = "America/New_York"
    api_key: str = "pk_emulator_key"
    no_scope_api_key: str = "pk_emulator_noscope"
    now: datetime | None = None
    limits: RateLimits | None = None
    faults: Faults = field(default_factory=Faults)
    seed: int = 7
    page_size: int = 10
    port: int = 0
    host: str = "127.0.0.1"
    clock: Callable[[], float] = time.monotonic
    require_offset: bool = True
    cap_mode: str = "elapsed"
    accounts_scope: bool = True
    week_start: str = "monday"
    date_times_in: str = "company"
    created_spread: tuple[datetime, datetime] | None = None
    created_times: tuple[datetime, ...] | None = None
    before_creation: str = "zero"
    edges: str = "inclusive"
    future_timeframe: str = "empty"

    def __post_init__(self) -> None:
        for name, allowed in (("cap_mode", CAP_MODES), ("week_start", WEEK_STARTS),
                              ("date_times_in", DATE_TIMES_IN), ("before_creation", BEFORE_CREATION),
                              ("edges", EDGES), ("future_timeframe", FUTURE_TIMEFRAMES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.created_spread is not None:
            first, last = self.created_spread
            if first.tzinfo is not None or last.tzinfo is not None:
                raise ValueError("created_spread takes naive company-local wall times")
            if last < first:
                raise ValueError("created_spread must be (first, last) with first <= last")
        if self.created_times is not None:
            if self.created_spread is not None:
                raise ValueError("give created_spread or created_times, not both")
            if len(self.created_times) != self.segments:
                raise ValueError(f"created_times needs one time per segment ({self.segments}), got {len(self.created_times)}")
            if any(wall.tzinfo is not None for wall in self.created_times):
                raise ValueError("created_times takes naive company-local wall times")
