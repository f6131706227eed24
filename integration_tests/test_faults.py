"""Issue 4: the installed connector survives what Klaviyo and the platform do to it.

- killed with SIGKILL at seeded-random points and restarted from its last STATE, it ends with every
  bucket of the truth, never twice within a run, and across runs only inside the re-read zone;
- 503s and dropped connections are retried (a bounded number of times) without losing or
  duplicating a row;
- a malformed report stops with a clear error and writes no row of the call that carried it;
- the daily quota ends the sync promptly with the state of its finished windows, and the next
  sync finishes the job;
- every invalid config is refused in one sentence (and by the spec where it is a type error),
  and no valid one is.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from airbyte_cdk.models import Status
from airbyte_cdk.sources.utils.schema_helpers import check_config_against_spec_or_exit
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from integration_tests.conftest import NOW, SPEC, config_for, run_connector
from integration_tests.connector_process import ConnectorProcess
from integration_tests.test_end_to_end import series_by_key
from klaviyo_emulator import Emulator, EmulatorConfig, Faults, RateLimits
from source_klaviyo_segments import SourceKlaviyoSegments
from source_klaviyo_segments.components import config_problem, prepare_config
from testkit import catalog_entry
from testkit.published import INTERVALS, STATISTICS, TIMEFRAME_KEYS

FIRST_DATA_DAY = dt.datetime(2023, 6, 1)  # Klaviyo: "Data is unavailable before June 1st, 2023"

MALFORMED_MESSAGE = "Klaviyo sent a report the connector cannot read"
SERIES = [("segment_series", "incremental")]
WATCHDOG_SECONDS = 120  # a hung subprocess is killed (and the test fails) instead of hanging the suite


# -- helpers ---------------------------------------------------------------------------------------


def wall(date_time: str) -> dt.datetime:
    """A bucket's `date_time` (with the company's offset) or a cursor value as naive wall time."""
    return dt.datetime.fromisoformat(date_time[:19])


def cursor_of(state: dict[str, Any]) -> dt.datetime:
    """The newest saved bucket of a segment_series AirbyteStateMessage (the `state` object)."""
    return wall(state["stream"]["stream_state"]["date_time"])


@dataclass
class Attempt:
    """What a destination received from one `read` process (killed or not)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    returncode: int | None = None
    killed: bool = False
    timed_out: bool = False


def read_until(
    tmp_path: Path,
    config: dict[str, Any],
    state: list[dict[str, Any]] | None,
    kill_when: Callable[[int, int], bool] | None,
) -> Attempt:
    """Run `read` in a process of its own, consume its stdout line by line and SIGKILL it as soon as
    `kill_when(records_seen, states_seen)` holds (checked after every RECORD and STATE line).
    Only what was read before the kill counts as delivered."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps({"streams": [catalog_entry(*SERIES[0])]}))
    args = ["read", "--config", "config.json", "--catalog", "catalog.json"]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        args += ["--state", "state.json"]
    attempt = Attempt()
    proc = ConnectorProcess(args, cwd=tmp_path, timeout=WATCHDOG_SECONDS)
    try:
        for line in proc.stdout:  # ends at EOF: the process exited or was killed
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            kind = message.get("type")
            if kind == "RECORD":
                attempt.rows.append(message["record"]["data"])
            elif kind == "STATE":
                attempt.states.append(message["state"])
            elif kind == "TRACE" and message["trace"].get("type") == "ERROR":
                attempt.errors.append(message["trace"]["error"])
                continue
            else:
                continue
            if kill_when is not None and kill_when(len(attempt.rows), len(attempt.states)):
                proc.kill()  # SIGKILL: no chance to flush or clean up
                attempt.killed = True
                break
        proc.stdout.close()
        attempt.returncode = proc.wait(timeout=WATCHDOG_SECONDS)
    finally:
        attempt.timed_out = proc.timed_out
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return attempt


def assert_rows_match_truth(rows: list[dict[str, Any]], truth: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Every row emitted is once per run and carries exactly the truth of its bucket."""
    got = series_by_key(rows)
    wrong = [key for key, stats in got.items() if truth.get(key) != stats]
    assert not wrong, f"{len(wrong)} rows differ from the truth, e.g. {wrong[:3]}"


