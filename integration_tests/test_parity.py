"""One connector in every runtime: each case runs through the package's command
(`source-klaviyo-segments`) and through the CDK's `source-declarative-manifest` with `manifest.yaml`
and `components.py` injected as Airbyte injects them (`integration_tests/manifest_only.py`), each
against its own twin of the same Klaviyo account, and both must give:

- the same exit status (0 or not);
- the same rows, stream by stream;
- the same report calls (what the twins recorded: endpoint, status and body);
- the same sentence: the first error trace's message (or none), and the same warnings;
- the API key in no line of either.

The table of cases is in `docs/design.md` ("The parity suite"). The manifest-only runtime must never
reach for the package (`hidden_imports`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from integration_tests.conftest import NOW, DeadPort, Run, config_for, run_connector
from integration_tests.manifest_only import ManifestOnlyRun, run_manifest_only
from klaviyo_emulator import Emulator, EmulatorConfig, Faults

# 105 segments: two report batches (100 + 5), created from 2024-09-01 on.
SEGMENTS = 105
CREATED = (dt.datetime(2024, 9, 1), dt.datetime(2024, 12, 1))
# Daily over two series windows: segment_series needs 4 report calls (2 windows x 2 batches), and
# segment_values (last_30_days) 2.
RANGE = {"start_date": "2024-10-01", "end_date": "2024-12-15", "lookback_window_days": 2}
SAVED = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "segment_series"},
                                       "stream_state": {"date_time": "2024-11-01T00:00:00"}}}]  # fmt: skip

SEGMENTS_STREAM, VALUES = ("segments", "full_refresh"), ("segment_values", "full_refresh")
SERIES, SERIES_FULL = ("segment_series", "incremental"), ("segment_series", "full_refresh")
ALL = [SEGMENTS_STREAM, VALUES, SERIES]


@dataclass(frozen=True)
class Case:
    """One command, as each runtime runs it; ``ok``: whether it must end with exit 0."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    streams: list[tuple[str, str]] | None = field(default_factory=lambda: list(ALL))
    state: list[dict[str, Any]] | None = None
    faults: Faults | None = None
    command: str = "read"
    ok: bool = True
    sentence: str | None = None  # the first error trace's message starts with it


KEY_ECHOED = "Klaviyo refused the request (400): Refused by the emulator's refuse_endpoint fault"
CASES = [
    Case("every stream, series incremental", RANGE),
    Case("every stream, series full refresh", RANGE, [SEGMENTS_STREAM, VALUES, SERIES_FULL]),
    Case("segments alone", RANGE, [SEGMENTS_STREAM]),
    Case("segment_values alone", RANGE, [VALUES]),
    Case("segment_series alone, from a saved state", RANGE, [SERIES], state=SAVED),
    Case("segment_series alone, a cap that cuts it, no state", {**RANGE, "max_report_requests": 2}, [SERIES], ok=False,
         sentence="`max_report_requests` (2) stopped segment_series after 2 of its 4 report calls"),
    Case("segment_series full refresh, a cap that cuts it", {**RANGE, "max_report_requests": 2}, [SERIES_FULL], ok=False,
         sentence="`max_report_requests` (2) stopped segment_series after 2 of its 4 report calls"),
    Case("segment_series alone, a cap that cuts it, from a saved state", {**RANGE, "max_report_requests": 2}, [SERIES],
         state=SAVED),
    Case("segment_series alone, a cap below its first window, from a saved state", {**RANGE, "max_report_requests": 1},
         [SERIES], state=SAVED, ok=False, sentence="`max_report_requests` (1) leaves segment_series 1 report call, "
         "fewer than the 2 its first window needs: raise it to at least 2."),
    Case("values and series, a cap that leaves series nothing", {**RANGE, "max_report_requests": 3}, [VALUES, SERIES],
         ok=False, sentence="`max_report_requests` (3) leaves segment_series 1 report call after 2 for segment_values, "
         "fewer than the 2 its first window needs: raise it to at least 4."),
    Case("values and series, a cap too small for values", {**RANGE, "max_report_requests": 1}, [VALUES, SERIES], ok=False,
         sentence="`max_report_requests` (1) leaves segment_values 1 report call, fewer than the 2 it needs"),
    *[
        Case(f"an answer of {endpoint} that echoes the key", RANGE, ok=endpoint == "accounts",
             faults=Faults(echo_request_in_errors=True, refuse_endpoint=endpoint),
             sentence=None if endpoint == "accounts" else KEY_ECHOED)
        for endpoint in ("accounts", "segments", "values", "series")
    ],
    Case("check, a key echoed by the segment listing", RANGE, None, command="check", ok=False,
         faults=Faults(echo_request_in_errors=True, refuse_endpoint="segments")),
    Case("one unknown segment id among good ones", {**RANGE, "segment_ids": ["NOPE01"]}, [VALUES, SERIES]),
    Case("only unknown segment ids", {**RANGE, "segment_ids": ["NOPE01", "NOPE02"]}, ok=False,
         sentence="None of the `segment_ids` is in the Klaviyo account (NOPE01, NOPE02)"),
    Case("check, unknown segment ids", {**RANGE, "segment_ids": ["NOPE01"]}, None, command="check", ok=False,
         sentence="'Stream segment_series is not available: These segment ids are not in the Klaviyo account: NOPE01."),
    Case("a config with three problems, two of them the spec's", {**RANGE, "start_date": "2025-02-30", "interval": "yearly",
         "lookback_window_days": -1}, None, command="check", ok=False,
         sentence="\"Encountered an error while discovering streams. Error: `start_date` is '2025-02-30', which is not a "
         "real date or time"),
    Case("a config with a problem the spec cannot see", {**RANGE, "start_date": "2024-12-01", "end_date": "2024-11-01"},
         ok=False, sentence="`end_date` (2024-11-01T00:00:00) must be later than `start_date` (2024-12-01T00:00:00)."),
]  # fmt: skip


