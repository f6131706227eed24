"""The two runtimes agree: ``manifest.yaml`` and ``components.py`` injected into the CDK's
``source-declarative-manifest`` (Airbyte's manifest-only form, ``integration_tests/manifest_only.py``)
and the ``source-klaviyo-segments`` package give the same spec, check verdicts, catalog, records,
report requests and final states on the same config, against the emulator (no rate limits, so no
pacing and no waits)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration_tests.conftest import NOW, Run, config_for, run_connector
from integration_tests.manifest_only import ManifestOnlyRun, probe_package_import, run_manifest_only
from klaviyo_emulator import Emulator, EmulatorConfig

ALL_STREAMS = [("segments", "full_refresh"), ("segment_values", "full_refresh"), ("segment_series", "incremental")]
# 105 segments: two report batches (100 + 5) and 11 pages of GET /api/segments (10 a page). Created
# from 2024-09-01 on, so the later windows ask about more segments than the earlier ones.
SEGMENTS = 105
CREATED = (dt.datetime(2024, 9, 1), dt.datetime(2024, 12, 1))


@dataclass
class Twins:
    """Two emulators serving the same account: each runtime reads from its own, so both read at
    once and each one's requests are recorded apart. The configs differ in `base_url` only."""

    package: Emulator
    manifest_only: Emulator


@pytest.fixture(scope="module")
def twins() -> Iterator[Twins]:
    def emulator() -> Emulator:
        return Emulator(EmulatorConfig(segments=SEGMENTS, now=NOW, created_spread=CREATED))

    with emulator() as package, emulator() as manifest_only:
        assert package.segment_ids == manifest_only.segment_ids
        assert package.truth_values("last_30_days") == manifest_only.truth_values("last_30_days")
        yield Twins(package, manifest_only)


@pytest.fixture(scope="module")
def klaviyo(twins: Twins) -> Emulator:
    """One emulator for both runtimes, where their requests are only looked at together."""
    return twins.package


def both(workdir: Path, command: str, config: dict[str, Any] | None, **kwargs: Any) -> tuple[Run, ManifestOnlyRun]:
    """The package's run and the manifest-only run of one command, side by side (one CPU each)."""
    (workdir / "package").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        package = pool.submit(run_connector, workdir / "package", command, config or {}, **kwargs)
        manifest_only = pool.submit(run_manifest_only, workdir / "manifest_only", command, config, **kwargs)
        return package.result(), manifest_only.result()


def status(run: Run) -> dict[str, Any]:
    messages = run.of("CONNECTION_STATUS")
    assert len(messages) == 1, run.errors() or run.stderr[-3000:]
    return dict(messages[0]["connectionStatus"])


def records_by_stream(run: Run) -> dict[str, list[str]]:
    """Each stream's record data (not emitted_at), sorted, as canonical JSON."""
    records: dict[str, list[str]] = {}
    for message in run.of("RECORD"):
        records.setdefault(message["record"]["stream"], []).append(json.dumps(message["record"]["data"], sort_keys=True))
    return {stream: sorted(rows) for stream, rows in records.items()}


def final_states(run: Run) -> dict[str, Any]:
    """The last state of each stream."""
    return {m["stream"]["stream_descriptor"]["name"]: m["stream"]["stream_state"] for m in run.states()}


def report_requests(calls: list[Any]) -> list[str]:
    return sorted(json.dumps([call.endpoint, call.status, call.body], sort_keys=True) for call in calls)


def assert_clean(run: Run) -> None:
    assert run.returncode == 0 and not run.errors(), run.errors() or run.stderr[-3000:]
    if isinstance(run, ManifestOnlyRun):
        assert run.hidden_imports == [], f"the manifest-only connector reached for the package: {run.hidden_imports}"


@dataclass
class Sync:
    package: Run
    manifest_only: ManifestOnlyRun
    package_requests: list[str]
    manifest_only_requests: list[str]


def sync_both(twins: Twins, workdir: Path, settings: dict[str, Any], streams: list[tuple[str, str]],
              package_state: list[dict[str, Any]] | None = None,
              manifest_only_state: list[dict[str, Any]] | None = None) -> Sync:  # fmt: skip
    """One read by each runtime, at once, each from its own twin, with `settings` (and the twin's
    key and base_url) as the config."""
    (workdir / "package").mkdir(parents=True, exist_ok=True)
    twins.package.reset_calls()
    twins.manifest_only.reset_calls()
    with ThreadPoolExecutor(2) as pool:
        package = pool.submit(run_connector, workdir / "package", "read", config_for(twins.package, **settings),
                              streams, state=package_state)  # fmt: skip
        manifest_only = pool.submit(run_manifest_only, workdir / "manifest_only", "read",
                                    config_for(twins.manifest_only, **settings), streams, state=manifest_only_state)  # fmt: skip
        return Sync(
            package.result(),
            manifest_only.result(),
            report_requests(twins.package.report_calls(status=None)),
            report_requests(twins.manifest_only.report_calls(status=None)),
        )


