"""Series windows after the account's "now": Klaviyo does not document what it answers for a custom
timeframe that starts in the future. The emulator serves both readings (`future_timeframe`): an
answer without a single bucket ("empty"), which the connector says once a read, naming the first
such window, instead of reading an account without data in silence; or a 400 ("refuse"), which is
the config error it is, in Klaviyo's words.

The emulator's clock stands at 2025-03-01 while the config asks for June to October 2026 (all in the
past of any machine running this, so the read is the same whenever it runs)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_tests.conftest import NOW, config_for, run_connector
from klaviyo_emulator import Emulator, EmulatorConfig

ALL_STREAMS = [("segments", "full_refresh"), ("segment_values", "full_refresh"), ("segment_series", "incremental")]
# Four months of daily windows (three report calls or more), every one after the emulator's now.
FUTURE = {"start_date": "2026-06-01", "end_date": "2026-10-01", "interval": "daily"}


@pytest.fixture(params=["empty", "refuse"])
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(segments=5, now=NOW, future_timeframe=request.param)) as emu:
        yield emu


@pytest.mark.parametrize("emulator", ["empty"], indirect=True)
def test_windows_without_buckets_are_said_once_per_read(tmp_path: Path, emulator: Emulator) -> None:
    run = run_connector(tmp_path, "read", config_for(emulator, **FUTURE), ALL_STREAMS)
    assert run.returncode == 0, run.errors() or run.stderr[-2000:]
    series_calls = [call for call in emulator.report_calls(status=None) if call.endpoint == "series"]
    assert len(series_calls) >= 3 and Counter(call.status for call in series_calls) == {200: len(series_calls)}
    assert run.records("segment_series") == []
    warned = [m["log"]["message"] for m in run.of("LOG") if "no data at all" in m["log"]["message"]]
    assert len(warned) == 1, warned  # once per read, not once per call
    assert {m["log"]["level"] for m in run.of("LOG") if "no data at all" in m["log"]["message"]} == {"WARN"}
    # It names the window of one of those calls (the first answered: two workers read windows at once).
    asked = {
        f"{frame['start'][:19]} to {frame['end'][:19]}"
        for frame in (call.body["data"]["attributes"]["timeframe"] for call in series_calls)
    }
    named = re.match(r"^Klaviyo had no data at all for (\S+ to \S+): ", warned[0])
    assert named and named[1] in asked, (warned[0], asked)
    assert "its series report holds no buckets" in warned[0] and "Is the clock at `base_url` behind?" in warned[0]
    assert len(run.records("segments")) == 5  # the other streams read as ever


@pytest.mark.parametrize("emulator", ["refuse"], indirect=True)
def test_a_refused_future_window_is_a_config_error_in_klaviyos_words(tmp_path: Path, emulator: Emulator) -> None:
    run = run_connector(tmp_path, "read", config_for(emulator, **FUTURE), [("segment_series", "incremental")])
    assert run.returncode == 1
    first = run.errors()[0]
    assert first["failure_type"] == "config_error"
    assert first["message"].startswith(
        "Klaviyo refused the request (400): The timeframe is in the future: timeframe.start is 2026-06-01T00:00:00"
    ), first["message"]
    assert "after the account's current time 2025-03-01T12:00:00" in first["message"]
    assert not any("no data at all" in m["log"]["message"] for m in run.of("LOG"))
