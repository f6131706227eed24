"""Every command refuses what a person can fix the same way, as `check` always has.

Each mistake is made against the Klaviyo emulator (or a port where nothing answers), through the
installed command, which runs the CDK's entrypoint as the manifest-only runtime does
(`test_parity_*.py` hold both to the same verdicts). A refusal is: exit code 1, and the expected
sentence as the first Airbyte error trace; the CDK may follow it with its summary of the streams
that failed (which quotes it) and logs a failed stream with its traceback, as it does for every
connector. A file the command cannot use is the package's own refusal: one trace, no traceback.
`check` keeps the protocol's convention: a FAILED status and exit code 0. The API key never appears
in any output, and every line the connector writes is compact JSON, as the CDK's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from integration_tests.conftest import NOW, DeadPort, config_for
from integration_tests.connector_process import run_command
from klaviyo_emulator import Emulator, EmulatorConfig
from source_klaviyo_segments.run import run
from testkit import catalog_entry, connector_command

ALL_STREAMS = [("segments", "full_refresh"), ("segment_values", "full_refresh"), ("segment_series", "incremental")]
STREAM_NAMES = "segments, segment_values, segment_series"
RANGE = {"start_date": "2025-01-01", "end_date": "2025-03-01"}


@dataclass
class Output:
    stdout: str
    stderr: str
    returncode: int

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def error_sentences(self) -> list[str]:
        return [m["trace"]["error"]["message"] for m in self.messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]

    def logs(self, level: str | None = None) -> list[str]:
        return [m["log"]["message"] for m in self.messages if m["type"] == "LOG" and level in (None, m["log"]["level"])]

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"]["data"] for m in self.messages if m["type"] == "RECORD" and m["record"]["stream"] == stream]


def connector(
    tmp_path: Path, command: str, config: dict[str, Any] | None, streams: list[tuple[str, str]] | None = None
) -> Output:
    args = [command]
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
        args += ["--config", str(tmp_path / "config.json")]
    if streams is not None:
        (tmp_path / "catalog.json").write_text(json.dumps({"streams": [catalog_entry(name, mode) for name, mode in streams]}))
        args += ["--catalog", str(tmp_path / "catalog.json")]
    done = run_command(args, cwd=tmp_path)
    return Output(done.stdout, done.stderr, done.returncode)


def assert_clean(output: Output, api_key: str, refused: bool = False) -> None:
    """No key, one JSON style, and (unless the CDK ended a failed stream) no Python traceback."""
    for text in (output.stdout, output.stderr):
        if not refused:
            assert "Traceback" not in text and 'File "' not in text and 'File \\"' not in text, text[-3000:]
        assert api_key not in text
    assert '"type": "' not in output.stdout, "every message is compact JSON, as the CDK writes its own"


def assert_refused(output: Output, sentence: str, api_key: str) -> None:
    assert output.returncode == 1, output.stdout[-3000:] + output.stderr[-3000:]
    first, *rest = output.error_sentences()
    assert first == sentence
    # What follows is the same sentence from another stream, and the CDK's summary of the streams
    # that failed, which quotes it.
    assert all(sentence in line for line in rest), rest
    assert_clean(output, api_key, refused=True)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(segments=5, now=NOW)) as emulator:
        yield emulator


@pytest.fixture()
def calls(emu: Emulator) -> Emulator:
    emu.reset_calls()
    return emu


def test_read_and_plan_refuse_when_no_requested_segment_id_is_in_the_account(tmp_path: Path, calls: Emulator) -> None:
    config = config_for(calls, **RANGE, segment_ids=["Gone01", "Gone02"])
    sentence = (
        "None of the `segment_ids` is in the Klaviyo account (Gone01, Gone02): "
        "fix them, or remove the field to read every segment."
    )
    read = connector(tmp_path, "read", config, ALL_STREAMS)
    assert_refused(read, sentence, config["api_key"])
    assert calls.report_calls(status=None) == []  # stopped before the first report call
    assert read.records("segments") == []
    planned = connector(tmp_path, "plan", config)
    assert planned.returncode == 1 and planned.stdout == ""
    assert planned.stderr.strip() == sentence


def test_read_warns_of_the_missing_segment_ids_and_reads_the_rest(tmp_path: Path, calls: Emulator) -> None:
    kept = calls.segment_ids[0]
    config = config_for(calls, **RANGE, segment_ids=[kept, "Gone01"])
    read = connector(tmp_path, "read", config, [("segment_series", "incremental")])
    assert read.returncode == 0, read.stderr[-3000:]
    assert read.error_sentences() == []
    assert any(line.startswith("Gone01: not in the Klaviyo account, so skipped") for line in read.logs("WARN"))
    assert {row["segment_id"] for row in read.records("segment_series")} == {kept}
    assert_clean(read, config["api_key"])
    planned = connector(tmp_path, "plan", config)
    assert planned.returncode == 0
    assert planned.stdout.startswith("Gone01: not in the Klaviyo account, so skipped; remove it from `segment_ids`.\n")


def test_a_catalog_stream_the_connector_does_not_have_is_refused(tmp_path: Path, calls: Emulator) -> None:
    config = config_for(calls, **RANGE)
    read = connector(tmp_path, "read", config, [("segments", "full_refresh"), ("segment_growth", "full_refresh")])
    sentence = (
        f"The catalog file {tmp_path / 'catalog.json'} selects `segment_growth`, which this connector does not have: "
        f"its streams are {STREAM_NAMES} (run discover to see them)."
    )
    assert_refused(read, sentence, config["api_key"])
    assert "Traceback" not in read.stdout + read.stderr  # the package's own refusal of a file
    assert calls.report_calls(status=None) == []
    planned = connector(tmp_path, "plan", config, [("segment_growth", "full_refresh")])
    assert (planned.returncode, planned.stderr.strip()) == (1, sentence)


REFUSED_CONFIGS = [
    ({"interval": "yearly"}, "`interval` is 'yearly'; use one of hourly, daily, weekly, monthly."),
    (
        {"start_date": "2025-02-01", "end_date": "2025-01-01"},
        "`end_date` (2025-01-01T00:00:00) must be later than `start_date` (2025-02-01T00:00:00).",
    ),
]


@pytest.mark.parametrize("command", ["discover", "read"])
@pytest.mark.parametrize(("fields", "sentence"), REFUSED_CONFIGS, ids=["interval", "range"])
def test_a_refused_config_is_its_sentence(
    tmp_path: Path, calls: Emulator, command: str, fields: dict[str, Any], sentence: str
) -> None:
    config = config_for(calls, **{**RANGE, **fields})
    output = connector(tmp_path, command, config, ALL_STREAMS if command == "read" else None)
    assert_refused(output, sentence, config["api_key"])
    assert calls.report_calls(status=None) == []


def test_check_still_exits_0_with_a_failed_status(tmp_path: Path, calls: Emulator) -> None:
    config = config_for(calls, **RANGE, interval="yearly")
    output = connector(tmp_path, "check", config)
    assert output.returncode == 0
    statuses = [m["connectionStatus"] for m in output.messages if m["type"] == "CONNECTION_STATUS"]
    # The CDK's CheckStream wraps the reason (the same in every runtime).
    wrapped = repr(f"Encountered an error while discovering streams. Error: {REFUSED_CONFIGS[0][1]}")
    assert statuses == [{"status": "FAILED", "message": wrapped}]
    assert output.error_sentences() == []
    assert_clean(output, config["api_key"], refused=True)  # the CDK logs "Check failed" with its traceback


def test_check_says_every_problem_of_a_config_at_once_a_sentence_each(tmp_path: Path, calls: Emulator) -> None:
    # Issue 25: a bad date once hid an `interval` typo, so the user fixed, reran, and fixed again.
    config = config_for(calls, start_date="2025-02-30", end_date="2025-03-01", interval="yearly")
    api_key = config.pop("api_key")
    output = connector(tmp_path, "check", config)
    assert output.returncode == 0
    statuses = [m["connectionStatus"] for m in output.messages if m["type"] == "CONNECTION_STATUS"]
    sentences = [
        "`api_key` is missing: paste a Klaviyo private API key with the segments:read scope (Settings > API keys).",
        "`start_date` is '2025-02-30', which is not a real date or time: write it YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, "
        "such as 2024-01-01 or 2024-01-01T06:00:00.",
        REFUSED_CONFIGS[0][1],
    ]
    # The CDK's CheckStream wraps the reason, the same in every runtime (test_parity_refusals.py).
    wrapped = repr(f"Encountered an error while discovering streams. Error: {' '.join(sentences)}")
    assert statuses == [{"status": "FAILED", "message": wrapped}]
    assert output.error_sentences() == []
    assert_clean(output, api_key, refused=True)
    assert calls.report_calls(status=None) == []


def test_plan_without_a_catalog_plans_every_report_stream_and_is_in_the_help(tmp_path: Path, calls: Emulator) -> None:
    config = config_for(calls, **RANGE)
    planned = connector(tmp_path, "plan", config)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines()[1:3] == [
        "segment_values: 5 segments, 1 timeframe, 1 report call.",
        f"segment_series: 5 segments, 1 window, 1 report call, from {RANGE['start_date']}T00:00:00 (the configured start).",
    ]
    assert calls.report_calls(status=None) == []
    helped = subprocess.run([*connector_command(), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "plan" in helped.stdout.split("commands:")[1]


def test_a_future_end_date_is_read_up_to_now_with_a_warning(tmp_path: Path, calls: Emulator) -> None:
    config = config_for(calls, start_date="2025-02-20", end_date="2999-01-01")
    read = connector(tmp_path, "read", config, [("segment_series", "incremental")])
    assert read.returncode == 0, read.stderr[-3000:]
    assert read.error_sentences() == []
    warned = [line for line in read.logs("WARN") if line.startswith("end_date 2999-01-01")]
    assert len(warned) == 1
    assert "is in the future; reading up to now" in warned[0] and "in the account's timezone (America/New_York)" in warned[0]
    assert read.records("segment_series")  # up to the emulator's now
    assert_clean(read, config["api_key"])


# -- nothing answering at base_url -------------------------------------------------------------------

# The manifest's `attempts_without_answer`: the account's timezone is asked for twice, the first
# stream's segment listing six times; then each later stream's listing once, and the read stops.
TIMEZONE_ATTEMPTS, LISTING_ATTEMPTS = 2, 6


def test_a_read_where_nothing_answers_stops_in_one_sentence_after_a_bounded_number_of_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], dead_port: DeadPort
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)  # the waits are counted, not slept
    dead = dead_port
    config = {"api_key": "pk_never_printed_key", "base_url": f"http://127.0.0.1:{dead.port}", **RANGE}
    (tmp_path / "config.json").write_text(json.dumps(config))
    catalog = {"streams": [catalog_entry(name, mode) for name, mode in ALL_STREAMS]}
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    # In process, the CDK's entrypoint ends a sync whose streams failed by raising (its hook prints
    # the summary and exits 1 in a process of its own).
    with pytest.raises(AirbyteTracedException):
        run(["read", "--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json")])
    captured = capfd.readouterr()
    output = Output(captured.out, captured.err, 1)
    sentence = (
        f"Nothing answered at http://127.0.0.1:{dead.port} in {LISTING_ATTEMPTS} attempts (ConnectionError): "
        "check `base_url` and the network."
    )
    first, *later = output.error_sentences()
    assert first == sentence  # each stream says it; the first said it after its attempts, the others at once
    assert all(sentence in line for line in later), later
    assert config["api_key"] not in captured.out + captured.err
    # Each later stream's listing tried once: the host was already known to answer nothing.
    assert dead.connections == TIMEZONE_ATTEMPTS + LISTING_ATTEMPTS + 2
    assert sum(slept) <= 60  # about a minute at most, on the CDK's own backoff clock
    assert not any("Rate limit" in line for line in output.logs())  # no answer is not a rate limit


def test_plan_of_an_account_without_segments_says_there_is_nothing_to_read_and_a_read_is_empty(tmp_path: Path) -> None:
    with Emulator(EmulatorConfig(segments=0, now=NOW)) as empty:
        config = config_for(empty, **RANGE)
        planned = connector(tmp_path, "plan", config)
        read = connector(tmp_path, "read", config, ALL_STREAMS)
        assert empty.report_calls(status=None) == []
    assert (planned.returncode, planned.stdout) == (1, "")
    assert planned.stderr.strip() == "The Klaviyo account has no segments yet: there is nothing to report on."
    assert read.returncode == 0, read.stdout[-3000:]  # an empty account reads as empty, not as an error
    assert read.error_sentences() == [] and read.records("segments") == []
    assert_clean(read, config["api_key"])