@dataclass
class Twins:
    """Two emulators serving the same account: each runtime reads from its own, so both read at
    once and each one's requests are recorded apart. The configs differ in `base_url` only."""

    package: Emulator
    manifest_only: Emulator

    def each(self) -> tuple[Emulator, Emulator]:
        return self.package, self.manifest_only


@pytest.fixture(scope="module")
def twins() -> Iterator[Twins]:
    def emulator() -> Emulator:
        return Emulator(EmulatorConfig(segments=SEGMENTS, now=NOW, created_spread=CREATED))

    with emulator() as package, emulator() as manifest_only:
        assert package.segment_ids == manifest_only.segment_ids
        yield Twins(package, manifest_only)


def with_good_ids(settings: dict[str, Any], twins: Twins) -> dict[str, Any]:
    """``segment_ids`` of only unknown ids stay as they are; one unknown id joins two good ones."""
    ids = settings.get("segment_ids")
    if ids == ["NOPE01"]:
        return {**settings, "segment_ids": [*twins.package.segment_ids[:2], "NOPE01"]}
    return settings


def records_by_stream(run: Run) -> dict[str, list[str]]:
    """Each stream's record data (not emitted_at), sorted, as canonical JSON."""
    records: dict[str, list[str]] = {}
    for message in run.of("RECORD"):
        records.setdefault(message["record"]["stream"], []).append(json.dumps(message["record"]["data"], sort_keys=True))
    return {stream: sorted(rows) for stream, rows in records.items()}


def report_requests(emulator: Emulator) -> list[str]:
    return sorted(json.dumps([c.endpoint, c.status, c.body], sort_keys=True) for c in emulator.report_calls(status=None))


def first_sentence(run: Run) -> str | None:
    if run.of("CONNECTION_STATUS"):
        return str(run.of("CONNECTION_STATUS")[0]["connectionStatus"].get("message"))
    errors = run.errors()
    return errors[0]["message"] if errors else None


def warnings(run: Run) -> list[str]:
    return [m["log"]["message"] for m in run.of("LOG") if m["log"]["level"] == "WARN"]


def said(run: Run, twins: Twins) -> tuple[str | None, list[str | None]]:
    """The first error's sentence and the warnings, each twin's address said the same way."""
    return without_base_url(first_sentence(run), twins), [without_base_url(line, twins) for line in warnings(run)]


def exit_ok(run: Run, command: str) -> bool:
    if command == "check":  # a failed check exits 0: its verdict is the status
        statuses = run.of("CONNECTION_STATUS")
        return run.returncode == 0 and bool(statuses) and statuses[0]["connectionStatus"]["status"] == "SUCCEEDED"
    return run.returncode == 0