# -- 1. resumable after SIGKILL --------------------------------------------------------------------


def kill_point(mode: str, rng: random.Random) -> Callable[[int, int], bool]:
    """Kill right after the k-th STATE, or after the k-th RECORD once a STATE has gone out."""
    if mode == "state":
        k = rng.randint(1, 5)
        return lambda records, states: states >= k
    k = rng.randint(1, 9000)
    return lambda records, states: records >= k and states >= 1


KILL_START, KILL_END, KILL_LOOKBACK_DAYS = dt.datetime(2023, 6, 1), dt.datetime(2025, 2, 1), 2


@pytest.mark.parametrize(
    ("seed", "kill_modes"),
    [(101, ["state"]), (202, ["record"]), (303, ["record", "state"])],
    ids=["after-a-state", "mid-window", "twice"],
)
def test_killed_syncs_resume_from_their_last_state_and_lose_nothing(tmp_path: Path, seed: int, kill_modes: list[str]) -> None:
    rng = random.Random(seed)
    # 30 segments, daily, 2023-06-01..2025-02-01: 11 windows of 1800 rows, one STATE after each.
    with Emulator(EmulatorConfig(segments=30, now=NOW, faults=Faults(slow_seconds=0.05))) as emu:
        config = config_for(
            emu, start_date=f"{KILL_START:%Y-%m-%d}", end_date=f"{KILL_END:%Y-%m-%d}", lookback_window_days=KILL_LOOKBACK_DAYS
        )
        truth = emu.truth_series("daily", KILL_START, KILL_END)
        runs: list[Attempt] = []
        restarts: list[dt.datetime] = []  # the re-read zone's start at each restart
        state: list[dict[str, Any]] | None = None
        for run_index in range(len(kill_modes) + 2):  # bounded: a run without a kill must finish
            kill_when: Callable[[int, int], bool] | None = None
            if run_index < len(kill_modes):
                kill_when = kill_point(kill_modes[run_index], rng)
            run = read_until(tmp_path, config, state, kill_when)
            assert not run.timed_out, "the connector hung"
            runs.append(run)
            series_by_key(run.rows)  # within one run, no bucket twice
            if not run.killed:
                break
            assert run.states, "killed before any STATE: the kill condition is wrong"
            last = run.states[-1]  # what the platform would have committed
            restarts.append(cursor_of(last) - dt.timedelta(days=KILL_LOOKBACK_DAYS))
            state = [last]

        assert sum(r.killed for r in runs) == len(kill_modes), [len(r.rows) for r in runs]
        final = runs[-1]
        assert final.returncode == 0, final.errors
        assert final.states[-1]["stream"]["stream_state"] == {"date_time": "2025-01-31T00:00:00"}

        # Resumption: a restarted run reads nothing before its re-read zone, so a bucket seen
        # in an earlier run appears again only if it lies inside that zone.
        seen: set[tuple[str, str]] = set()
        for index, run in enumerate(runs):
            keys = set(series_by_key(run.rows))
            if index > 0:
                zone_start = restarts[index - 1]
                before_zone = sorted(k for k in keys if wall(k[1]) < zone_start)
                assert not before_zone, f"run {index} re-read {len(before_zone)} buckets before {zone_start}: {before_zone[:3]}"
                # ...and past the saved cursor it repeats at most what the window in flight when the
                # run was killed had read: a state goes out after every window (60 days), and after a
                # fall-back the window's last call reads on into the next one (60 days more at most).
                saved_cursor = zone_start + dt.timedelta(days=KILL_LOOKBACK_DAYS)
                beyond = sorted({wall(k[1]) for k in keys & seen if wall(k[1]) > saved_cursor})
                assert not beyond or beyond[-1] - saved_cursor <= 2 * dt.timedelta(days=60), (index, beyond[-1])
            seen |= keys

        # Completeness: the union of what was delivered is the truth, bucket for bucket.
        union: dict[tuple[str, str], dict[str, Any]] = {}
        for run in runs:
            union.update(series_by_key(run.rows))
        assert union.keys() == truth.keys(), f"missing {len(truth.keys() - union.keys())} buckets"
        assert union == truth


# -- 2. 503s and dropped connections ---------------------------------------------------------------


