"""``python -m klaviyo_emulator``: every option says what it does, its flags map to EmulatorConfig,
it serves until SIGTERM, and a busy port is one sentence.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import requests

from klaviyo_emulator.tests.support import HEADERS


def test_cli_serves_until_sigterm() -> None:
    root = Path(__file__).resolve().parents[2]  # klaviyo_emulator/tests/ -> the repository
    process = subprocess.Popen(
        [sys.executable, "-m", "klaviyo_emulator", "--port", "0", "--segments", "12",
         "--api-key", "pk_cli", "--now", "2025-03-01T12:00:00", "--klaviyo-limits", "--time-scale", "60"],
        cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:") and line.endswith(", api key: pk_cli)")
        base = line.split()[3]
        assert line.split()[5] == base.rsplit(":", 1)[1] + ","  # "(port 40123, api key: ...)"
        response = requests.get(base + "/api/segments", headers={**HEADERS, "Authorization": "Klaviyo-API-Key pk_cli"},
                                timeout=10)
        assert response.status_code == 200 and len(response.json()["data"]) == 10
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_cli_flags_map_to_config() -> None:
    from klaviyo_emulator.__main__ import build_parser, config_from_args

    defaults = config_from_args(build_parser().parse_args([]))
    assert (defaults.require_offset, defaults.cap_mode, defaults.accounts_scope, defaults.week_start,
            defaults.date_times_in, defaults.created_spread, defaults.before_creation, defaults.edges) == (
        True, "elapsed", True, "monday", "company", None, "zero", "inclusive")
    config = config_from_args(build_parser().parse_args([
        "--no-require-offset", "--cap-mode", "wall", "--no-accounts-scope", "--week-start", "sunday",
        "--date-times-in", "utc", "--created-spread", "2024-01-01T00:00:00", "2024-02-01T00:00:00",
        "--before-creation", "null", "--edges", "generous", "--klaviyo-limits", "--time-scale", "60",
        "--burst-time-scale", "1"]))
    assert (config.require_offset, config.cap_mode, config.accounts_scope, config.week_start,
            config.date_times_in, config.before_creation, config.edges) == (
        False, "wall", False, "sunday", "utc", "null", "generous")
    assert config.created_spread == (datetime(2024, 1, 1), datetime(2024, 2, 1))
    assert config.limits is not None and config.limits.burst_window == pytest.approx(1.0)
    assert config.limits.steady_window == pytest.approx(1.0)


def test_cli_busy_port_is_one_sentence_and_exit_2() -> None:
    root = Path(__file__).resolve().parents[2]  # klaviyo_emulator/tests/ -> the repository
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "klaviyo_emulator", "--port", str(port)],
                                cwd=root, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (f"port {port} on 127.0.0.1 is already in use: stop what holds it, "
                                     "or pass --port 0 for a free port.")


def test_every_option_says_what_it_does() -> None:
    """Each of the parser's actions has a help text, so an option added without one fails here."""
    from klaviyo_emulator.__main__ import build_parser

    parser = build_parser()
    actions = parser._actions  # argparse keeps every option here, -h included
    assert len(actions) > 25
    silent = [action.option_strings or [action.dest] for action in actions
              if action.help is None or action.help == argparse.SUPPRESS or not action.help.strip()]
    assert silent == [], f"options without a help text: {silent}"
    # Formatting expands each %(default)s: a help text argparse cannot format fails here, not on a user's --help.
    text = parser.format_help()
    assert all(option in text for action in actions for option in action.option_strings)


def test_cli_future_timeframe_flag() -> None:
    from klaviyo_emulator.__main__ import build_parser, config_from_args

    assert config_from_args(build_parser().parse_args([])).future_timeframe == "empty"
    refusing = config_from_args(build_parser().parse_args(["--future-timeframe", "refuse"]))
    assert refusing.future_timeframe == "refuse"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--future-timeframe", "later"])
