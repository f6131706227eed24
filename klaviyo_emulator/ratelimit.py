"""Fixed-window rate limiting shaped like Klaviyo's per-account limits.

Klaviyo publishes burst / steady / daily limits per endpoint family. The emulator models each as a
fixed window aligned to the limiter's creation time on an injectable monotonic clock, so tests can
advance a fake clock instead of sleeping.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

# Bucket names: the two report endpoints share one quota by default (the harsher reading, so a
# connector that stays within it is safe whichever way Klaviyo really counts).
REPORT_BUCKET = "reports"
SERIES_BUCKET = "segment-series-reports"
VALUES_BUCKET = "segment-values-reports"
SEGMENTS_BUCKET = "segments"
ACCOUNTS_BUCKET = "accounts"


@dataclass(frozen=True)
class RateLimits:
    """Per-account limits. Counts are calls per window; windows are seconds.

    `burst`, `steady`, `daily` apply to the report endpoints; `list_burst` and `list_steady` apply to
    GET /api/segments (Klaviyo: 75/s, 750/min) and `accounts_burst` / `accounts_steady` to
    GET /api/accounts (Klaviyo: 1/s, 15/min), each a bucket of its own with the same burst/steady
    windows. `shared_report_quota` makes series and values calls draw from one quota (True) or from
    one quota each (False).
    """

    burst: int = 1
    burst_window: float = 1.0
    steady: int = 2
    steady_window: float = 60.0
    daily: int = 225
    daily_window: float = 86400.0
    list_burst: int = 75
    list_steady: int = 750
    accounts_burst: int = 1
    accounts_steady: int = 15
    shared_report_quota: bool = True

    @classmethod
    def klaviyo(cls, time_scale: float = 1.0, burst_time_scale: float | None = None) -> RateLimits:
        """Klaviyo's published limits with the steady and daily windows divided by `time_scale`.

        time_scale=60 turns "2 per minute" into "2 per second" and a day into 24 minutes. The burst
        window is divided by `burst_time_scale` when given, else by `time_scale` too: klaviyo(60, 1.0)
        keeps the burst at its real 1 s while the steady window is 1 s and the daily one 1440 s, so a
        fast or fake clock still exercises the burst limit.
        """
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if burst_time_scale is not None and burst_time_scale <= 0:
            raise ValueError("burst_time_scale must be positive")
        return cls(
            burst_window=1.0 / (time_scale if burst_time_scale is None else burst_time_scale),
            steady_window=60.0 / time_scale,
            daily_window=86400.0 / time_scale,
        )

    def windows(self, bucket: str) -> list[tuple[str, int, float]]:
        """(name, limit, seconds) for every window that applies to `bucket`."""
        if bucket == SEGMENTS_BUCKET:
            return [
                ("burst", self.list_burst, self.burst_window),
                ("steady", self.list_steady, self.steady_window),
            ]
        if bucket == ACCOUNTS_BUCKET:
            return [
                ("burst", self.accounts_burst, self.burst_window),
                ("steady", self.accounts_steady, self.steady_window),
            ]
        return [
            ("burst", self.burst, self.burst_window),
            ("steady", self.steady, self.steady_window),
            ("daily", self.daily, self.daily_window),
        ]

    def report_bucket(self, endpoint_bucket: str) -> str:
        """The quota bucket a report endpoint draws from."""
        return REPORT_BUCKET if self.shared_report_quota else endpoint_bucket


@dataclass(frozen=True)
class Decision:
    """Outcome of one admission check.

    When `allowed`, `limit`/`remaining`/`reset` describe the steady window for the RateLimit-* headers
    (`reset` is whole seconds, at least 1). When not, `retry_after` is whole seconds (ceil, >= 1) until
    every exhausted window has reset and `window` names the window that blocked the call.
    """

    allowed: bool
    retry_after: int = 0
    limit: int = 0
    remaining: int = 0
    reset: int = 0
    window: str = ""


class FixedWindowLimiter:
    """Thread-safe fixed-window counters keyed by (bucket, window name).

    Window k of length w covers [origin + k*w, origin + (k+1)*w) on `clock`. A call is admitted only if
    every window of its bucket has room; an admitted call counts against all of them, a throttled call
    against none (so a throttled client is not punished further).
    """

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._origin = clock()
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def _position(self, seconds: float, now: float) -> tuple[int, float]:
        """Index of the window containing `now` and the seconds until it ends."""
        index = math.floor((now - self._origin) / seconds)
        return index, self._origin + (index + 1) * seconds - now

    def check(self, bucket: str) -> Decision:
        """Admit or throttle one call on `bucket`."""
        with self._lock:
            now = self._clock()
            blocked: list[tuple[float, str]] = []
            positions = []
            for name, limit, seconds in self.limits.windows(bucket):
                index, until_reset = self._position(seconds, now)
                held_index, count = self._counts.get((bucket, name), (index, 0))
                count = count if held_index == index else 0
                positions.append((name, limit, index, count, until_reset))
                if count >= limit:
                    blocked.append((until_reset, name))
            if blocked:
                wait, name = max(blocked)
                return Decision(allowed=False, retry_after=max(1, math.ceil(wait)), window=name)
            for name, _limit, index, count, _until in positions:
                self._counts[(bucket, name)] = (index, count + 1)
            steady = next(p for p in positions if p[0] == "steady")
            return Decision(
                allowed=True,
                limit=steady[1],
                remaining=max(0, steady[1] - steady[3] - 1),
                reset=max(1, math.ceil(steady[4])),
            )

    def seconds_until_daily_reset(self) -> float:
        """Seconds until the current daily window ends."""
        return self._position(self.limits.daily_window, self._clock())[1]
