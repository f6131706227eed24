"""Shared pieces of the benchmarks: the call minimum (computed independently of the connector),
running the installed command, reading its output, and the emulator as a separate process."""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Sequence

try:
    import orjson

    def loads(text: str | bytes) -> Any:
        return orjson.loads(text)

except ImportError:  # pragma: no cover - orjson comes with airbyte-cdk

    def loads(text: str | bytes) -> Any:
        return json.loads(text)


REPO = Path(__file__).resolve().parents[1]
# The emulator's data ends here (company-local wall time); every workload ends before it.
NOW = dt.datetime(2025, 3, 1, 12, 0)
FIRST_DATA_DAY = dt.datetime(2023, 6, 1)
STATISTICS = ("total_members", "members_added", "members_removed", "net_members_changed")
SEGMENTS_PER_CALL = 100
WALL = "%Y-%m-%dT%H:%M:%S"
# The emulator's company timezone (EmulatorConfig.timezone's default).
COMPANY_TIMEZONE = "America/New_York"
ONE_SECOND = dt.timedelta(seconds=1)
JSON_API = "application/vnd.api+json"
# Klaviyo's limits for report calls (per account): 2 a minute, 225 a day.
STEADY_LIMIT, STEADY_WINDOW_S, DAILY_LIMIT = 2, 60.0, 225


# -- the minimum number of report calls --------------------------------------------------------


def rfc3339(wall: dt.datetime, timezone: str = COMPANY_TIMEZONE) -> str:
    """A company-local wall time as RFC 3339 with its UTC offset in ``timezone`` (Klaviyo requires an
    offset; the emulator reads the wall time in the company zone)."""
    from zoneinfo import ZoneInfo

    return wall.replace(tzinfo=ZoneInfo(timezone)).isoformat()


def add_months(value: dt.datetime, months: int) -> dt.datetime:
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return value.replace(year=year, month=month, day=min(value.day, calendar.monthrange(year, month)[1]))


def first_bucket(interval: str, start: dt.datetime) -> dt.datetime:
    """The emulator's first bucket of a series: weekly the first Monday on/after ``start`` (its
    weeks start on Monday), otherwise the bucket start of ``start`` (every workload here starts on one)."""
    if interval == "weekly":
        day = start.replace(hour=0, minute=0, second=0)
        return day + dt.timedelta(days=(-day.weekday()) % 7)
    if interval == "monthly":
        return start.replace(day=1, hour=0, minute=0, second=0)
    if interval == "daily":
        return start.replace(hour=0, minute=0, second=0)
    return start.replace(minute=0, second=0)


# Klaviyo's documented caps on one series call's timeframe (weekly is undocumented: 52 weeks is the
# figure third parties report, and monthly's documented cap).
CAPS = {
    "hourly": dt.timedelta(days=7),
    "daily": dt.timedelta(days=60),
    "weekly": dt.timedelta(weeks=52),
    "monthly": dt.timedelta(weeks=52),
}


def next_bucket(interval: str, value: dt.datetime) -> dt.datetime:
    if interval == "hourly":
        return value + dt.timedelta(hours=1)
    if interval == "daily":
        return value + dt.timedelta(days=1)
    if interval == "weekly":
        return value + dt.timedelta(weeks=1)
    return add_months(value, 1)


