"""Deterministic synthetic segment data: the emulator's answers and an independent truth oracle.

Data model (all per segment, company-local time, data starting DATA_START = 2023-06-01 00:00):

- Hour index h is the real hour starting at instant t0 + 3600*h, t0 = DATA_START in the company zone.
  Hours are therefore local wall hours (UTC offsets are assumed to differ by whole hours), a DST day
  has 23 or 25 of them, and the repeated fall-back hour appears twice with different offsets.
- members_added(h) and members_removed(h) are small non-negative ints: bytes of
  random.Random(f"{seed}:{segment_id}:{h // 1024}").randbytes(1024) (one byte string for added, the
  next for removed) mapped through a per-segment table (a share of hours is 0, the rest 1..max);
  a block's members_added is then zeroed (a quiet spell) or doubled (a campaign) by its mood.
  Segments cycle through growing / shrinking / steady profiles; inactive segments never change.
  Hours before DATA_START are 0.
- net_members_changed = members_added - members_removed (summed over a bucket).
- total_members of a bucket = base + sum of net over every hour from DATA_START to the end of the
  bucket (capped at now). base >= members_removed max * hours until 2033-06-01, so it never goes
  negative. Consecutive buckets therefore differ by exactly the later bucket's net_members_changed.
- Data exists for hours whose start is at or before `now`; a bucket containing now carries the sums
  of its hours so far; buckets starting after now are not returned.
- Creation (EmulatorConfig.created_spread): a segment created at hour c >= 0 (on or after DATA_START)
  has base 0 and every hour before c is 0; from c on, an hour removes at most the members it holds, so
  total_members grows from 0 and never goes below it. Segments created before DATA_START (every
  segment by default) keep the data above unchanged. With before_creation="null", a bucket whose
  calendar end (the start of the next bucket) is at or before the creation instant reports None for
  every statistic; the serving path and the oracle apply this rule separately.
- Modes followed by both paths: week_start (weekly buckets, this_week/last_week) and date_times_in
  (bucket keys with the company offset or in UTC). `edges` shapes only the serving path's window.

The serving path (DataStore.series_report / values_report) walks calendar bucket boundaries and reads
per-segment prefix sums. The oracle (truth_series / truth_values) groups individual hours by their
wall time and sums hourly values directly, so the two share only the hourly generator.
"""

from __future__ import annotations

import math
import random
import string
import threading
from array import array
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from datetime import time as dtime
from itertools import accumulate, compress
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

DATA_START = datetime(2023, 6, 1)
HORIZON_END = datetime(2033, 6, 1)  # base members are sized so totals stay >= 0 until then
BLOCK_HOURS = 1024
HOUR = timedelta(hours=1)

STATISTICS: tuple[str, ...] = ("total_members", "members_added", "members_removed", "net_members_changed")
INTERVALS: tuple[str, ...] = ("hourly", "daily", "weekly", "monthly")
TIMEFRAME_KEYS: tuple[str, ...] = (
    "today", "yesterday", "this_week", "last_week", "this_month", "last_month", "this_year",
    "last_year", "last_7_days", "last_30_days", "last_90_days", "last_365_days", "last_3_months",
    "last_12_months",
)

Stats = dict[str, int | None]  # None: null, before_creation="null" only
# weekday() of the first day of a week, per EmulatorConfig.week_start
WEEK_STARTS: dict[str, int] = {"monday": 0, "sunday": 6}


# ---------------------------------------------------------------------------------------------
# Calendar helpers (naive company-local wall times)


