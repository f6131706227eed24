"""Shared pieces of the benchmarks: the call minimum (computed independently of the connector),
running the installed command, reading its output, and the emulator as a separate process."""

from __future__ import annotations

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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

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
ONE_SECOND = dt.timedelta(seconds=1)
JSON_API = "application/vnd.api+json"
# Klaviyo's limits for report calls (per account): 2 a minute, 225 a day.
STEADY_LIMIT, STEADY_WINDOW_S, DAILY_LIMIT = 2, 60.0, 225


# -- the minimum number of report calls --------------------------------------------------------


def add_months(value: dt.datetime, months: int) -> dt.datetime:
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return value.replace(year=year, month=month, day=min(value.day, calendar.monthrange(year, month)[1]))


def first_bucket(interval: str, start: dt.datetime) -> dt.datetime:
    """Where a series starts: weekly at the first Monday on/after ``start``, otherwise the bucket
    start of ``start`` (every workload here starts on one)."""
    if interval == "weekly":
        day = start.replace(hour=0, minute=0, second=0)
        return day + dt.timedelta(days=(-day.weekday()) % 7)
    if interval == "monthly":
        return start.replace(day=1, hour=0, minute=0, second=0)
    if interval == "daily":
        return start.replace(hour=0, minute=0, second=0)
    return start.replace(minute=0, second=0)


def step(interval: str, value: dt.datetime) -> dt.datetime:
    """The start of the next window: Klaviyo's caps of 7 days (hourly) and 60 days (daily) less a
    bucket-aligned margin for a DST fall-back (167 hours, 59 days), 52 weeks, 11 calendar months."""
    if interval == "hourly":
        return value + dt.timedelta(hours=167)
    if interval == "daily":
        return value + dt.timedelta(days=59)
    if interval == "weekly":
        return value + dt.timedelta(weeks=52)
    return add_months(value, 11)


def windows(interval: str, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """[window start, next window start) of every report window over [start, end)."""
    planned, at = [], first_bucket(interval, start)
    while at < end:
        following = min(step(interval, at), end)
        planned.append((at, following))
        at = following
    return planned


def minimum_calls(segments: int, interval: str, start: dt.datetime, end: dt.datetime) -> int:
    return math.ceil(segments / SEGMENTS_PER_CALL) * len(windows(interval, start, end))


def bucket_count(interval: str, start: dt.datetime, end: dt.datetime) -> int:
    """How many buckets start in [first bucket, end)."""
    at, count = first_bucket(interval, start), 0
    while at < end:
        count += 1
        if interval == "hourly":
            at += dt.timedelta(hours=1)
        elif interval == "daily":
            at += dt.timedelta(days=1)
        elif interval == "weekly":
            at += dt.timedelta(weeks=1)
        else:
            at = add_months(at, 1)
    return count


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

    @property
    def steady_s(self) -> float:
        if self.first_emitted_ms is None or self.last_emitted_ms is None:
            return 0.0
        return (self.last_emitted_ms - self.first_emitted_ms) / 1000.0


def read_output(path: Path, stream: str = "segment_series", keep_rows: bool = False) -> Output:
    output = Output(by_key={} if keep_rows else None)
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
                if output.by_key is not None:
                    output.by_key[key] = {s: data[s] for s in STATISTICS if s in data}
                continue
            message = loads(line)
            if message.get("type") == "STATE":
                output.last_state = message["state"].get("stream", {}).get("stream_state")
            elif message.get("type") == "TRACE" and message["trace"].get("type") == "ERROR":
                output.errors.append(message["trace"]["error"].get("message", "?"))
    output.distinct = len(keys)
    return output


# -- the emulator as a separate process -----------------------------------------------------------


class EmulatorProcess:
    """``python -m integration_tests.emulator`` in its own process, so a profile of the connector
    sees only the connector. Stopped with SIGTERM to its own pid."""

    def __init__(self, segments: int, now: dt.datetime = NOW, extra: list[str] | None = None) -> None:
        self.segments = segments
        self.args = [sys.executable, "-m", "integration_tests.emulator", "--port", "0", "--segments", str(segments),
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