@dataclass
class Outcome:
    package: Run
    manifest_only: ManifestOnlyRun
    package_requests: list[str]
    manifest_only_requests: list[str]


def run_both(twins: Twins, workdir: Path, case: Case) -> Outcome:
    for emulator in twins.each():
        emulator.reset_calls()
        emulator.set_faults(case.faults or Faults())
    settings = with_good_ids(case.settings, twins)
    (workdir / "package").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        package = pool.submit(run_connector, workdir / "package", case.command, config_for(twins.package, **settings),
                              case.streams, state=case.state)  # fmt: skip
        manifest_only = pool.submit(run_manifest_only, workdir / "manifest_only", case.command,
                                    config_for(twins.manifest_only, **settings), case.streams, state=case.state)  # fmt: skip
        outcome = Outcome(package.result(), manifest_only.result(), [], [])
    outcome.package_requests = report_requests(twins.package)
    outcome.manifest_only_requests = report_requests(twins.manifest_only)
    for emulator in twins.each():
        emulator.set_faults(Faults())
    return outcome


def without_base_url(text: str | None, twins: Twins) -> str | None:
    """A sentence with each twin's base_url said the same way (the twins listen on two ports)."""
    if text is None:
        return None
    for emulator in twins.each():
        text = text.replace(emulator.base_url, "<base_url>").replace(emulator.base_url.split("://")[1], "<host>")
    return text


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_both_runtimes_agree(twins: Twins, tmp_path: Path, case: Case) -> None:
    outcome = run_both(twins, tmp_path, case)
    package, manifest_only = outcome.package, outcome.manifest_only
    assert manifest_only.hidden_imports == [], "the manifest-only connector reached for the package"
    sentence, warned = said(package, twins)
    assert exit_ok(package, case.command) == case.ok, (sentence, package.stderr[-2000:])
    assert exit_ok(manifest_only, case.command) == case.ok, (first_sentence(manifest_only), manifest_only.stderr[-2000:])
    assert said(manifest_only, twins) == (sentence, warned)
    if case.sentence is not None:
        assert sentence is not None and sentence.startswith(case.sentence), sentence
    assert records_by_stream(manifest_only) == records_by_stream(package)
    assert outcome.manifest_only_requests == outcome.package_requests
    for run, emulator in ((package, twins.package), (manifest_only, twins.manifest_only)):
        printed = json.dumps(run.messages) + run.stderr
        assert emulator.config.api_key not in printed, case.name
    if case.command == "read" and case.ok:
        assert records_by_stream(package), "a case that reads nothing shows nothing"


def test_one_unknown_id_is_warned_of_once_per_read(twins: Twins, tmp_path: Path) -> None:
    # A read of all three streams: the listing stream and both report streams each meet the unknown
    # id, and the read says so once (SyncSession.say_once), in both runtimes.
    case = next(case for case in CASES if case.name == "one unknown segment id among good ones")
    outcome = run_both(twins, tmp_path, replace(case, streams=list(ALL)))
    for run in (outcome.package, outcome.manifest_only):
        said = [line for line in warnings(run) if "NOPE01" in line]
        assert said == ["NOPE01: not in the Klaviyo account, so skipped; remove it from `segment_ids`."], said
        read = records_by_stream(run)
        assert set(read) == {"segments", "segment_values", "segment_series"}
        good = set(twins.package.segment_ids[:2])
        for stream in ("segment_values", "segment_series"):
            assert {json.loads(row)["segment_id"] for row in read[stream]} == good, stream


@pytest.mark.parametrize("command", ["check", "read"])
def test_a_dead_port_is_the_same_sentence_in_both_runtimes(tmp_path: Path, dead_port: DeadPort, command: str) -> None:
    config = {"api_key": "pk_dead_port_key", "base_url": f"http://127.0.0.1:{dead_port.port}", **RANGE}
    (tmp_path / "package").mkdir()
    streams = ALL if command == "read" else None
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(run_connector, tmp_path / "package", command, config, streams)
        manifest_only = pool.submit(run_manifest_only, tmp_path / "manifest_only", command, config, streams).result()
        package = running.result()
    assert manifest_only.hidden_imports == []
    assert exit_ok(package, command) is False and exit_ok(manifest_only, command) is False
    said = first_sentence(package)
    assert said is not None and f"Nothing answered at http://127.0.0.1:{dead_port.port}" in said
    assert first_sentence(manifest_only) == said
