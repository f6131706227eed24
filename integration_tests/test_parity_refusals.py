"""The parity suite (`integration_tests/parity.py` says what each case holds both runtimes to):
answers that echo the key, unknown segment ids, config problems and a dead port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from integration_tests.parity import (
    ALL,
    KEY_ECHOED,
    RANGE,
    SERIES,
    VALUES,
    Case,
    Twins,
    assert_runtimes_agree,
    records_by_stream,
    run_both,
    twin_emulators,
    warnings,
)
from klaviyo_emulator import Faults


@pytest.fixture(scope="module")
def twins() -> Iterator[Twins]:
    with twin_emulators() as both:
        yield both


REFUSALS = [
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


@pytest.mark.parametrize("case", REFUSALS, ids=[case.name for case in REFUSALS])
def test_both_runtimes_agree(twins: Twins, tmp_path: Path, case: Case) -> None:
    assert_runtimes_agree(twins, tmp_path, case)


def test_one_unknown_id_is_warned_of_once_per_read(twins: Twins, tmp_path: Path) -> None:
    # A read of all three streams: the listing stream and both report streams each meet the unknown
    # id, and the read says so once (SyncSession.say_once), in both runtimes.
    case = next(case for case in REFUSALS if case.name == "one unknown segment id among good ones")
    outcome = run_both(twins, tmp_path, replace(case, streams=list(ALL)))
    for run in (outcome.package, outcome.manifest_only):
        said = [line for line in warnings(run) if "NOPE01" in line]
        assert said == ["NOPE01: not in the Klaviyo account, so skipped; remove it from `segment_ids`."], said
        read = records_by_stream(run)
        assert set(read) == {"segments", "segment_values", "segment_series"}
        good = set(twins.package.segment_ids[:2])
        for stream in ("segment_values", "segment_series"):
            assert {json.loads(row)["segment_id"] for row in read[stream]} == good, stream
