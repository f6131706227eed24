"""Against the emulator, as Airbyte runs the connector (a subprocess): a read through a proxy whose
segment pages' ``links.next`` name the host behind it asks every page of ``base_url`` and completes,
nothing sent to the named host, in both runtimes; and an answer that echoes the API key never gets
it printed, for every verb and every request the connector makes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from integration_tests.conftest import NOW, DeadPort, Run, config_for, run_connector
from integration_tests.connector_process import run_command
from integration_tests.manifest_only import run_manifest_only
from klaviyo_emulator import Emulator, EmulatorConfig, Faults
from testkit import catalog_entry

STREAMS = [("segment_values", "full_refresh"), ("segment_series", "incremental")]
READ_STREAMS = [("segments", "full_refresh"), *STREAMS]


@pytest.fixture()
def host_behind() -> Iterator[DeadPort]:
    """127.0.0.2, another host on this machine, standing for the host behind a proxy at base_url."""
    host = DeadPort("127.0.0.2")
    yield host
    host.close()


@pytest.fixture()
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(segments=25, now=NOW)) as emu:
        yield emu


def rows(run: Run) -> dict[str, list[str]]:
    """Each stream's records, sorted, as comparable text."""
    return {name: sorted(json.dumps(r, sort_keys=True) for r in run.records(name)) for name, _ in READ_STREAMS}


@pytest.mark.parametrize("runtime", ["package", "manifest-only"])
def test_a_read_through_a_proxy_whose_links_name_the_host_behind_it_asks_every_page_of_base_url(
    emulator: Emulator, host_behind: DeadPort, tmp_path: Path, runtime: str
) -> None:
    """The emulator stands for a proxy at base_url passing on answers whose links.next name the
    host behind it (127.0.0.2): the read completes with the same rows as a read whose links name
    base_url, every page asked of base_url, and nothing reaches the named host."""
    run_read = run_connector if runtime == "package" else run_manifest_only
    config = config_for(emulator, start_date="2025-01-01", end_date="2025-02-01")
    (tmp_path / "direct").mkdir()
    (tmp_path / "proxied").mkdir()
    direct = run_read(tmp_path / "direct", "read", config, READ_STREAMS)
    assert direct.returncode == 0, direct.errors() or direct.stderr[-3000:]

    emulator.set_faults(Faults(next_link_base=host_behind.url))
    emulator.reset_calls()
    proxied = run_read(tmp_path / "proxied", "read", config, READ_STREAMS)
    assert host_behind.connections == 0
    assert proxied.returncode == 0, proxied.errors() or proxied.stderr[-3000:]
    assert not proxied.errors() and "Traceback" not in proxied.stderr
    assert rows(proxied) == rows(direct)
    assert len(rows(proxied)["segments"]) == 25 and rows(proxied)["segment_series"]
    pages = [parse_qs(c.query) for c in emulator.calls if c.endpoint == "segments"]
    assert [p.get("page[cursor]") is not None for p in pages] == [False, True, True]  # 25 segments, 10 a page
    assert all(p["fields[segment]"] for p in pages)


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
