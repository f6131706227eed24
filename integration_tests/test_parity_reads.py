"""The parity suite (`integration_tests/parity.py` says what each case holds both runtimes to):
reads that end well, and reads that `max_report_requests` cuts short or refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_tests.parity import (
    RANGE,
    SAVED,
    SEGMENTS_STREAM,
    SERIES,
    SERIES_FULL,
    VALUES,
    Case,
    Twins,
    assert_runtimes_agree,
    twin_emulators,
)  # fmt: skip


@pytest.fixture(scope="module")
def twins() -> Iterator[Twins]:
    with twin_emulators() as both:
        yield both


READS = [
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
]  # fmt: skip


@pytest.mark.parametrize("case", READS, ids=[case.name for case in READS])
def test_both_runtimes_agree(twins: Twins, tmp_path: Path, case: Case) -> None:
    assert_runtimes_agree(twins, tmp_path, case)
