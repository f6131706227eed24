"""The bench's sections. Each runs the installed connector against the Klaviyo emulator and returns
its figures as tables and gates; ``bench.render`` writes them, ``bench/notes.md`` explains them."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from bench.harness import REPO, EmulatorProcess, read, read_config, read_output, run_measured
from bench.minimum import expected_rows, fewest_calls, ideal_call_times
from klaviyo_emulator import Emulator, EmulatorConfig, RateLimits
from testkit import connector_command

ZONE = "America/New_York"  # the emulator's company zone (EmulatorConfig.timezone's default)
NOW = dt.datetime(2025, 3, 1, 12)
PACE_RATIO_LIMIT = 1.05
MEMORY_RATIO_LIMIT = 1.25


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Gate:
    what: str
    measured: str
    limit: str
    passed: bool


@dataclass
class Section:
    title: str
    tables: list[Table] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # for the sections after it


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}" if reference else "n/a"


# -- report calls against the minimum ------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    segments: int
    interval: str
    start: dt.datetime
    end: dt.datetime
    zone_known: bool = True
    created: tuple[dt.datetime, ...] | None = None  # company-local wall times, one per segment (id order)
    now: dt.datetime = NOW

    @property
    def created_instants(self) -> list[dt.datetime] | None:
        if self.created is None:
            return None
        return sorted(wall.replace(tzinfo=ZoneInfo(ZONE)) for wall in self.created)

    def minimum(self) -> int:
        return fewest_calls(self.interval, self.start, self.end, ZONE if self.zone_known else None,
                            self.segments, self.created_instants).calls

    def rows(self) -> int:
        return expected_rows(self.interval, self.start, self.end, ZONE, self.segments, self.created_instants)


def spread(count: int, first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    """``count`` wall times evenly from ``first`` to ``last`` (whole seconds)."""
    step = (last - first) / max(1, count - 1)
    return [(first + step * index).replace(microsecond=0) for index in range(count)]


YEAR = (dt.datetime(2024, 1, 1), dt.datetime(2025, 1, 1))
HISTORY = (dt.datetime(2023, 6, 1), dt.datetime(2025, 3, 1))
FALL_BACK = (dt.datetime(2024, 9, 1), dt.datetime(2025, 2, 27))  # 179 days over the 2024-11-03 fall-back
MAY = (dt.datetime(2024, 5, 1), dt.datetime(2024, 5, 15))  # 14 days, no DST change
BACKFILL = (dt.datetime(2023, 6, 1), dt.datetime(2025, 6, 1))
OLD = (dt.datetime(2021, 1, 1), dt.datetime(2023, 5, 1))  # before Klaviyo's data starts
CALL_WORKLOADS = [
    Workload("1 year", 50, "daily", *YEAR),
    Workload("1 year", 50, "daily", *YEAR, zone_known=False),
    Workload("14 days in May", 100, "hourly", *MAY),
    Workload("14 days in May", 100, "hourly", *MAY, zone_known=False),
    Workload("179 days over a fall-back", 150, "daily", *FALL_BACK),
    Workload("179 days over a fall-back", 150, "daily", *FALL_BACK, zone_known=False),
    Workload("full history", 150, "weekly", *HISTORY),
    Workload("full history", 150, "monthly", *HISTORY),
    Workload("backfill, created uniformly over 2 years", 500, "daily", *BACKFILL, now=dt.datetime(2025, 6, 2),
             created=tuple(spread(500, BACKFILL[0], dt.datetime(2025, 5, 31, 23)))),
    Workload("backfill, 280 old + 40 created in the last 120 days", 320, "daily", *BACKFILL,
             now=dt.datetime(2025, 6, 2), created=tuple(spread(280, *OLD) + spread(
                 40, dt.datetime(2025, 2, 1), dt.datetime(2025, 5, 31)))),
    Workload("backfill, 100 old + 250 in a June 2024 burst + 50 uniform", 400, "daily", *BACKFILL,
             now=dt.datetime(2025, 6, 2), created=tuple(spread(100, *OLD) + spread(
                 250, dt.datetime(2024, 6, 1), dt.datetime(2024, 6, 21)) + spread(50, BACKFILL[0], dt.datetime(2025, 5, 31)))),
]


def calls(workdir: Path) -> Section:
    table = Table(["workload", "segments", "interval", "range", "zone", "report calls", "minimum", "calls / minimum",
                   "rows / expected", "wall s", "peak RSS MB"])
    section = Section("Report calls against the minimum", [table])
    for number, workload in enumerate(CALL_WORKLOADS):
        print(f"[calls] {workload.segments} segments {workload.interval}, {workload.name}, "
              f"zone {'known' if workload.zone_known else 'unknown'} ...", flush=True)
        config = EmulatorConfig(segments=workload.segments, now=workload.now, accounts_scope=workload.zone_known,
                                created_times=workload.created)
        with Emulator(config) as emu:
            run, out = read(workdir / f"calls-{number}", read_config(
                emu.base_url, config.api_key, workload.interval, workload.start, workload.end))
            sent = emu.report_calls(status=None)
        output, minimum, rows = read_output(out), workload.minimum(), workload.rows()
        written = output.records["segment_series"]
        label = f"{workload.segments} {workload.interval}, {workload.name}, zone {'known' if workload.zone_known else 'unknown'}"
        table.rows.append([workload.name, f"{workload.segments:,}", workload.interval,
                           f"{workload.start:%Y-%m-%d}..{workload.end:%Y-%m-%d}",
                           "known" if workload.zone_known else "unknown (403)", str(len(sent)), str(minimum),
                           f"**{ratio(len(sent), minimum)}**", f"{written:,} / {rows:,}",
                           f"{run.wall_s:.1f}", f"{run.max_rss_mb:.0f}"])
        section.gates.append(Gate(f"report calls, {label}", str(len(sent)), f"= {minimum}", len(sent) == minimum))
        section.gates.append(Gate(f"rows written once each, {label}",
                                  f"{written:,} ({output.distinct_series:,} distinct), exit {run.returncode}",
                                  f"{rows:,}", run.returncode == 0 and written == output.distinct_series == rows))
    return section


# -- one segment listing per run ---------------------------------------------------------------------

LISTED_SEGMENTS = 2000


def listing(workdir: Path) -> Section:
    """A read of all three streams and a ``check``, for 2,000 segments, at Klaviyo's real listing limits
    (75/s, 750/min; the report limits lifted so that the read takes seconds)."""
    pages = -(-LISTED_SEGMENTS // 10)
    table = Table(["command", "GET /api/segments", "of which 429", "one listing", "report calls", "records", "wall s"])
    section = Section("One segment listing per run", [table])
    limits = RateLimits(burst=10**6, steady=10**6, daily=10**6)  # list_burst 75/s and list_steady 750/min stay
    config = EmulatorConfig(segments=LISTED_SEGMENTS, now=NOW, limits=limits)
    print(f"[listing] read of all three streams and check, {LISTED_SEGMENTS:,} segments ...", flush=True)
    with Emulator(config) as emu:
        settings = read_config(emu.base_url, config.api_key, "daily", dt.datetime(2025, 1, 30), dt.datetime(2025, 3, 1))
        for command, streams in (("read", ("segments", "segment_values", "segment_series")), ("check", None)):
            emu.reset_calls()
            emu.set_limits(limits)
            run, out = read(workdir / f"listing-{command}", settings, streams, command=command)
            listed = [call for call in emu.calls if call.endpoint == "segments"]
            throttled = sum(1 for call in listed if call.status == 429)
            output = read_output(out)
            table.rows.append([f"`{command}`" + (" (3 streams)" if streams else ""), str(len(listed)), str(throttled),
                               f"{pages} pages", str(len(emu.report_calls(status=None))),
                               f"{sum(output.records.values()):,}", f"{run.wall_s:.1f}"])
            exact = command == "read"  # a read must list every segment, once; `check` at most once
            section.gates.append(Gate(f"`{command}`: GET /api/segments pages", f"{len(listed)}, exit {run.returncode}",
                                      f"{'=' if exact else '<='} {pages} (one listing)", run.returncode == 0 and (
                                          len(listed) == pages if exact else len(listed) <= pages)))
            section.gates.append(Gate(f"`{command}`: GET /api/segments answered 429", str(throttled), "0", throttled == 0))
    return section


# -- CPU against the raw ceiling ---------------------------------------------------------------------

CPU = Workload("1 year", 300, "daily", *YEAR)


def cpu(workdir: Path) -> Section:
    """The connector and ``bench.ceiling`` read the same workload from an emulator in its own process."""
    workload, rows = CPU, CPU.rows()
    table = Table(["program", "rows", "wall s", "CPU s", "rows / s (wall)", "µs CPU / row", "peak RSS MB"])
    section = Section("CPU against the raw ceiling", [table])
    with EmulatorProcess("--segments", str(workload.segments), "--now", NOW.isoformat()) as emu:
        runs: dict[str, Any] = {}
        for label in ("ceiling (warm-up)", "ceiling", "connector"):
            print(f"[cpu] {label}, {workload.segments} segments daily over a year ...", flush=True)
            out = workdir / f"cpu-{label.split()[0]}.jsonl"
            if label == "connector":
                run, out = read(workdir / "cpu-connector", read_config(emu.base_url, "pk_emulator_key", workload.interval,
                                                                        workload.start, workload.end))
            else:
                run = run_measured([sys.executable, "-m", "bench.ceiling", "--base-url", emu.base_url, "--interval",
                                    workload.interval, "--start", workload.start.isoformat(), "--end",
                                    workload.end.isoformat(), "--out", str(out)], workdir / "ceiling.stdout", cwd=REPO)
            written = read_output(out).records["segment_series"]
            section.gates.append(Gate(f"{label}: rows", f"{written:,}, exit {run.returncode}", f"{rows:,}",
                                      run.returncode == 0 and written == rows))
            runs[label] = run
    for label in ("connector", "ceiling"):
        run = runs[label]
        table.rows.append([label, f"{rows:,}", f"{run.wall_s:.1f}", f"{run.cpu_s:.1f}", f"{rows / run.wall_s:,.0f}",
                           f"{run.cpu_s / rows * 1e6:.0f}", f"{run.max_rss_mb:.0f}"])
    table.rows.append(["**connector / ceiling**", "", f"**{ratio(runs['connector'].wall_s, runs['ceiling'].wall_s)}**",
                       f"**{ratio(runs['connector'].cpu_s, runs['ceiling'].cpu_s)}**", "", "", ""])
    return section


# -- memory over windows -----------------------------------------------------------------------------

MEMORY_DAYS = (59, 236, 590)  # 1, 4 and 10 daily windows


def memory(workdir: Path) -> Section:
    table = Table(["days", "report calls", "rows", "wall s", "peak RSS MB"])
    section = Section("Memory over windows", [table])
    peaks = []
    with Emulator(EmulatorConfig(segments=100, now=NOW)) as emu:
        for days in MEMORY_DAYS:
            print(f"[memory] 100 segments daily over {days} days ...", flush=True)
            emu.reset_calls()
            start = dt.datetime(2023, 6, 1)
            run, out = read(workdir / f"memory-{days}", read_config(emu.base_url, emu.config.api_key, "daily", start,
                                                                    start + dt.timedelta(days=days)))
            peaks.append(run.max_rss_mb)
            table.rows.append([str(days), str(len(emu.report_calls(status=None))),
                               f"{read_output(out).records['segment_series']:,}", f"{run.wall_s:.1f}",
                               f"{run.max_rss_mb:.1f}"])
    section.gates.append(Gate("peak RSS, 10 windows / 1 window", f"{peaks[-1] / peaks[0]:.3f}",
                              f"< {MEMORY_RATIO_LIMIT}", peaks[-1] / peaks[0] < MEMORY_RATIO_LIMIT))
    return section


# -- startup -------------------------------------------------------------------------------------------

STARTUP_RUNS = 3


def startup(workdir: Path) -> Section:
    table = Table(["command", "median s", "min s", "max s"])
    section = Section("Startup", [table])
    print("[startup] spec, discover and the CDK's import ...", flush=True)
    with Emulator(EmulatorConfig(segments=25, now=NOW)) as emu:
        (workdir / "config.json").write_text(json.dumps(read_config(emu.base_url, emu.config.api_key, "daily", *YEAR)))
        commands: dict[str, list[str]] = {
            "`spec`": [*connector_command(), "spec"],
            "`discover`": [*connector_command(), "discover", "--config", str(workdir / "config.json")],
            "for scale: importing the CDK's declarative source": [
                sys.executable, "-c", "import airbyte_cdk.sources.declarative.yaml_declarative_source"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(STARTUP_RUNS):
            for name, command in commands.items():
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, cwd=workdir, timeout=120)
                times[name].append(time.perf_counter() - started)
                if done.returncode:
                    section.gates.append(Gate(f"{name} exits 0", str(done.returncode), "0", False))
    for name, values in times.items():
        table.rows.append([name, f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}"])
    return section


# -- the real-scale pace, and the SDK peer ---------------------------------------------------------------

PACE = Workload("90 days", 250, "daily", dt.datetime(2024, 1, 1), dt.datetime(2024, 3, 30))
PEER_SEGMENTS, PEER_TIME_SCALE = 10, 60.0


def limited(limits: RateLimits, workload: Workload) -> tuple[Emulator, float]:
    """A started emulator enforcing ``limits``, and its windows' origin on ``time.monotonic`` (the
    emulator's default clock), bracketed by two readings around ``set_limits``."""
    emu = Emulator(EmulatorConfig(segments=workload.segments, now=NOW)).start()
    before = time.monotonic()
    emu.set_limits(limits)
    return emu, (before + time.monotonic()) / 2