def test_503s_and_dropped_connections_are_retried_without_losing_or_repeating_a_row(tmp_path: Path) -> None:
    start, end = dt.datetime(2024, 6, 1), dt.datetime(2024, 9, 9)  # 100 days: 2 windows x 2 batches
    # Seed 7: a GET of the segment listing is dropped, and report calls get a 503 and a drop. Each
    # retry waits its real backoff (4 s after a 503), hence few calls and a seed with one of each.
    faults = Faults(fail_rate=0.15, drop_rate=0.05, seed=7)
    with Emulator(EmulatorConfig(segments=150, now=NOW, limits=RateLimits.klaviyo(time_scale=60), faults=faults)) as emu:
        config = config_for(emu, start_date=f"{start:%Y-%m-%d}", end_date=f"{end:%Y-%m-%d}")
        run = run_connector(tmp_path, "read", config, SERIES, timeout=120)
        assert run.returncode == 0, run.errors() or run.stderr[-2000:]
        assert not run.errors()

        truth = emu.truth_series("daily", start, end)
        assert series_by_key(run.records("segment_series")) == truth  # raises on a duplicate

        statuses = Counter(call.status for call in emu.calls)
        assert statuses[503] >= 1 and statuses[0] >= 1, statuses  # the faults really happened
        assert any(call.method == "GET" and call.status == 0 for call in emu.calls)  # a listing GET too

        report_calls = emu.report_calls(status=None)
        report_statuses = Counter(call.status for call in report_calls)
        assert set(report_statuses) <= {200, 503, 0}, report_statuses
        assert report_statuses[503] >= 1 and report_statuses[0] >= 1, report_statuses
        assert report_statuses[200] == 2 * 2  # one success per (window, batch): nothing read twice
        # Each (window, batch) request ends in exactly one 200: failed tries retried, none repeated.
        tries: dict[str, list[int]] = defaultdict(list)
        for call in report_calls:
            tries[json.dumps(call.body, sort_keys=True)].append(call.status)
        assert len(tries) == 2 * 2
        for body, sequence in tries.items():
            assert sequence[-1] == 200 and sequence.count(200) == 1, (sequence, body[:200])
            assert len(sequence) <= 1 + 5  # at most max_retries retries


# -- 3. malformed reports --------------------------------------------------------------------------

# Klaviyo's full daily cap: the emulator lets the connector read the account's timezone, and the
# range below holds no daylight-saving fall-back.
DAILY_WINDOW = dt.timedelta(days=60)
# 180 days without a fall-back: the fewest calls are 3 full windows x 2 batches, the only 3 that cover it.
MALFORMED_START, MALFORMED_END = dt.datetime(2024, 3, 15), dt.datetime(2024, 9, 11)
FAILING_WINDOW = MALFORMED_START + DAILY_WINDOW  # the second window; its second batch (50 segments) is damaged


class DamagesOneCall(Emulator):
    """Applies `faults.malformed` only to the report for FAILING_WINDOW's last batch of segments, so
    a sync has good windows before and after the damaged call (and a good batch beside it)."""

    def _corrupt(self, document: dict[str, Any], report: Any, malformed: str | None) -> Any:  # type: ignore[override]
        damaged = report.start == FAILING_WINDOW and self.segment_ids[-1] in (report.segment_ids or [])
        return Emulator._corrupt(document, report, malformed if damaged else None)


def damaged_run(tmp_path: Path, kind: str) -> tuple[Emulator, Any, list[str]]:
    emu = DamagesOneCall(EmulatorConfig(segments=150, now=NOW, faults=Faults(malformed=kind)))
    with emu:
        config = config_for(emu, start_date=f"{MALFORMED_START:%Y-%m-%d}", end_date=f"{MALFORMED_END:%Y-%m-%d}")
        run = run_connector(tmp_path, "read", config, SERIES, timeout=120)
        damaged_ids = next(
            c.segment_ids
            for c in emu.report_calls()
            if wall(c.timeframe["start"]) == FAILING_WINDOW and emu.segment_ids[-1] in c.segment_ids
        )
    return emu, run, damaged_ids


