"""Run ``source-klaviyo-segments`` in a process of its own, as Airbyte does, against the Klaviyo
emulator, and read back its Airbyte messages. The process is forked from one that has imported the
connector already (``connector_process``); ``installed_script=True`` runs the installed console
script instead."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration_tests.connector_process import run_command
from klaviyo_emulator import Emulator, EmulatorConfig
from source_klaviyo_segments import SourceKlaviyoSegments
from testkit import catalog_entry, connector_command

NOW = dt.datetime(2025, 3, 1, 12, 0)
# The connection specification as the connector reports it (`spec`).
SPEC: dict[str, Any] = SourceKlaviyoSegments().spec(logging.getLogger("airbyte")).connectionSpecification


@dataclass
class Run:
    messages: list[dict[str, Any]]
    returncode: int
    stderr: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"]["data"] for m in self.of("RECORD") if m["record"]["stream"] == stream]

    def states(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.of("STATE")]

    def errors(self) -> list[dict[str, Any]]:
        return [m["trace"]["error"] for m in self.of("TRACE") if m["trace"].get("type") == "ERROR"]


def run_connector(
    tmp_path: Path,
    command: str,
    config: dict[str, Any],
    streams: list[tuple[str, str]] | None = None,
    state: list[dict[str, Any]] | None = None,
    timeout: float = 300,
    installed_script: bool = False,
) -> Run:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    args = [command] + ([] if command == "spec" else ["--config", str(config_path)])
    if streams is not None:
        catalog = {"streams": [catalog_entry(name, mode) for name, mode in streams]}
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        args += ["--catalog", str(tmp_path / "catalog.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        args += ["--state", str(tmp_path / "state.json")]
    if installed_script:
        done = subprocess.run([*connector_command(), *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    else:
        done = run_command(args, cwd=tmp_path, timeout=timeout)
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return Run(messages=messages, returncode=done.returncode, stderr=done.stderr)


@pytest.fixture()
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    segments = getattr(request, "param", 25)
    with Emulator(EmulatorConfig(segments=segments, now=NOW)) as emu:
        yield emu


def config_for(emu: Emulator, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"api_key": emu.config.api_key, "base_url": emu.base_url}
    config.update(overrides)
    return config


class DeadPort:
    """A port (on ``host``, one of this machine's loopback addresses) that accepts each connection
    and closes it without a word, counting them: a request sent there is counted and fails at once
    instead of waiting for an answer."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=10)


@pytest.fixture()
def dead_port() -> Iterator[DeadPort]:
    """A port where each connection is accepted and closed without a word."""
    dead = DeadPort()
    yield dead
    dead.close()