def pace(workdir: Path) -> Section:
    workload = PACE
    limits = RateLimits.klaviyo(time_scale=1.0)
    print(f"[pace] {workload.segments} segments daily over 90 days at Klaviyo's real limits (about 2 minutes) ...",
          flush=True)
    emu, origin = limited(limits, workload)
    try:
        run, out = read(workdir / "pace", read_config(emu.base_url, emu.config.api_key, workload.interval,
                                                      workload.start, workload.end), timeout=420)
        sent = emu.report_calls(status=None)
    finally:
        emu.stop()
    answered = [call for call in sent if call.status == 200]
    throttled = sum(1 for call in sent if call.status == 429)
    first = sent[0].at if sent else origin
    ideal = ideal_call_times(origin, first, workload.minimum(), limits.steady, limits.steady_window,
                             limits.burst_window / limits.burst)
    span, ideal_span = (sent[-1].at - first if sent else 0.0), ideal[-1] - first
    calls_table = Table(["call", "status", "s after the limiter's origin", "ideal s"])
    for number, call in enumerate(sent):
        calls_table.rows.append([str(number + 1), str(call.status), f"{call.at - origin:.2f}",
                                 f"{ideal[number] - origin:.2f}" if number < len(ideal) else ""])
    summary = Table(["", "s"], [["ideal, first to last report call", f"{ideal_span:.1f}"],
                                ["**measured, first to last report call**", f"**{span:.1f}**"],
                                ["whole read (process start to exit)", f"{run.wall_s:.1f}"]])
    section = Section("At Klaviyo's real pace", [summary, calls_table], figures={"calls": len(answered), "429": throttled})
    written = read_output(out).records["segment_series"]
    section.gates += [
        Gate("real pace: first to last call / ideal", f"{span / ideal_span:.3f}" if ideal_span else "n/a",
             f"<= {PACE_RATIO_LIMIT}", bool(ideal_span) and span / ideal_span <= PACE_RATIO_LIMIT),
        Gate("real pace: report calls answered 429", str(throttled), "0", throttled == 0),
        Gate("real pace: report calls answered 200", str(len(answered)), f"= {workload.minimum()}",
             len(answered) == workload.minimum()),
        Gate("real pace: rows", f"{written:,}, exit {run.returncode}", f"{workload.rows():,}",
             run.returncode == 0 and written == workload.rows()),
    ]
    return section