@pytest.mark.parametrize("kind", ["missing_statistic", "short_date_times", "not_json", "wrong_type"])
def test_a_malformed_report_fails_the_read_and_writes_none_of_its_rows(tmp_path: Path, kind: str) -> None:
    emu, run, damaged_ids = damaged_run(tmp_path, kind)
    assert run.returncode != 0
    assert any(MALFORMED_MESSAGE in (e.get("message") or "") for e in run.errors()), run.errors()

    truth = emu.truth_series("daily", MALFORMED_START, MALFORMED_END)
    rows = run.records("segment_series")
    assert_rows_match_truth(rows, truth)  # nothing misaligned: every row is its bucket's truth
    window_end = FAILING_WINDOW + DAILY_WINDOW
    from_damaged_call = [
        r for r in rows if r["segment_id"] in damaged_ids and FAILING_WINDOW <= wall(r["date_time"]) < window_end
    ]
    assert not from_damaged_call, from_damaged_call[:3]
    # The windows read before the damaged one are complete...
    first_window = {k for k in truth if wall(k[1]) < FAILING_WINDOW}
    assert first_window <= set(series_by_key(rows))
    # ...and the state never covers the damaged window: the next sync reads it again.
    assert run.states() and all(cursor_of(s) < FAILING_WINDOW for s in run.states())


def test_a_malformed_report_stops_the_stream(tmp_path: Path) -> None:
    emu, run, _ = damaged_run(tmp_path, "not_json")
    assert run.returncode != 0
    starts = [wall(c.timeframe["start"]) for c in emu.report_calls(status=None)]
    assert max(starts) == FAILING_WINDOW, f"report calls after the damaged window: {sorted(set(starts))}"


# -- 4. the daily quota ----------------------------------------------------------------------------


def test_the_daily_quota_ends_the_sync_with_its_finished_windows_and_the_next_sync_finishes(tmp_path: Path) -> None:
    start, end = MALFORMED_START, MALFORMED_END  # 3 full windows x 2 batches
    # Three report calls a "day": window 1 (two batches) and window 2's first batch get through,
    # the fourth call is told to come back in ~24 h. Burst and steady limits do not bind.
    limits = RateLimits(burst=1000, steady=1000, daily=3)
    with Emulator(EmulatorConfig(segments=150, now=NOW, limits=limits)) as emu:
        config = config_for(emu, start_date=f"{start:%Y-%m-%d}", end_date=f"{end:%Y-%m-%d}")
        # The quota's 429 asks for a wait of about a day: a connector that slept through it would
        # be killed by the timeout (which fails the test). No verdict rests on how fast the machine is.
        first = run_connector(tmp_path, "read", config, SERIES, timeout=600)
        calls = [c.status for c in emu.report_calls(status=None)]
        truth = emu.truth_series("daily", start, end)
    assert first.returncode != 0
    # After the quota's 429 the sync makes no further report call: each would only be refused.
    assert calls == [200, 200, 200, 429], calls
    quota = [e for e in first.errors() if "daily report quota" in (e.get("message") or "")]
    assert quota and all(e["failure_type"] == "transient_error" for e in quota), first.errors()
    # The last STATE covers window 1 (read for both batches) and not window 2 (one batch only).
    last = first.of("STATE")[-1]["state"]
    # Windows take Klaviyo's full 60 days.
    assert cursor_of(last) == start + DAILY_WINDOW - dt.timedelta(days=1)
    assert_rows_match_truth(first.records("segment_series"), truth)
    assert {k for k in truth if wall(k[1]) <= cursor_of(last)} <= set(series_by_key(first.records("segment_series")))

    # The next day (a fresh emulator, same data) the sync resumes from that state and finishes.
    with Emulator(EmulatorConfig(segments=150, now=NOW)) as fresh:
        second = run_connector(
            tmp_path,
            "read",
            config_for(fresh, start_date=config["start_date"], end_date=config["end_date"]),
            SERIES,
            state=[last],
            timeout=60,
        )
    assert second.returncode == 0, second.errors()
    second_rows = series_by_key(second.records("segment_series"))
    zone_start = cursor_of(last) - dt.timedelta(days=1)  # the default lookback
    assert min(wall(k[1]) for k in second_rows) == zone_start
    assert {**series_by_key(first.records("segment_series")), **second_rows} == truth