def state_messages(run: Run) -> list[dict[str, Any]]:
    """The run's final state message of each stream: what the platform passes to the next sync."""
    last = {m["stream"]["stream_descriptor"]["name"]: m for m in run.states()}
    return [{key: value for key, value in m.items() if key != "sourceStats"} for m in last.values()]


# A daily backfill over two series windows, then the next sync from each runtime's own state.
DAILY = {"start_date": "2024-10-01", "end_date": "2024-12-15", "lookback_window_days": 2}
DAILY_NEXT_END = "2025-01-20"
# Hourly across the end of daylight-saving time (2024-11-03, New York): two 7-day windows; a
# custom values timeframe; three segments; two statistics.
HOURLY = {
    "start_date": "2024-11-01", "end_date": "2024-11-10", "interval": "hourly", "values_timeframe": "custom",
    "statistics": ["total_members", "members_added"],
}  # fmt: skip


@pytest.fixture(scope="module")
def daily(twins: Twins, tmp_path_factory: pytest.TempPathFactory) -> tuple[Sync, Sync]:
    workdir = tmp_path_factory.mktemp("daily")
    first = sync_both(twins, workdir, DAILY, ALL_STREAMS)
    assert_clean(first.package)
    assert_clean(first.manifest_only)
    later = {**DAILY, "end_date": DAILY_NEXT_END}
    series = [("segment_series", "incremental")]
    second = sync_both(twins, workdir, later, series, state_messages(first.package), state_messages(first.manifest_only))
    return first, second


def test_the_manifest_only_subprocess_cannot_import_the_package(tmp_path: Path) -> None:
    hidden = probe_package_import(tmp_path)
    assert hidden["importable"] is False and "source_klaviyo_segments" in hidden["error"]
    assert hidden["hidden_imports"] == ["source_klaviyo_segments"]
    # Not vacuous: the package is installed in this venv (editable), and without the blocker the
    # same `python -I` in an empty directory finds it.
    assert probe_package_import(tmp_path, hide=False)["importable"] is True


def test_spec_is_the_manifests_in_both_runtimes(tmp_path: Path, klaviyo: Emulator) -> None:
    with ThreadPoolExecutor(2) as pool:
        running_package = pool.submit(run_connector, tmp_path, "spec", {})
        running_manifest_only = pool.submit(run_manifest_only, tmp_path, "spec", config_for(klaviyo), mode="manifest-spec")
        package, manifest_only = running_package.result(), running_manifest_only.result()
    assert manifest_only.returncode == 0 and manifest_only.hidden_imports == [], manifest_only.stderr[-3000:]
    (package_spec,) = package.of("SPEC")
    generic_spec, manifest_only_spec = manifest_only.of("SPEC")
    assert manifest_only_spec["spec"]["connectionSpecification"] == package_spec["spec"]["connectionSpecification"]
    assert package_spec["spec"]["connectionSpecification"]["required"] == ["api_key"]
    # The entrypoint's own `spec` is source-declarative-manifest's: the platform takes an injected
    # connector's spec from its manifest (manifest_only_spec), not from this.
    assert "__injected_declarative_manifest" in generic_spec["spec"]["connectionSpecification"]["properties"]


# How the CDK reports a failed CheckStream: ConcurrentDeclarativeSource.check answers with
# repr(reason) (concurrent_declarative_source.py:739), and CheckStream puts a context before the
# reason: "Stream X is not available: " for a stream whose first read fails (check_stream.py:153),
# "Encountered an error while discovering streams. Error: " for an error while the streams are
# built (check_stream.py:83), which is where the manifest's config validations run
# (concurrent_declarative_source.py:451, _prepare_for_stream_build). The CDK has no other check
# component to raise through. The package unwraps it (source.py, unwrapped_check_message); the
# manifest-only form keeps the package's sentence inside the CDK's wrapping.
CDK_CHECK_CONTEXTS = ("Stream segment_series is not available: ", "Encountered an error while discovering streams. Error: ")


def assert_same_check_verdict(package: Run, manifest_only: ManifestOnlyRun, name: str = "") -> None:
    """The same status; the package's message, as it is or as the CDK wraps it."""
    assert manifest_only.hidden_imports == [], name
    said, got = status(package), status(manifest_only)
    assert got["status"] == said["status"], (name, said, got)
    sentence = said.get("message")
    wrapped = {sentence} | ({repr(context + sentence) for context in CDK_CHECK_CONTEXTS} if sentence else set())
    assert got.get("message") in wrapped, (name, said, got)