def add_months(wall: datetime, months: int) -> datetime:
    """`wall` moved by whole months; the day is clamped to the target month's length."""
    index = wall.year * 12 + wall.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    days = (datetime(year + month // 12, month % 12 + 1, 1) - datetime(year, month, 1)).days
    return wall.replace(year=year, month=month, day=min(wall.day, days))


def add_years(wall: datetime, years: int) -> datetime:
    """`wall` moved by whole calendar years (29 February becomes 28 February)."""
    return add_months(wall, 12 * years)


def floor_hour(wall: datetime) -> datetime:
    """Start of the wall hour containing `wall`."""
    return wall.replace(minute=0, second=0, microsecond=0)


def floor_bucket(interval: str, wall: datetime, week_start: str = "monday") -> datetime:
    """Start wall time of the `interval` bucket containing `wall` (weeks start on `week_start`)."""
    if interval == "hourly":
        return floor_hour(wall)
    day = datetime.combine(wall.date(), dtime())
    if interval == "daily":
        return day
    if interval == "weekly":
        return day - timedelta(days=(day.weekday() - WEEK_STARTS[week_start]) % 7)
    if interval == "monthly":
        return day.replace(day=1)
    raise ValueError(f"unknown interval {interval!r}")


def next_bucket(interval: str, bucket_start: datetime) -> datetime:
    """Wall start of the bucket after the one starting at `bucket_start` (calendar intervals)."""
    if interval == "daily":
        return bucket_start + timedelta(days=1)
    if interval == "weekly":
        return bucket_start + timedelta(days=7)
    if interval == "monthly":
        return add_months(bucket_start, 1)
    raise ValueError(f"not a calendar interval: {interval!r}")


def resolve_timeframe_key(key: str, now_wall: datetime, week_start: str = "monday") -> tuple[datetime, datetime]:
    """Naive local [start, end) of a timeframe key at `now_wall`.

    Undocumented by Klaviyo, chosen here: weeks start on `week_start` (Monday by default);
    `last_N_days` are the N whole days before today (today excluded); `last_N_months` are the N whole
    months before the current one.
    """
    today = datetime.combine(now_wall.date(), dtime())
    monday = floor_bucket("weekly", today, week_start)  # the first day of this week
    first = today.replace(day=1)
    jan1 = first.replace(month=1)
    fixed: dict[str, tuple[datetime, datetime]] = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "this_week": (monday, monday + timedelta(days=7)),
        "last_week": (monday - timedelta(days=7), monday),
        "this_month": (first, add_months(first, 1)),
        "last_month": (add_months(first, -1), first),
        "this_year": (jan1, add_years(jan1, 1)),
        "last_year": (add_years(jan1, -1), jan1),
        "last_3_months": (add_months(first, -3), first),
        "last_12_months": (add_months(first, -12), first),
    }
    if key in fixed:
        return fixed[key]
    if key.startswith("last_") and key.endswith("_days") and key in TIMEFRAME_KEYS:
        days = int(key[len("last_"):-len("_days")])
        return today - timedelta(days=days), today
    raise ValueError(f"unknown timeframe key {key!r}")


class CompanyTime:
    """Maps naive company-local wall times to instants and hour indices (see module docstring).

    Wall times are converted with `fold`: `earliest` (fold=0) picks the first occurrence of a repeated
    wall time and, for a wall time skipped by spring-forward, the instant after the gap; `latest`
    (fold=1) picks the second occurrence and, inside a gap, the hour before it. Applied to hour-aligned
    wall times this yields "first hour whose wall time >= w" and "last hour whose wall time <= w".
    """

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self.t0 = self.instant(DATA_START)

    def instant(self, wall: datetime, *, latest: bool = False) -> float:
        """POSIX timestamp of naive `wall` in the company zone."""
        return wall.replace(tzinfo=self.tz, fold=1 if latest else 0).timestamp()

    def hour_of(self, wall: datetime, *, latest: bool = False) -> int:
        """Index of the hour containing `wall`."""
        return int((self.instant(wall, latest=latest) - self.t0) // 3600)

    def first_hour(self, start: datetime) -> int:
        """First hour whose start wall time is >= floor_hour(start)."""
        return self.hour_of(floor_hour(start))

    def last_hour(self, end: datetime, *, inclusive: bool) -> int:
        """Last hour whose start wall time is <= end (inclusive) or < end (exclusive)."""
        last = floor_hour(end)
        if not inclusive and last == end:
            last -= HOUR
        return self.hour_of(last, latest=True)

    def hour_aware(self, h: int) -> datetime:
        """Aware local start of hour `h`."""
        return datetime.fromtimestamp(self.t0 + 3600 * h, self.tz)

    def hour_iso(self, h: int, *, utc: bool = False) -> str:
        """Start of hour `h` as the series endpoint prints it: with the company offset, e.g.
        2024-01-05T00:00:00-05:00, or (utc) the same instant in UTC, 2024-01-05T05:00:00+00:00."""
        if utc:
            return datetime.fromtimestamp(self.t0 + 3600 * h, timezone.utc).isoformat()
        return self.hour_aware(h).isoformat()

    def hour_wall(self, h: int) -> datetime:
        """Naive local wall start of hour `h`."""
        return self.hour_aware(h).replace(tzinfo=None)

    def available_hours(self, now_instant: float) -> int:
        """Number of hours (from hour 0) whose start is at or before `now_instant`."""
        return max(0, int((now_instant - self.t0) // 3600) + 1)

    def now_wall(self, now_instant: float) -> datetime:
        """Naive local wall time of `now_instant`."""
        return datetime.fromtimestamp(now_instant, self.tz).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# Segments

_ADJECTIVES = ("Engaged", "Lapsed", "VIP", "New", "Churn-risk", "Repeat", "Window", "Loyal", "Dormant")
_NOUNS = ("Subscribers", "Buyers", "Browsers", "Openers", "Clickers", "Members", "Shoppers")
_PROFILES = ("growing", "shrinking", "steady")
_DOUBLED = bytes(min(255, 2 * v) for v in range(256))  # a campaign block's hourly joins
_HORIZON_HOURS = int((HORIZON_END - DATA_START).total_seconds() // 3600) + 48


@dataclass(frozen=True)
class Segment:
    """One synthetic segment: its API attributes and its membership-change profile."""

    id: str
    index: int
    name: str
    created: str
    updated: str
    is_active: bool
    is_processing: bool
    is_starred: bool
    definition: dict[str, Any]
    profile: str
    base: int
    add_table: bytes
    remove_table: bytes
    created_at: float  # POSIX time of `created`
    created_hour: int  # index of the hour holding `created` (negative: before DATA_START)


def _value_table(zero_share: float, maximum: int) -> bytes:
    """Byte-to-count table: the lowest `zero_share` of byte values map to 0, the rest to 1..maximum."""
    if maximum <= 0:
        return bytes(256)
    threshold = int(256 * zero_share)
    return bytes(0 if v < threshold else 1 + (v - threshold) % maximum for v in range(256))


def _segment_ids(seed: int, count: int) -> list[str]:
    """`count` distinct deterministic 6-character alphanumeric ids, sorted."""
    rng = random.Random(f"{seed}:segment-ids")
    alphabet = string.ascii_letters + string.digits
    ids: set[str] = set()
    while len(ids) < count:
        ids.add("".join(rng.choice(alphabet) for _ in range(6)))
    return sorted(ids)


def _definition(rng: random.Random, index: int) -> dict[str, Any]:
    """A plausible, deliberately bulky segment definition (why fields[segment] matters)."""
    conditions = [
        {
            "type": "profile-metric",
            "metric_id": "".join(rng.choice(string.ascii_letters) for _ in range(6)),
            "measurement": "count",
            "measurement_filter": {"type": "numeric", "operator": "greater-than", "value": rng.randint(0, 9)},
            "timeframe_filter": {"type": "date", "operator": "in-the-last", "quantity": rng.choice((7, 30, 90)),
                                 "unit": "day"},
            "metric_filters": [{"property": f"$value_{k}", "filter": {"type": "numeric", "operator": "equals",
                                                                      "value": k}} for k in range(3)],
        }
        for _ in range(2 + index % 5)
    ]
    return {"condition_groups": [{"conditions": conditions}]}


def _make_segment(seed: int, index: int, segment_id: str, tz: ZoneInfo, created_at: float | None) -> Segment:
    """Deterministic segment `index` of the account, created at POSIX time `created_at` (None: a
    seeded time 30 to 900 days before DATA_START). The random draws are the same either way, so every
    other attribute is independent of `created_at`."""
    rng = random.Random(f"{seed}:segment:{segment_id}")
    is_active = index % 11 != 3
    profile = _PROFILES[index % 3] if is_active else "inactive"
    add_max, remove_max = {
        "growing": (rng.randint(3, 8), rng.randint(0, 2)),
        "shrinking": (rng.randint(0, 2), rng.randint(3, 6)),
        "steady": (rng.randint(2, 4), rng.randint(2, 4)),
        "inactive": (0, 0),
    }[profile]
    created = DATA_START - timedelta(days=rng.randint(30, 900), seconds=rng.randint(0, 86399))
    updated = created + timedelta(days=rng.randint(0, 300), seconds=rng.randint(0, 86399))
    if created_at is None:
        created_text, updated_text = created.replace(tzinfo=tz).isoformat(), updated.replace(tzinfo=tz).isoformat()
        created_at = created.replace(tzinfo=tz).timestamp()
    else:
        created_text = datetime.fromtimestamp(created_at, tz).isoformat()
        updated_text = datetime.fromtimestamp(created_at + (updated - created).total_seconds(), tz).isoformat()
    name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {index:03d}"
    definition = _definition(rng, index)
    # Large enough that even removing remove_max members every hour until HORIZON_END
    # cannot drive the total below zero.
    base = remove_max * _HORIZON_HOURS + rng.randint(50, 5000)
    add_table = _value_table(rng.uniform(0.25, 0.7), add_max)
    remove_table = _value_table(rng.uniform(0.25, 0.7), remove_max)
    created_hour = math.floor((created_at - DATA_START.replace(tzinfo=tz).timestamp()) / 3600)
    return Segment(
        id=segment_id,
        index=index,
        name=name,
        created=created_text,
        updated=updated_text,
        is_active=is_active,
        is_processing=index % 19 == 4,
        is_starred=index % 7 == 2,
        definition=definition,
        profile=profile,
        # A segment created after the data starts has no members before its creation: it grows from 0.
        base=base if created_hour < 0 else 0,
        add_table=add_table,
        remove_table=remove_table,
        created_at=created_at,
        created_hour=created_hour,
    )


def spread_instants(first: datetime, last: datetime, count: int, timezone: str) -> list[float]:
    """`count` whole-second POSIX times spread evenly (in elapsed time) from naive company-local
    `first` to `last`, both included; one segment gets `first`."""
    tz = ZoneInfo(timezone)
    low, high = first.replace(tzinfo=tz).timestamp(), last.replace(tzinfo=tz).timestamp()
    if count <= 1:
        return [float(round(low))] * count
    return [float(round(low + (high - low) * i / (count - 1))) for i in range(count)]


def make_segments(
    seed: int, count: int, timezone: str, created_spread: tuple[datetime, datetime] | None = None,
    created_times: Sequence[datetime] | None = None,
) -> list[Segment]:
    """The account's segments, sorted by id; with `created_spread`, segment i of N (in id order) is
    created at spread_instants(*created_spread, N)[i]; with `created_times` (naive company-local wall
    times, one per segment), at created_times[i] (whole seconds)."""
    tz = ZoneInfo(timezone)
    instants: list[float | None] = [None] * count
    if created_spread:
        instants = list(spread_instants(*created_spread, count, timezone))
    elif created_times is not None:
        instants = [float(round(wall.replace(tzinfo=tz).timestamp())) for wall in created_times]
    return [_make_segment(seed, i, sid, tz, instants[i]) for i, sid in enumerate(_segment_ids(seed, count))]


# ---------------------------------------------------------------------------------------------
# Hourly values and prefix sums


class SegmentSeries:
    """Hourly values of one segment, generated in blocks, with lazily extended prefix sums.

    cum_added[k] / cum_removed[k] hold the sums over hours [0, k). Thread-safe.
    """

    def __init__(self, segment: Segment, seed: int) -> None:
        self.segment = segment
        self._seed = seed
        self._blocks: list[tuple[bytes, bytes]] = []
        # 'q': 64-bit sums, never overflow whatever the horizon.
        self.cum_added = array("q", [0])
        self.cum_removed = array("q", [0])
        self._running = 0  # members at the end of the generated blocks (segments created after DATA_START)
        self._lock = threading.RLock()

    def _generate(self, block: int) -> tuple[bytes, bytes]:
        """Raw (added, removed) counts of hours [block*1024, (block+1)*1024).

        Each block (about six weeks) has a mood, so that growth curves bend like real ones: a quiet
        spell when nobody joins, a campaign when twice as many do, or an ordinary stretch. Removals
        are never raised, so `base` still keeps every total above zero."""
        rng = random.Random(f"{self._seed}:{self.segment.id}:{block}")
        added = rng.randbytes(BLOCK_HOURS).translate(self.segment.add_table)
        removed = rng.randbytes(BLOCK_HOURS).translate(self.segment.remove_table)
        mood = rng.random()
        if mood < 0.25:
            added = bytes(BLOCK_HOURS)
        elif mood < 0.45:
            added = added.translate(_DOUBLED)
        return added, removed

    def _from_creation(self, block: int, raw: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
        """Counts of a block of a segment created at hour c >= 0: hours before c are 0 and from c on
        no hour removes more members than the segment holds (it grows from 0, never below). Blocks are
        generated in order, so the running total carries over. Segments created before DATA_START
        (c < 0) keep the raw counts."""
        c = self.segment.created_hour
        if c < 0:
            return raw
        low = block * BLOCK_HOURS
        if low + BLOCK_HOURS <= c:
            return bytes(BLOCK_HOURS), bytes(BLOCK_HOURS)
        raw_added, raw_removed = raw
        added, removed = bytearray(BLOCK_HOURS), bytearray(BLOCK_HOURS)
        total = self._running
        for i in range(max(0, c - low), BLOCK_HOURS):
            a = raw_added[i]
            r = min(raw_removed[i], total + a)
            added[i], removed[i] = a, r
            total += a - r
        self._running = total
        return bytes(added), bytes(removed)

    def block(self, block: int) -> tuple[bytes, bytes]:
        """Counts of one block, generated on first use."""
        with self._lock:
            while len(self._blocks) <= block:
                index = len(self._blocks)
                self._blocks.append(self._from_creation(index, self._generate(index)))
            return self._blocks[block]

    def hourly(self, h: int) -> tuple[int, int]:
        """(members_added, members_removed) during hour `h` (0 before DATA_START)."""
        if h < 0:
            return 0, 0
        added, removed = self.block(h // BLOCK_HOURS)
        return added[h % BLOCK_HOURS], removed[h % BLOCK_HOURS]

    def hourly_range(self, low: int, high: int) -> tuple[bytes, bytes]:
        """Raw (members_added, members_removed) of hours [low, high), one byte per hour (0 before DATA_START)."""
        lead = bytes(max(0, min(high, 0) - low))
        first = max(low, 0)
        if high <= first:
            return lead, lead
        blocks = [self.block(b) for b in range(first // BLOCK_HOURS, (high - 1) // BLOCK_HOURS + 1)]
        skip = first % BLOCK_HOURS
        window = slice(skip, skip + high - first)
        added = b"".join(a for a, _ in blocks)[window]
        removed = b"".join(r for _, r in blocks)[window]
        return lead + added, lead + removed

    def ensure(self, hours: int) -> None:
        """Extend the prefix sums to cover at least hours [0, hours)."""
        with self._lock:
            while len(self.cum_added) <= hours:
                added, removed = self.block((len(self.cum_added) - 1) // BLOCK_HOURS)
                for source, target in ((added, self.cum_added), (removed, self.cum_removed)):
                    # [1:]: the initial value is already stored; fromlist beats extend(iterator).
                    target.fromlist(list(accumulate(source, initial=target[-1]))[1:])


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def _pick(stats: Stats, statistics: Sequence[str]) -> Stats:
    return {name: stats[name] for name in statistics}


def _nulls(statistics: Sequence[str]) -> Stats:
    return {name: None for name in statistics}


class DataStore:
    """All segments of one emulated account plus the report and truth computations.

    week_start, date_times_in, created_spread and before_creation are EmulatorConfig's modes; both
    the serving path and the oracle follow them.
    """

    def __init__(
        self,
        seed: int,
        count: int,
        timezone: str,
        *,
        week_start: str = "monday",
        date_times_in: str = "company",
        created_spread: tuple[datetime, datetime] | None = None,
        created_times: Sequence[datetime] | None = None,
        before_creation: str = "zero",
    ) -> None:
        self.seed = seed
        self.time = CompanyTime(timezone)
        self.week_start = week_start
        self.utc = date_times_in == "utc"
        self.null_before_creation = before_creation == "null"
        self.segments = make_segments(seed, count, timezone, created_spread, created_times)
        self.by_id = {s.id: s for s in self.segments}
        self._series: dict[str, SegmentSeries] = {}
        self._lock = threading.Lock()

    def series_of(self, segment_id: str) -> SegmentSeries:
        """The (cached) hourly series of a known segment."""
        with self._lock:
            series = self._series.get(segment_id)
            if series is None:
                series = self._series[segment_id] = SegmentSeries(self.by_id[segment_id], self.seed)
            return series

    def known(self, segment_ids: Iterable[str] | None) -> list[str]:
        """Known ids among `segment_ids` in first-seen order, or every id when None."""
        if segment_ids is None:
            return [s.id for s in self.segments]
        return list(dict.fromkeys(i for i in segment_ids if i in self.by_id))

    def date_time(self, h: int) -> str:
        """Bucket key of a bucket whose first hour is `h`, in the date_times_in form."""
        return self.time.hour_iso(h, utc=self.utc)

    # -- serving path: calendar boundaries + prefix sums -------------------------------------

    def _first_hour(self, start: datetime, edges: str) -> int:
        """First hour of a values span: the hour holding `start` ("strict": the first hour starting
        at or after `start`)."""
        first = self.time.first_hour(start)
        while edges == "strict" and self.time.hour_wall(first) < start:
            first += 1
        return first

    def _last_hour(self, end: datetime, *, inclusive: bool, edges: str) -> int:
        """Last hour of a values span ("generous" custom timeframes: one hour past `end`'s hour)."""
        last = self.time.last_hour(end, inclusive=inclusive)
        return last + 1 if inclusive and edges == "generous" else last

    def bucket_bounds(
        self, interval: str, start: datetime, end: datetime, *, inclusive: bool, available: int,
        edges: str = "inclusive",
    ) -> list[tuple[int, int]]:
        """[first hour, end hour) of each bucket whose first hour is not after now and whose start
        wall time t satisfies, for a custom timeframe (inclusive=True):
        "inclusive": floor_bucket(start) <= t <= end; "strict": start <= t <= end;
        "generous": floor_bucket(start) <= t <= the first bucket start after end;
        and for a timeframe key (inclusive=False) the same lower bound with t < end."""
        if inclusive and edges == "generous" and interval != "hourly":
            beyond = next_bucket(interval, floor_bucket(interval, end, self.week_start))
            last = self.time.hour_of(beyond)
        else:
            last = self._last_hour(end, inclusive=inclusive, edges=edges)
        stop = min(last + 1, available)
        if interval == "hourly":
            return [(h, h + 1) for h in range(self._first_hour(start, edges), stop)]
        bounds: list[tuple[int, int]] = []
        wall = floor_bucket(interval, start, self.week_start)
        h = self.time.hour_of(wall)
        while h < stop:
            following_wall = next_bucket(interval, wall)
            following = self.time.hour_of(following_wall)
            if edges != "strict" or wall >= start:
                bounds.append((h, following))
            wall, h = following_wall, following
        return bounds

    def series_report(
        self,
        segment_ids: Sequence[str] | None,
        interval: str,
        start: datetime,
        end: datetime,
        *,
        inclusive: bool,
        statistics: Sequence[str],
        now_instant: float,
        edges: str = "inclusive",
    ) -> tuple[list[str], dict[str, dict[str, list[int | None]]]]:
        """date_times and, per known segment, one list per requested statistic."""
        available = self.time.available_hours(now_instant)
        bounds = self.bucket_bounds(interval, start, end, inclusive=inclusive, available=available, edges=edges)
        date_times = [self.date_time(first) for first, _ in bounds]
        clamped = [(_clamp(a, 0, available), _clamp(b, 0, available)) for a, b in bounds]
        top = max((b for _, b in clamped), default=0)
        results: dict[str, dict[str, list[int | None]]] = {}
        for segment_id in self.known(segment_ids):
            series = self.series_of(segment_id)
            series.ensure(top)
            ca, cr, base = series.cum_added, series.cum_removed, series.segment.base
            columns: dict[str, list[int | None]] = {
                "members_added": [ca[b] - ca[a] for a, b in clamped],
                "members_removed": [cr[b] - cr[a] for a, b in clamped],
                "net_members_changed": [ca[b] - ca[a] - cr[b] + cr[a] for a, b in clamped],
                "total_members": [base + ca[b] - cr[b] for _, b in clamped],
            }
            if self.null_before_creation:
                # A bucket ending (at its calendar end, hour b) at or before the creation instant.
                created = series.segment.created_hour
                for column in columns.values():
                    for pos, (_, b) in enumerate(bounds):
                        if b <= created:
                            column[pos] = None
            results[segment_id] = {name: columns[name] for name in statistics}
        return date_times, results

    def values_report(
        self,
        segment_ids: Sequence[str] | None,
        start: datetime,
        end: datetime,
        *,
        inclusive: bool,
        statistics: Sequence[str],
        now_instant: float,
        edges: str = "inclusive",
    ) -> dict[str, Stats]:
        """Per known segment, each statistic aggregated over hours [floor_hour(start), end] (see
        EmulatorConfig.edges for the other readings)."""
        available = self.time.available_hours(now_instant)
        first = _clamp(self._first_hour(start, edges), 0, available)
        end_hour = self._last_hour(end, inclusive=inclusive, edges=edges) + 1  # the span ends where this hour starts
        stop = _clamp(end_hour, first, available)
        results: dict[str, Stats] = {}
        for segment_id in self.known(segment_ids):
            series = self.series_of(segment_id)
            if self.null_before_creation and end_hour <= series.segment.created_hour:
                results[segment_id] = _nulls(statistics)
                continue
            series.ensure(stop)
            ca, cr = series.cum_added, series.cum_removed
            added, removed = ca[stop] - ca[first], cr[stop] - cr[first]
            stats: Stats = {
                "members_added": added,
                "members_removed": removed,
                "net_members_changed": added - removed,
                "total_members": series.segment.base + ca[stop] - cr[stop],
            }
            results[segment_id] = _pick(stats, statistics)
        return results

    # -- oracle: group single hours by wall time, sum hourly values directly --------------

    def _oracle_bucket(self, interval: str, wall: datetime) -> datetime:
        """Bucket start of `wall`, computed apart from floor_bucket: weeks by day ordinal arithmetic
        (ordinal 1, 0001-01-01, is a Monday; ordinal 7 a Sunday)."""
        if interval == "daily":
            return datetime(wall.year, wall.month, wall.day)
        if interval == "monthly":
            return datetime(wall.year, wall.month, 1)
        if interval == "weekly":
            ordinal = wall.toordinal()
            first_day = 1 if self.week_start == "monday" else 0
            return datetime.fromordinal(ordinal - (ordinal - first_day) % 7)
        raise ValueError(f"unknown interval {interval!r}")

    def _oracle_hours(
        self, series: SegmentSeries, hours: range, available: int
    ) -> tuple[bytes, bytes]:
        """Hourly (added, removed) over `hours`; hours starting after now count 0."""
        known = min(hours.stop, max(hours.start, available))
        added, removed = series.hourly_range(hours.start, known)
        pad = bytes(hours.stop - known)
        return added + pad, removed + pad

    def truth_series(
        self,
        interval: str,
        start: datetime,
        end: datetime,
        segment_ids: Sequence[str] | None,
        statistics: Sequence[str],
        now_instant: float,
    ) -> dict[tuple[str, str], Stats]:
        """{(segment_id, date_time): stats} for buckets whose start wall time t has start <= t < end
        and whose first hour is not after now; date_time is in the date_times_in form."""
        available = self.time.available_hours(now_instant)
        margin = timedelta(days=40)
        low = min(0, self.time.hour_of(start - margin))
        hours = range(low, max(low, self.time.hour_of(end + margin) + 1))  # not capped: buckets keep their true end
        walls = [self.time.hour_wall(h) for h in hours]
        # A run of consecutive hours sharing a bucket key is one bucket; hourly keys are the hour
        # index itself because the fall-back hour repeats its wall time.
        keys: list[Any] = list(hours) if interval == "hourly" else [self._oracle_bucket(interval, w) for w in walls]
        runs: list[tuple[int, int]] = []  # (first position, last position) in `hours`
        for pos, key in enumerate(keys):
            if runs and keys[runs[-1][0]] == key:
                runs[-1] = (runs[-1][0], pos)
            else:
                runs.append((pos, pos))
        bucket_start = [walls[first] if interval == "hourly" else keys[first] for first, _ in runs]
        truth: dict[tuple[str, str], Stats] = {}
        for segment_id in self.known(segment_ids):
            series = self.series_of(segment_id)
            created = series.segment.created_hour
            added_bytes, removed_bytes = self._oracle_hours(series, hours, available)
            total = series.segment.base
            for (first, last), wall in zip(runs, bucket_start, strict=True):
                added = sum(added_bytes[first:last + 1])
                removed = sum(removed_bytes[first:last + 1])
                total += added - removed
                if start <= wall < end and hours[first] < available:
                    stats: Stats = {"members_added": added, "members_removed": removed,
                                    "net_members_changed": added - removed, "total_members": total}
                    if self.null_before_creation and hours[last] + 1 <= created:
                        stats = _nulls(STATISTICS)
                    truth[(segment_id, self.date_time(hours[first]))] = _pick(stats, statistics)
        return truth

    def truth_values(
        self,
        start: datetime,
        end: datetime,
        segment_ids: Sequence[str] | None,
        statistics: Sequence[str],
        now_instant: float,
    ) -> dict[str, Stats]:
        """{segment_id: stats} over the hours whose start wall time t has start <= t < end (null in
        before_creation="null" mode when the last such hour ends at or before the creation instant)."""
        available = self.time.available_hours(now_instant)
        margin = timedelta(hours=3)
        low = min(0, self.time.hour_of(start - margin))
        hours = range(low, max(low, self.time.hour_of(end + margin) + 1))
        walls = [self.time.hour_wall(h) for h in hours]
        inside = [start <= wall < end for wall in walls]
        last_inside = max((h for h, flag in zip(hours, inside, strict=True) if flag), default=None)
        # Hours are in time order, so the total at the end is the running sum through the last hour
        # whose wall time is before `end`.
        through = max((pos + 1 for pos, wall in enumerate(walls) if wall < end), default=0)
        truth: dict[str, Stats] = {}
        for segment_id in self.known(segment_ids):
            series = self.series_of(segment_id)
            if self.null_before_creation and last_inside is not None and last_inside + 1 <= series.segment.created_hour:
                truth[segment_id] = _nulls(statistics)
                continue
            added_bytes, removed_bytes = self._oracle_hours(series, hours, available)
            added = sum(compress(added_bytes, inside))
            removed = sum(compress(removed_bytes, inside))
            total = series.segment.base + sum(added_bytes[:through]) - sum(removed_bytes[:through])
            stats: Stats = {"members_added": added, "members_removed": removed,
                            "net_members_changed": added - removed, "total_members": total}
            truth[segment_id] = _pick(stats, statistics)
        return truth