def peer(workdir: Path, connector: dict[str, float]) -> Section:
    """Klaviyo's official SDK, one call per segment per window, on ``PEER_SEGMENTS`` of the pace
    workload's segments at the limits scaled x60; its calls per segment times the workload's segments."""
    from bench.peer import run_peer

    workload = PACE
    print(f"[peer] klaviyo-api SDK on {PEER_SEGMENTS} segments, limits scaled x{PEER_TIME_SCALE:.0f} ...", flush=True)
    emu, _ = limited(RateLimits.klaviyo(time_scale=PEER_TIME_SCALE), workload)
    try:
        result = run_peer(emu.base_url, emu.config.api_key, workload.start, workload.end, PEER_SEGMENTS,
                          workload.interval)
        statuses = Counter(call.status for call in emu.report_calls(status=None))
    finally:
        emu.stop()
    per_segment = statuses[200] / PEER_SEGMENTS
    table = Table(["", "segments", "report calls answered 200", "429s", "days of Klaviyo's 225-call quota"])
    if connector:
        table.rows.append(["this connector (measured in the real-pace section)", f"{workload.segments}",
                           f"{connector['calls']:.0f}", f"{connector['429']:.0f}", f"{connector['calls'] / 225:.2f}"])
    table.rows += [
        ["SDK, measured", str(PEER_SEGMENTS), str(statuses[200]), str(statuses[429]), ""],
        ["**SDK, its calls per segment x all segments**", str(workload.segments),
         f"**{per_segment * workload.segments:,.0f}**", "", f"{per_segment * workload.segments / 225:.2f}"],
    ]
    expected = PEER_SEGMENTS * workload.rows() // workload.segments
    return Section("The official SDK as a peer", [table], [Gate(
        "SDK peer: rows read", f"{result['rows']:,}", f"{expected:,}", result["rows"] == expected)])