def test_check_verdicts_agree(tmp_path: Path, klaviyo: Emulator) -> None:
    klaviyo.reset_calls()
    cases = {
        "good": config_for(klaviyo),
        "wrong key": {**config_for(klaviyo), "api_key": "pk_wrong"},
        "unknown segment": config_for(klaviyo, segment_ids=[klaviyo.segment_ids[0], "NOPE42"]),
        # The spec's JSON schema accepts it; the connector's own checks refuse it.
        "end before start": config_for(klaviyo, start_date="2024-12-01", end_date="2024-11-01"),
    }
    running = {}
    with ThreadPoolExecutor(2) as pool:  # all at once: each pair would otherwise wait for its slower half
        for name, config in cases.items():
            workdir = tmp_path / name.replace(" ", "_")
            (workdir / "package").mkdir(parents=True)
            running[name] = (pool.submit(run_connector, workdir / "package", "check", config),
                             pool.submit(run_manifest_only, workdir / "manifest_only", "check", config))  # fmt: skip
        verdicts = {name: (package.result(), manifest_only.result()) for name, (package, manifest_only) in running.items()}
    for name, (package, manifest_only) in verdicts.items():
        assert_same_check_verdict(package, manifest_only, name)
    assert status(verdicts["good"][1])["status"] == "SUCCEEDED"
    assert "401" in status(verdicts["wrong key"][0])["message"]
    assert "NOPE42" in status(verdicts["unknown segment"][0])["message"]
    assert "must be later than `start_date`" in status(verdicts["end before start"][0])["message"]
    assert klaviyo.report_calls(status=None) == []  # a check never spends report quota


def test_a_config_the_spec_refuses_is_refused_by_both(tmp_path: Path, klaviyo: Emulator) -> None:
    """Both runtimes refuse it; the sentences may differ: the CDK's entrypoint checks the config
    against the spec's JSON schema before the manifest's validations run (entrypoint.py,
    ``check`` then ``validate_connection``), while the package's entrypoint says its own sentence
    first (run.py, ``KlaviyoSegmentsEntrypoint``)."""
    package, manifest_only = both(tmp_path, "check", config_for(klaviyo, segment_ids=["A", "A"]))
    assert manifest_only.hidden_imports == []
    assert status(package)["status"] == status(manifest_only)["status"] == "FAILED"
    assert "segment_ids" in status(package)["message"]


def test_discover_agrees(tmp_path: Path, klaviyo: Emulator) -> None:
    package, manifest_only = both(tmp_path, "discover", config_for(klaviyo))
    assert_clean(package)
    assert_clean(manifest_only)
    (package_catalog,) = package.of("CATALOG")
    (manifest_only_catalog,) = manifest_only.of("CATALOG")
    streams = {s["name"]: s for s in package_catalog["catalog"]["streams"]}
    assert list(streams) == ["segments", "segment_values", "segment_series"]
    assert [s["name"] for s in manifest_only_catalog["catalog"]["streams"]] == list(streams)
    for stream in manifest_only_catalog["catalog"]["streams"]:
        assert stream["json_schema"] == streams[stream["name"]]["json_schema"], stream["name"]
        assert stream == streams[stream["name"]], stream["name"]  # sync modes, cursor and keys too


def test_a_read_of_every_stream_then_the_next_incremental_sync_agree(daily: tuple[Sync, Sync]) -> None:
    """One test: the four reads behind it run once, whichever pytest-xdist worker takes it."""
    first, second = daily
    package, manifest_only = records_by_stream(first.package), records_by_stream(first.manifest_only)
    assert set(package) == {"segments", "segment_values", "segment_series"}
    assert len(package["segments"]) == SEGMENTS
    assert manifest_only == package
    assert first.manifest_only_requests == first.package_requests
    assert final_states(first.manifest_only) == final_states(first.package)
    assert final_states(first.package)["segment_series"] == {"date_time": "2024-12-14T00:00:00"}

    # The next sync, from each runtime's own final state.
    assert_clean(second.package)
    assert_clean(second.manifest_only)
    assert records_by_stream(second.manifest_only) == records_by_stream(second.package)
    assert second.manifest_only_requests == second.package_requests
    assert final_states(second.manifest_only) == final_states(second.package)
    assert final_states(second.package) == {"segment_series": {"date_time": "2025-01-19T00:00:00"}}
    # Only the lookback and the new days: the first bucket read is the saved one minus 2 days.
    days = {json.loads(row)["date_time"][:10] for row in records_by_stream(second.package)["segment_series"]}
    assert min(days) == "2024-12-12"


def test_an_hourly_read_across_daylight_saving_time_agrees(twins: Twins, tmp_path: Path) -> None:
    streams = [("segment_values", "full_refresh"), ("segment_series", "incremental")]
    run = sync_both(twins, tmp_path, {**HOURLY, "segment_ids": twins.package.segment_ids[:3]}, streams)
    assert_clean(run.package)
    assert_clean(run.manifest_only)
    package = records_by_stream(run.package)
    assert len(package["segment_series"]) == 3 * (9 * 24 + 1)  # 2024-11-03 has 25 hours
    assert records_by_stream(run.manifest_only) == package
    assert run.manifest_only_requests == run.package_requests
    assert final_states(run.manifest_only) == final_states(run.package)