def elapsed(start: dt.datetime, end: dt.datetime, timezone: str) -> dt.timedelta:
    """Real time between two company wall times in ``timezone``; a repeated (fall-back) wall time is
    read the way that makes the span longest (start's first occurrence, end's second)."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(timezone)
    first = start.replace(tzinfo=tz, fold=0).astimezone(dt.timezone.utc)
    last = end.replace(tzinfo=tz, fold=1).astimezone(dt.timezone.utc)
    return last - first


def fits(interval: str, start: dt.datetime, end: dt.datetime, timezone: str | None) -> bool:
    """Whether the window [start, end), sent as [start, end - 1 s], fits Klaviyo's cap in wall time
    and, with the company zone known, in elapsed time there (a window holding a fall-back is an hour
    longer than its wall times say)."""
    last = end - ONE_SECOND
    if last - start > CAPS[interval]:
        return False
    return timezone is None or elapsed(start, last, timezone) <= CAPS[interval]


def margin_step(interval: str, value: dt.datetime) -> dt.datetime:
    """The next window start when the zone is unknown (any zone possible): Klaviyo's caps of 7 days
    (hourly) and 60 days (daily) less one bucket, so a window holding a fall-back still fits
    (167 hours, 59 days); weekly 52 weeks and monthly 11 calendar months (12 can be 366 days)."""
    if interval == "hourly":
        return value + dt.timedelta(hours=167)
    if interval == "daily":
        return value + dt.timedelta(days=59)
    if interval == "weekly":
        return value + dt.timedelta(weeks=52)
    return add_months(value, 11)


def longest_window_end(interval: str, at: dt.datetime, end: dt.datetime, timezone: str | None) -> dt.datetime:
    """The end of the longest bucket-aligned window from ``at`` (cut at ``end``) that fits the cap:
    without the zone, the margin step; with it, the cap in wall time, one bucket less for each bucket
    of DST the window holds (one, for a fall-back)."""
    if timezone is None:
        return min(margin_step(interval, at), end)
    candidates = [at]
    while True:
        following = next_bucket(interval, candidates[-1])
        if not fits(interval, at, following, None):
            break
        candidates.append(following)
        if following >= end:
            break
    for candidate in reversed(candidates[1:]):
        if fits(interval, at, min(candidate, end), timezone):
            return min(candidate, end)
    raise ValueError(f"no {interval} window from {at} fits the cap")


def windows(interval: str, start: dt.datetime, end: dt.datetime,
            timezone: str | None = None) -> list[tuple[dt.datetime, dt.datetime]]:
    """The fewest report windows that tile [first bucket, end): greedy, each window as long as
    ``longest_window_end`` allows. Greedy is optimal here: the longest reach from a later start is
    never shorter (it is at least the cap less a bucket from one bucket on)."""
    planned, at = [], first_bucket(interval, start)
    while at < end:
        following = longest_window_end(interval, at, end, timezone)
        planned.append((at, following))
        at = following
    return planned


def minimum_calls(segments: int, interval: str, start: dt.datetime, end: dt.datetime,
                  timezone: str | None = None) -> int:
    """ceil(N/100) batches x the fewest windows: with the company zone known (``timezone``) or not."""
    return math.ceil(segments / SEGMENTS_PER_CALL) * len(windows(interval, start, end, timezone))


# -- what the connector documents it sends (to explain, never to set, the minimum) ---------------


def connector_first_window(interval: str, start: dt.datetime) -> dt.datetime:
    """Where the connector says its windows start: weekly on the earlier of the Sunday and the Monday
    on or before ``start`` (Klaviyo's week start is undocumented), from Klaviyo's first day of data on."""
    if interval != "weekly":
        return first_bucket(interval, start)
    day = start.replace(hour=0, minute=0, second=0)
    first = min(day - dt.timedelta(days=day.weekday()), day - dt.timedelta(days=(day.weekday() + 1) % 7))
    while first < FIRST_DATA_DAY or first.weekday() not in (0, 6):
        first += dt.timedelta(days=1)
    return first


def connector_windows(interval: str, start: dt.datetime, end: dt.datetime,
                      timezone: str | None = None) -> list[tuple[dt.datetime, dt.datetime]]:
    """The report windows the connector's documented rule gives, from ``connector_first_window`` on.
    Hourly and daily with the zone known: each window as long as fits the cap both in wall time and
    in elapsed time in ``timezone`` (``longest_window_end``): the full cap (7 days, 60 days), one bucket
    less for the one window holding a fall-back, the next window going on from where it stopped; that is
    ``windows``'s greedy plan. Without the zone, the margin step (167 hours, 59 days) for every window.
    Weekly 52 weeks and monthly 11 months in both modes."""
    planned, at = [], connector_first_window(interval, start)
    while at < end:
        if interval in ("hourly", "daily") and timezone is not None:
            following = longest_window_end(interval, at, end, timezone)
        else:
            following = min(margin_step(interval, at), end)
        planned.append((at, following))
        at = following
    return planned


def connector_calls(segments: int, interval: str, start: dt.datetime, end: dt.datetime,
                    timezone: str | None = None) -> int:
    return math.ceil(segments / SEGMENTS_PER_CALL) * len(connector_windows(interval, start, end, timezone))


def bucket_count(interval: str, start: dt.datetime, end: dt.datetime) -> int:
    """How many buckets start in [first bucket, end)."""
    at, count = first_bucket(interval, start), 0
    while at < end:
        count += 1
        at = next_bucket(interval, at)
    return count


# -- segments created during the range (the backfill workload) ------------------------------------
# Computed from the emulator's segment `created` strings and the windows alone, independently of the
# connector's code: a window [start, end) asks about the segments created before its end (instants in
# the company zone), 100 at a time; a bucket is written only if it ends after its segment's creation.


def wall_instant(wall: dt.datetime, timezone: str) -> dt.datetime:
    """The instant a company wall time stands for in ``timezone`` (a repeated fall-back wall time: its
    later occurrence, the latest the window could end)."""
    from zoneinfo import ZoneInfo

    return wall.replace(tzinfo=ZoneInfo(timezone), fold=1)


def created_instants(created: Iterable[str]) -> list[dt.datetime]:
    """The ``created`` strings (RFC 3339 with an offset) as aware datetimes, sorted."""
    return sorted(dt.datetime.fromisoformat(value.replace("Z", "+00:00")) for value in created)


def existing_at(instants: Sequence[dt.datetime], end: dt.datetime, timezone: str) -> int:
    """How many of the sorted ``instants`` lie before the company wall time ``end``."""
    return bisect.bisect_left(instants, wall_instant(end, timezone))


def creation_calls(instants: Sequence[dt.datetime], planned: Sequence[tuple[dt.datetime, dt.datetime]],
                   timezone: str) -> list[tuple[int, int]]:
    """(segments created before the window's end, ceil(that / 100)) for each window of ``planned``."""
    out = []
    for _, end in planned:
        existing = existing_at(instants, end, timezone)
        out.append((existing, math.ceil(existing / SEGMENTS_PER_CALL)))
    return out


def fewest_creation_calls(instants: Sequence[dt.datetime], interval: str, start: dt.datetime, end: dt.datetime,
                          timezone: str) -> tuple[int, list[tuple[dt.datetime, dt.datetime]]]:
    """The fewest calls over any tiling of [first bucket, end) by bucket-aligned windows that fit the cap
    (``fits``), a window costing ceil(segments created before its end / 100): a shortest path over the
    bucket boundaries. Returns (calls, the windows of one such tiling)."""
    bounds = [first_bucket(interval, start)]
    while bounds[-1] < end:
        bounds.append(min(next_bucket(interval, bounds[-1]), end))
    best: list[tuple[int, int]] = [(0, -1)]  # (calls to tile up to bounds[j], previous boundary)
    for j in range(1, len(bounds)):
        cost = math.ceil(existing_at(instants, bounds[j], timezone) / SEGMENTS_PER_CALL)
        choice: tuple[int, int] | None = None
        for i in range(j - 1, -1, -1):
            if not fits(interval, bounds[i], bounds[j], None):
                break
            if fits(interval, bounds[i], bounds[j], timezone) and (choice is None or best[i][0] <= choice[0]):
                choice = (best[i][0], i)
        if choice is None:
            raise ValueError(f"no {interval} window ends at {bounds[j]}")
        best.append((choice[0] + cost, choice[1]))
    planned, j = [], len(bounds) - 1
    while j > 0:
        i = best[j][1]
        planned.append((bounds[i], bounds[j]))
        j = i
    return best[-1][0], planned[::-1]


def bucket_end_instant(date_time: str, interval: str, timezone: str) -> dt.datetime:
    """The instant the bucket starting at ``date_time`` (RFC 3339, any offset) ends: the next bucket
    start in company wall time."""
    from zoneinfo import ZoneInfo

    wall = dt.datetime.fromisoformat(date_time).astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    return wall_instant(next_bucket(interval, wall), timezone)


def buckets_after_creation(interval: str, start: dt.datetime, end: dt.datetime, created: dict[str, str],
                           timezone: str) -> dict[str, int]:
    """For each segment (id -> ``created``), how many buckets starting in [first bucket, end) end after
    its creation: the bucket holding the creation and every later one."""
    ends, at = [], first_bucket(interval, start)
    while at < end:
        at = next_bucket(interval, at)
        ends.append(wall_instant(at, timezone))
    return {segment_id: len(ends) - bisect.bisect_right(ends, created_instants([value])[0])
            for segment_id, value in created.items()}


# -- the ideal pace under fixed windows ---------------------------------------------------------


def window_index(at: float, origin: float, window_s: float) -> int:
    """Index of the fixed window [origin + k*w, origin + (k+1)*w) that holds ``at``."""
    return math.floor((at - origin) / window_s)


def ideal_call_times(origin: float, first_at: float, calls: int, steady: int = STEADY_LIMIT,
                     window_s: float = STEADY_WINDOW_S, burst_gap_s: float = 1.0) -> list[float]:
    """The earliest times fixed windows aligned at ``origin`` allow for ``calls`` successful calls, the
    first at ``first_at``: each call no earlier than ``burst_gap_s`` after the previous one (the burst
    limit, 1 call per second) and in a window holding fewer than ``steady`` calls. That puts call k
    (0-based) at the start of window ``w_first + k // steady`` or ``burst_gap_s`` after call k-1,
    whichever is later, unless a burst gap carries a call across a window boundary (then the greedy
    schedule here, which is the earliest possible, moves the later calls on)."""
    times: list[float] = []
    held: dict[int, int] = {}
    for _ in range(calls):
        at = times[-1] + burst_gap_s if times else first_at
        window = window_index(at, origin, window_s)
        while held.get(window, 0) >= steady:  # the window is full: the start of the next one
            window += 1
            at = max(at, origin + window * window_s)
        held[window] = held.get(window, 0) + 1
        times.append(at)
    return times


# -- the installed connector --------------------------------------------------------------------


def connector_command() -> list[str]:
    installed = Path(sys.executable).with_name("source-klaviyo-segments")
    if installed.exists():
        return [str(installed)]
    found = shutil.which("source-klaviyo-segments")
    if not found:
        raise SystemExit("install the connector first: pip install -e '.[tests]'")
    return [found]


def catalog_entry(name: str, sync_mode: str = "incremental") -> dict[str, Any]:
    incremental = sync_mode == "incremental"
    return {
        "stream": {
            "name": name,
            "json_schema": {},
            "supported_sync_modes": ["full_refresh", "incremental"] if incremental else ["full_refresh"],
            "source_defined_cursor": incremental,
            "default_cursor_field": ["date_time"] if incremental else [],
        },
        "sync_mode": sync_mode,
        "destination_sync_mode": "append_dedup" if incremental else "overwrite",
        "cursor_field": ["date_time"] if incremental else [],
        "primary_key": [],
    }


def series_config(base_url: str, api_key: str, interval: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {
        "api_key": api_key,
        "base_url": base_url,
        "interval": interval,
        "start_date": start.strftime(WALL),
        "end_date": end.strftime(WALL),
    }


def write_inputs(workdir: Path, config: dict[str, Any], streams: Sequence[str] | None = ("segment_series",)) -> list[str]:
    """Writes config.json (and catalog.json) into ``workdir``; returns the command's arguments."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(config))
    args = ["--config", str(workdir / "config.json")]
    if streams is not None:
        catalog = {"streams": [catalog_entry(name) for name in streams]}
        (workdir / "catalog.json").write_text(json.dumps(catalog))
        args += ["--catalog", str(workdir / "catalog.json")]
    return args


@dataclass
class ProcessRun:
    returncode: int
    wall_s: float
    max_rss_kb: int
    stdout_path: Path
    stderr_tail: str


def run_measured(command: list[str], stdout_path: Path, cwd: Path, timeout: float = 900,
                 env: dict[str, str] | None = None) -> ProcessRun:
    """Runs ``command`` with stdout to a file; wall time and peak RSS of the process itself
    (``/usr/bin/time -v`` when present, else the rusage that ``wait4`` returns for that one child)."""
    time_bin = Path("/usr/bin/time")
    use_time = time_bin.exists()
    with tempfile.TemporaryDirectory() as scratch:
        time_file, err_file = Path(scratch) / "time", Path(scratch) / "stderr"
        wrapped = [str(time_bin), "-v", "-o", str(time_file), *command] if use_time else command
        started = time.perf_counter()
        with open(stdout_path, "wb") as out, open(err_file, "wb") as err:
            proc = subprocess.Popen(wrapped, stdout=out, stderr=err, cwd=cwd, env=env)
            deadline = started + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.005)
        wall = time.perf_counter() - started
        returncode = os.waitstatus_to_exitcode(status)
        proc.returncode = returncode  # reaped here, not by Popen
        max_rss = int(usage.ru_maxrss)
        if use_time:
            match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_file.read_text() if time_file.exists() else "")
            max_rss = int(match.group(1)) if match else 0
        stderr = err_file.read_bytes()[-3000:].decode(errors="replace")
    return ProcessRun(returncode, wall, max_rss, stdout_path, stderr)


@dataclass
class Output:
    """What a read wrote: records of one stream, their distinct keys, errors, the last state."""

    records: int = 0
    distinct: int = 0
    errors: list[str] = field(default_factory=list)
    last_state: Any = None
    first_emitted_ms: float | None = None
    last_emitted_ms: float | None = None
    by_key: dict[tuple[str, str], dict[str, Any]] | None = None
    per_segment: dict[str, int] = field(default_factory=dict)  # distinct rows per segment id

    @property
    def steady_s(self) -> float:
        if self.first_emitted_ms is None or self.last_emitted_ms is None:
            return 0.0
        return (self.last_emitted_ms - self.first_emitted_ms) / 1000.0


def read_output(path: Path, stream: str = "segment_series", keep_rows: bool = False,
                keep_segments: Collection[str] | None = None) -> Output:
    """The records of ``stream`` in a read's output; with ``keep_rows`` their statistics by key (only
    those of ``keep_segments`` when given), and always the distinct rows per segment."""
    output = Output(by_key={} if keep_rows or keep_segments is not None else None)
    keys: set[tuple[str, str]] = set()
    with open(path, "rb") as lines:
        for line in lines:
            if not line.startswith(b"{"):
                continue
            if line.startswith(b'{"type":"RECORD"') or line.startswith(b'{"type": "RECORD"'):
                record = loads(line)["record"]
                if record["stream"] != stream:
                    continue
                data = record["data"]
                key = (data["segment_id"], data["date_time"])
                keys.add(key)
                output.records += 1
                emitted = record.get("emitted_at")
                if emitted is not None:
                    if output.first_emitted_ms is None:
                        output.first_emitted_ms = emitted
                    output.last_emitted_ms = emitted
                if output.by_key is not None and (keep_segments is None or key[0] in keep_segments):
                    output.by_key[key] = {s: data[s] for s in STATISTICS if s in data}
                continue
            message = loads(line)
            if message.get("type") == "STATE":
                output.last_state = message["state"].get("stream", {}).get("stream_state")
            elif message.get("type") == "TRACE" and message["trace"].get("type") == "ERROR":
                output.errors.append(message["trace"]["error"].get("message", "?"))
    output.distinct = len(keys)
    output.per_segment = dict(Counter(segment_id for segment_id, _ in keys))
    return output


# -- the emulator as a separate process -----------------------------------------------------------


class EmulatorProcess:
    """``python -m klaviyo_emulator`` in its own process, so a profile of the connector
    sees only the connector. Stopped with SIGTERM to its own pid."""

    def __init__(self, segments: int, now: dt.datetime = NOW, extra: list[str] | None = None) -> None:
        self.segments = segments
        self.args = [sys.executable, "-m", "klaviyo_emulator", "--port", "0", "--segments", str(segments),
                     "--now", now.strftime(WALL), *(extra or [])]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.api_key = "pk_emulator_key"

    def __enter__(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.__exit__()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.base_url = match.group(1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def stats(self) -> dict[str, Any]:
        import requests

        return dict(requests.get(f"{self.base_url}/__admin/stats", timeout=30).json())

    def reset(self) -> None:
        import requests

        requests.post(f"{self.base_url}/__admin/reset", timeout=30).raise_for_status()

    def report_calls(self) -> list[dict[str, Any]]:
        return list(self.stats()["report_calls"])


# -- the machine ----------------------------------------------------------------------------------


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    try:
        cores = str(len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        cores = str(os.cpu_count())
    try:
        memory_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        memory = f"{memory_kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        memory = "unknown"
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--", "source_klaviyo_segments", "setup.py")
    return {
        "CPU": cpu,
        "cores": cores,
        "memory": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "airbyte-cdk": version_of("airbyte-cdk"),
        "klaviyo-api (peer)": version_of("klaviyo-api"),
        "requests": version_of("requests"),
        "connector": f"{version_of('source-klaviyo-segments')} at {commit or '?'}"
        + (" with uncommitted changes in source_klaviyo_segments/" if dirty else ""),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for index in range(0, len(items), size):
        yield items[index:index + size]