# -- Nothing answering at base_url ------------------------------------------------------------------

DEAD_PORT_LIMIT_S = 90  # "within about a minute": the CDK's own retries wait 1 + 2 + 4 + 8 + 16 s


def dead_port(workdir: Path) -> Section:
    """A ``read`` against a port that accepts each connection and closes it without a word: how long
    until it stops, how many connections it made, and what it said."""
    import socket
    import threading

    table = Table(["command", "connections", "exit", "error traces", "sentence", "wall s"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    connections, stop = [0], threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connections[0] += 1
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    print("[dead port] read against a port that answers nothing ...", flush=True)
    try:
        settings = {"api_key": "pk_dead_port", "base_url": f"http://127.0.0.1:{listener.getsockname()[1]}",
                    "start_date": "2025-01-01", "end_date": "2025-02-01"}
        run, out = read(workdir / "dead-port", settings, ("segment_series",), timeout=600)
    finally:
        stop.set()
        thread.join()
        listener.close()
    errors = read_output(out).errors
    sentence = errors[0] if errors else ""
    table.rows.append(["`read`", str(connections[0]), str(run.returncode), str(len(errors)), sentence, f"{run.wall_s:.1f}"])
    # The stream's trace says it; the CDK's summary of the failed streams that follows quotes it.
    one_sentence = bool(errors) and all("Nothing answered at" in error for error in errors) and len(errors) <= 2
    return Section("Nothing answering at base_url", [table], [
        Gate("dead port: stops with one sentence", f"{len(errors)} trace(s), exit {run.returncode}",
             "the sentence, and the CDK's summary quoting it; exit != 0", one_sentence and run.returncode != 0),
        Gate("dead port: wall s", f"{run.wall_s:.1f}", f"<= {DEAD_PORT_LIMIT_S}", run.wall_s <= DEAD_PORT_LIMIT_S),
    ])


def section_functions() -> dict[str, Callable[[Path, dict[str, Section]], Section]]:
    """Each section by its name, called with a scratch folder and the sections run before it."""
    return {
        "calls": lambda workdir, done: calls(workdir),
        "listing": lambda workdir, done: listing(workdir),
        "dead_port": lambda workdir, done: dead_port(workdir),
        "cpu": lambda workdir, done: cpu(workdir),
        "memory": lambda workdir, done: memory(workdir),
        "startup": lambda workdir, done: startup(workdir),
        "pace": lambda workdir, done: pace(workdir),
        "peer": lambda workdir, done: peer(workdir, done["pace"].figures if "pace" in done else {}),
    }
