"""What a person sees before and during a sync: the plan (``plan`` and the start of ``read``), a
progress line per report call (its place in the plan), and one sentence when the key is refused.

The expected figures are worked out here from Klaviyo's published caps and limits, not taken
from the connector: 250 segments are 3 batches of at most 100; 400 days at ``daily`` are 7
windows of at most 60 days (the window holding the range's New York fall-back asks for 59 days:
still 7); 21 calls at 2 a minute take 10 minutes from the first to the last, and are 21/225 = 9%
of the daily quota.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from integration_tests.conftest import config_for, run_connector
from integration_tests.connector_process import run_command
from klaviyo_emulator import Emulator, EmulatorConfig
from testkit import catalog_entry

START, END = dt.date(2024, 1, 1), dt.date(2025, 2, 4)  # 400 days
SEGMENTS = 250
EXPECTED_CALLS = math.ceil(SEGMENTS / 100) * math.ceil((END - START).days / 60)


def report_calls(emu: Emulator) -> int:
    return sum(1 for call in emu.calls if call.path.rstrip("/").endswith("-reports"))


def emulator() -> Emulator:
    return Emulator(EmulatorConfig(segments=SEGMENTS, now=dt.datetime(2025, 3, 1)))


def test_plan_prints_the_cost_and_makes_no_report_call(tmp_path: Path) -> None:
    assert EXPECTED_CALLS == 21
    with emulator() as emu:
        config = config_for(emu, start_date=START.isoformat(), end_date=END.isoformat())
        (tmp_path / "config.json").write_text(json.dumps(config))
        catalog = {"streams": [catalog_entry("segment_series", "incremental")]}
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        command = ["plan", "--config", str(tmp_path / "config.json")]
        command += ["--catalog", str(tmp_path / "catalog.json")]
        done = run_command(command, cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
        assert report_calls(emu) == 0
    text = done.stdout
    assert not text.lstrip().startswith("{"), "a plan is for a person, not Airbyte messages"
    assert f"{SEGMENTS} segments" in text
    assert f"{EXPECTED_CALLS} report calls" in text and "7 windows" in text
    assert "about 10 minutes" in text and "9% of its 225-call daily quota" in text


def test_read_logs_the_plan_first_then_a_progress_line_per_call_and_makes_the_planned_calls(tmp_path: Path) -> None:
    with emulator() as emu:
        config = config_for(emu, start_date=START.isoformat(), end_date=END.isoformat())
        run = run_connector(tmp_path, "read", config, [("segment_series", "incremental")], timeout=300)
        assert run.returncode == 0, run.errors() or run.stderr[-2000:]
        made = report_calls(emu)
    assert made == EXPECTED_CALLS
    logs = [(i, m["log"]["message"]) for i, m in enumerate(run.messages) if m["type"] == "LOG"]
    first_record = next(i for i, m in enumerate(run.messages) if m["type"] == "RECORD")
    plan = [(i, text) for i, text in logs if text.startswith("Plan: ")]
    assert plan and all(i < first_record for i, _ in plan)
    assert any(f"{EXPECTED_CALLS} report calls" in text and "about 10 minutes" in text and "9%" in text for _, text in plan)
    progress = [text for _, text in logs if text.startswith("segment_series: call ")]
    assert [text.split(" (")[0] for text in progress] == [
        f"segment_series: call {n} of {EXPECTED_CALLS}" for n in range(1, EXPECTED_CALLS + 1)
    ]
    assert all(i < first_record for i, text in plan)
    # Each window asks in 3 batches of the 250 segments: 1-100, 101-200, 201-250.
    batches = [text.split(", ")[1].split(")")[0] for text in progress[:3]]
    assert batches == ["segments 1–100", "segments 101–200", "segments 201–250"]
    assert progress[-1].endswith(f"{len(run.records('segment_series')):,} rows so far.")


def test_a_refused_key_stops_the_read_with_one_sentence_and_no_report_call(tmp_path: Path) -> None:
    with emulator() as emu:
        config = {**config_for(emu, start_date=START.isoformat(), end_date=END.isoformat()), "api_key": "pk_not_this_one"}
        streams = [("segments", "full_refresh"), ("segment_values", "full_refresh"), ("segment_series", "incremental")]
        run = run_connector(tmp_path, "read", config, streams)
        made = report_calls(emu)
    assert run.returncode != 0
    assert made == 0
    sentence = "Klaviyo did not accept the API key (401): use a private API key (it starts with pk_) from Settings > API keys."
    first, *rest = [error["message"] for error in run.errors()]
    assert first == sentence
    assert all(sentence in message for message in rest), rest  # other streams, and the CDK's summary
    logged = " ".join(m["log"]["message"] for m in run.of("LOG"))
    assert "request to '" not in logged and "Response (body)" not in logged  # no raw request or answer dump
