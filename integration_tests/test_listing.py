"""One segment listing per run: the plan, the ``segments`` stream and both report streams read the
same pages (the manifest's cached listing), and ``check`` lists at most once. Klaviyo serves 10
segments a page and allows 75 pages a second: the listing is paced by the manifest's api_budget."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from integration_tests.conftest import config_for, run_connector
from klaviyo_emulator import Emulator, EmulatorConfig

SEGMENTS = 45  # 5 pages of 10
ALL_STREAMS = [("segments", "full_refresh"), ("segment_values", "full_refresh"), ("segment_series", "incremental")]


def listing_pages(emu: Emulator) -> int:
    return sum(1 for call in emu.calls if call.endpoint == "segments")


def test_a_read_of_every_stream_lists_the_segments_once(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(segments=SEGMENTS, now=dt.datetime(2025, 3, 1))) as emu:
        config = config_for(emu, start_date="2025-01-01", end_date="2025-02-01")
        run = run_connector(tmp_path, "read", config, ALL_STREAMS)
        assert run.returncode == 0, run.errors()
        pages = listing_pages(emu)
    assert len(run.records("segments")) == SEGMENTS
    assert pages == math.ceil(SEGMENTS / 10)


def test_check_lists_the_segments_at_most_once(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(segments=SEGMENTS, now=dt.datetime(2025, 3, 1))) as emu:
        run = run_connector(tmp_path, "check", config_for(emu, segment_ids=emu.segment_ids[-2:]))
        assert run.of("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
        assert listing_pages(emu) <= math.ceil(SEGMENTS / 10)
        assert emu.report_calls(status=None) == []
