"""The parity suite (`integration_tests/parity.py`): a port where nothing answers gives both
runtimes the same sentence, in `check` and in `read` (the read's retries take about half a minute,
so these run in a file of their own, beside the others)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from integration_tests.conftest import DeadPort, run_connector
from integration_tests.manifest_only import run_manifest_only
from integration_tests.parity import ALL, RANGE, exit_ok, first_sentence


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