# -- 5. config fuzz --------------------------------------------------------------------------------

LOGGER = logging.getLogger("test_faults")
VALID_BASE_URLS = ["https://a.klaviyo.com", "http://127.0.0.1:8080", "https://proxy.example.com/klaviyo/", "http://localhost"]
OFFSETS = ["", "Z", "z", "+00:00", "-05:00", "+0530", "+14:00"]


@functools.lru_cache(maxsize=1)
@functools.cache
def connector_spec() -> Any:
    return SourceKlaviyoSegments().spec(LOGGER)


@st.composite
def date_text(draw: st.DrawFn, low: dt.datetime, high: dt.datetime) -> tuple[str, dt.datetime]:
    """A date or date-time in one of the forms the spec allows, and the wall time it means."""
    moment = draw(st.datetimes(min_value=low, max_value=high)).replace(microsecond=0)
    form = draw(st.sampled_from(["date", "seconds", "minutes-space", "fraction"]))
    if form == "date":
        return f"{moment:%Y-%m-%d}", moment.replace(hour=0, minute=0, second=0)
    offset = draw(st.sampled_from(OFFSETS))
    if form == "minutes-space":
        return f"{moment:%Y-%m-%d %H:%M}{offset}", moment.replace(second=0)
    if form == "fraction":
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{draw(st.integers(0, 999999)):06d}{offset}", moment
    return f"{moment:%Y-%m-%dT%H:%M:%S}{offset}", moment


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    config: dict[str, Any] = {"api_key": draw(st.from_regex(r"pk_[A-Za-z0-9]{1,40}", fullmatch=True))}
    start = FIRST_DATA_DAY
    if draw(st.booleans()):
        # Up to 2024: without end_date the range ends at the real clock's now, which must be later.
        config["start_date"], requested = draw(date_text(dt.datetime(2021, 1, 1), dt.datetime(2024, 12, 31)))
        start = max(start, requested)
    if draw(st.booleans()):
        config["end_date"], end = draw(date_text(start, start + dt.timedelta(days=1200)))
        assume(end > start)
    optional = {
        "segment_ids": st.lists(st.from_regex(r"[A-Za-z0-9]{6}", fullmatch=True), min_size=1, max_size=5, unique=True),
        "interval": st.sampled_from(INTERVALS),
        "statistics": st.lists(st.sampled_from(STATISTICS), min_size=1, unique=True),
        "values_timeframe": st.sampled_from([*TIMEFRAME_KEYS, "custom"]),
        # JSON Schema counts 3.0 as an integer too.
        "lookback_window_days": st.integers(0, 400) | st.integers(0, 400).map(float),
        "max_report_requests": st.integers(1, 1000) | st.integers(1, 1000).map(float),
        "base_url": st.sampled_from(VALID_BASE_URLS),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            config[name] = draw(strategy)
    return config


def _bad(name: str, values: list[Any], spec_level: bool) -> list[tuple[str, Any, bool]]:
    return [(name, value, spec_level) for value in values]


# (field, value, refused by the spec too). Wrong types are all spec-level.
BAD_VALUES: list[tuple[str, Any, bool]] = [
    *_bad("start_date", ["2024-13-01", "2024-02-30", "2023-06-31T00:00:00Z", "2024-01-01T25:00:00"], False),
    *_bad("end_date", ["2025-13-01", "2025-02-29", "2025-01-01T24:30:00"], False),
    *_bad("start_date", ["yesterday", "2024/01/01", "01-01-2024", "now", "2024-1-1", "20240101", "2024-W01"], True),
    *_bad("end_date", ["tomorrow", "2025.01.01", "31-12-2025", "20250101T000000"], True),
    *_bad("statistics", [["total_members", "members_total"], ["opens"], ["total_members", "total_members"], []], True),
    *_bad("interval", ["yearly", "Daily", "day", "", "minutely"], True),
    *_bad("values_timeframe", ["last_2_days", "all_time", "LAST_30_DAYS", "", "custom "], True),
    *_bad("segment_ids", [[], ["AbC123", "XyZ789", "AbC123"], [""]], True),
    *_bad("segment_ids", [["  "], ["AbC123", " "]], False),
    *_bad("base_url", ["ftp://127.0.0.1", "127.0.0.1:8000", "not a url", "http://", "file:///tmp/x", "//127.0.0.1/api"], True),
    *_bad("lookback_window_days", [-1, -7, -365], True),
    *_bad("max_report_requests", [0, -1, -225], True),
    *_bad("api_key", ["", 123, ["pk_x"]], True),
    *_bad("api_key", ["   ", "pk_abc def", "pk_abc\npk_def", "pk_abc\x00"], False),
    # wrong types
    *_bad("start_date", [20240101, ["2024-01-01"], {"date": "2024-01-01"}], True),
    *_bad("end_date", [True, 2025.5], True),
    *_bad("segment_ids", ["AbC123", [1, 2], {"id": "AbC123"}], True),
    *_bad("interval", [1, ["daily"]], True),
    *_bad("statistics", ["total_members", {"total_members": True}], True),
    *_bad("values_timeframe", [30, {"key": "today"}], True),
    *_bad("lookback_window_days", ["1", 1.5, True], True),
    *_bad("max_report_requests", ["10", 2.5, False], True),
    *_bad("base_url", [42, ["https://a.klaviyo.com"]], True),
]


@st.composite
def invalid_configs(draw: st.DrawFn) -> tuple[dict[str, Any], str, bool]:
    """A valid config with one thing broken: (config, the field to fix, refused by the spec too)."""
    config = draw(valid_configs())
    kind = draw(st.sampled_from(["simple", "end_not_after_start", "end_before_klaviyo"]))
    if kind == "end_not_after_start":
        start = draw(st.datetimes(min_value=FIRST_DATA_DAY, max_value=dt.datetime(2025, 6, 1))).replace(microsecond=0)
        end = start - dt.timedelta(hours=draw(st.integers(0, 5000)))
        config.update(start_date=f"{start:%Y-%m-%dT%H:%M:%S}", end_date=f"{end:%Y-%m-%dT%H:%M:%S}")
        return config, "end_date", False
    if kind == "end_before_klaviyo":
        config.pop("start_date", None)
        config["end_date"] = f"{draw(st.dates(dt.date(2019, 1, 1), FIRST_DATA_DAY.date())):%Y-%m-%d}"
        return config, "end_date", False
    name, value, spec_level = draw(st.sampled_from(BAD_VALUES))
    config[name] = value
    return config, name, spec_level


# Each example builds the source (the fixed BAD_VALUES cases above cover every listed bad value).
FUZZ = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_refused_in_one_sentence(config: dict[str, Any], broken: str, spec_level: bool) -> None:
    # Refused before any request is made (or `check` would reach for base_url).
    assert config_problem(prepare_config(config, SPEC), SPEC) is not None, f"not refused: {config}"
    status = SourceKlaviyoSegments(config=config).check(LOGGER, config)
    assert status.status == Status.FAILED
    message = status.message or ""
    assert message and "\n" not in message and "Traceback" not in message and len(message) <= 300, message
    assert f"`{broken}`" in message, message  # it names what to fix
    if spec_level:
        with pytest.raises(AirbyteTracedException) as refused:
            check_config_against_spec_or_exit(config, connector_spec())
        assert refused.value.message


@pytest.mark.parametrize(("broken", "value", "spec_level"), BAD_VALUES)
def test_each_bad_value_is_refused_in_one_sentence(broken: str, value: Any, spec_level: bool) -> None:
    _assert_refused_in_one_sentence({"api_key": "pk_test", broken: value}, broken, spec_level)


@FUZZ
@given(case=invalid_configs())
def test_every_invalid_config_is_refused_in_one_sentence(case: tuple[dict[str, Any], str, bool]) -> None:
    """The bad values above, and impossible ranges, inside otherwise valid configs of every shape."""
    _assert_refused_in_one_sentence(*case)


@FUZZ
@given(config=valid_configs())
def test_no_valid_config_is_refused(config: dict[str, Any]) -> None:
    check_config_against_spec_or_exit(config, connector_spec())
    assert config_problem(config, SPEC) is None
    prepared = prepare_config(config, SPEC)
    assert config_problem(prepared, SPEC) is None
    assert "_derived" in prepared  # the settings the manifest reads were computed
