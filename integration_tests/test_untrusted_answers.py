"""Against the emulator, as Airbyte runs the connector (a subprocess): a segment page whose
``links.next`` names another host ends the read with one sentence and nothing is sent there, in
both runtimes; and an answer that echoes the API key never gets it printed, for every verb and
every request the connector makes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_tests.conftest import NOW, config_for, run_connector
from integration_tests.connector_process import run_command
from integration_tests.manifest_only import run_manifest_only
from klaviyo_emulator import Emulator, EmulatorConfig, Faults
from testkit import catalog_entry

STREAMS = [("segment_values", "full_refresh"), ("segment_series", "incremental")]


@pytest.fixture()
def listener() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.2 (another host on this machine), on a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.2", 0))
        sock.listen(16)
        sock.setblocking(False)
        yield sock


def connections_received(sock: socket.socket) -> int:
    """Connections waiting on the listener: a connection made (even one closed since) waits in
    its accept queue until accepted."""
    received = 0
    while True:
        try:
            connection, _ = sock.accept()
        except BlockingIOError:
            return received
        connection.close()
        received += 1


@pytest.fixture()
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(segments=25, now=NOW)) as emu:
        yield emu


@pytest.mark.parametrize("runtime", ["package", "manifest-only"])
def test_a_segment_page_linking_to_another_host_ends_the_read_in_one_sentence_and_nothing_is_sent_there(
    emulator: Emulator, listener: socket.socket, tmp_path: Path, runtime: str
) -> None:
    foreign = f"http://127.0.0.2:{listener.getsockname()[1]}"
    emulator.set_faults(Faults(next_link_base=foreign))
    config = config_for(emulator, start_date="2025-01-01", end_date="2025-02-01")
    run = (run_connector if runtime == "package" else run_manifest_only)(tmp_path, "read", config, STREAMS)
    assert run.returncode != 0
    refusals = [e["message"] for e in run.errors() if foreign.removeprefix("http://") in e["message"]]
    assert refusals, run.errors() or run.stderr[-3000:]
    assert refusals[0].startswith(f"The answer to GET /api/segments named its next page on {foreign}, not on base_url")
    assert "\n" not in refusals[0] and "Traceback" not in run.stderr
    assert connections_received(listener) == 0
    assert emulator.report_calls(status=None) == []  # stopped before any report call
    assert [c.query for c in emulator.calls if c.endpoint == "segments"] != []  # the first page was read


# -- the key, echoed ----------------------------------------------------------------------------------


def printed_by(tmp_path: Path, verb: str, config: dict[str, object]) -> str:
    """Everything ``source-klaviyo-segments <verb>`` printed (stdout and stderr, every line, JSON
    or not); ``plan`` is run as a person runs it, with the catalog."""
    config_path, catalog_path = tmp_path / "config.json", tmp_path / "catalog.json"
    config_path.write_text(json.dumps(config))
    catalog_path.write_text(json.dumps({"streams": [catalog_entry(name, mode) for name, mode in STREAMS]}))
    command = [verb]
    if verb != "spec":  # Airbyte runs spec without a config
        command += ["--config", str(config_path)]
    if verb in ("read", "plan"):
        command += ["--catalog", str(catalog_path)]
    done = run_command(command, cwd=tmp_path)
    assert done.stdout or done.stderr
    return done.stdout + done.stderr


# Which verbs make a request to each endpoint (spec makes none: it has no config).
VERBS_REACHING = {
    "accounts": ["check", "discover", "read", "plan"],
    "segments": ["check", "read", "plan"],
    "series": ["read"],
    "values": ["read"],
}


@pytest.mark.parametrize("endpoint", list(VERBS_REACHING))
def test_an_answer_echoing_the_key_never_gets_it_printed_by_any_verb(emulator: Emulator, tmp_path: Path, endpoint: str) -> None:
    """Each request in turn is answered 400 with the request's headers echoed, Authorization
    included. GET /api/accounts is asked while the source is built, before the CDK's entrypoint
    registers the key with its secret filter: run.py registers it first."""
    key = emulator.config.api_key
    emulator.set_faults(Faults(echo_request_in_errors=True, refuse_endpoint=endpoint))
    config = config_for(emulator, start_date="2025-01-01", end_date="2025-02-01")
    for verb in ["spec", "check", "discover", "read", "plan"]:
        emulator.reset_calls()
        printed = printed_by(tmp_path, verb, config)
        echoed = [c for c in emulator.calls if c.endpoint == endpoint and c.status == 400]
        assert bool(echoed) == (verb in VERBS_REACHING[endpoint]), (verb, [(c.endpoint, c.status) for c in emulator.calls])
        assert all(key in (c.headers.get("Authorization") or "") for c in echoed)  # the answer did carry the key
        assert key not in printed, f"{verb} printed the key Klaviyo echoed from {endpoint}"
