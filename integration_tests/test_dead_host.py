"""A dead host is said while it happens: against a port that accepts each connection and closes it
without a word, `read`, `check` and `plan` each say one line per retry (the host, the attempt out of
the manifest's `attempts_without_answer`, the wait), as an Airbyte LOG message in `read` and `check`
and as a plain line on stderr in `plan`, which keeps the CDK's other log lines out of a person's
output. `read` and `plan` run in this process with the CDK's sleeps counted, not slept; `check` runs
as a command and waits its real few seconds."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from airbyte_cdk.sources.declarative.interpolation import InterpolatedString
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from integration_tests.conftest import DeadPort
from integration_tests.connector_process import run_command
from source_klaviyo_segments.components import RETRY_LOG
from source_klaviyo_segments.run import run
from testkit import catalog_entry

MANIFEST = yaml.safe_load((Path(__file__).parents[1] / "source_klaviyo_segments" / "manifest.yaml").read_text())
ALL_STREAMS = [("segments", "full_refresh"), ("segment_values", "full_refresh"), ("segment_series", "incremental")]
LINE = re.compile(
    r"^Nothing answered at (?P<host>\S+) \((?P<error>\w+)\); trying again in (?P<wait>\d+) s "
    r"\(attempt (?P<attempt>\d+) of (?P<of>\d+)\)\.$"
)


def attempts_without_answer(requester: str, config: dict[str, Any]) -> int:
    """What the manifest allows a request of ``requester`` that gets no answer."""
    handler = MANIFEST["definitions"][requester]["error_handler"]
    (backoff,) = [s for s in handler["backoff_strategies"] if s["class_name"].endswith(".AnswerAwareBackoff")]
    return int(InterpolatedString.create(str(backoff["attempts_without_answer"]), parameters={}).eval(config))


def expected_lines(host: str, checking: bool) -> list[str]:
    """One line before each retry: the account's timezone (asked while the source is built, with its
    own attempts), then the first segment listing, which the CDK retries after 1, 2, 4, ... s.
    Every later request to the host stops at its first attempt, without a retry."""
    lines = []
    for requester, config in (("account_requester", {}), ("base_requester", {"_checking": True} if checking else {})):
        attempts = attempts_without_answer(requester, config)
        lines += [
            f"Nothing answered at {host} (ConnectionError); trying again in {2 ** (attempt - 2)} s "
            f"(attempt {attempt} of {attempts})."
            for attempt in range(2, attempts + 1)
        ]
    return lines


def write_files(tmp_path: Path, dead: DeadPort) -> tuple[dict[str, Any], Path, Path]:
    config = {"api_key": "pk_never_printed_key", "base_url": f"http://127.0.0.1:{dead.port}",
              "start_date": "2025-01-01", "end_date": "2025-03-01"}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps({"streams": [catalog_entry(n, m) for n, m in ALL_STREAMS]}))
    return config, tmp_path / "config.json", tmp_path / "catalog.json"


def logged(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line)["log"] for line in stdout.splitlines() if line.startswith('{"type":"LOG"')]


def test_a_read_says_each_retry_at_a_dead_host_as_it_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], dead_port: DeadPort
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    config, config_path, catalog_path = write_files(tmp_path, dead_port)
    with pytest.raises(AirbyteTracedException):
        run(["read", "--config", str(config_path), "--catalog", str(catalog_path)])
    out, err = capfd.readouterr()
    said = [log for log in logged(out) if LINE.match(log["message"])]
    host = config["base_url"]
    assert [log["message"] for log in said] == expected_lines(host, checking=False)
    assert {log["level"] for log in said} == {"WARN"}
    # Each line names the wait the CDK then sleeps, in order (nothing else sleeps a second or more).
    assert [float(LINE.match(log["message"])["wait"]) for log in said] == [s for s in slept if s >= 1]  # type: ignore[index]
    assert not any("Rate limit" in log["message"] for log in logged(out))
    assert config["api_key"] not in out + err


def test_a_check_says_each_retry_at_a_dead_host_as_it_waits(tmp_path: Path, dead_port: DeadPort) -> None:
    config, config_path, _ = write_files(tmp_path, dead_port)
    done = run_command(["check", "--config", str(config_path)], cwd=tmp_path)  # waits its real 1 + 1 + 2 s
    assert done.returncode == 0
    said = [log for log in logged(done.stdout) if LINE.match(log["message"])]
    assert [log["message"] for log in said] == expected_lines(config["base_url"], checking=True)
    assert {log["level"] for log in said} == {"WARN"}
    statuses = [json.loads(line)["connectionStatus"] for line in done.stdout.splitlines() if "CONNECTION_STATUS" in line]
    assert statuses[0]["status"] == "FAILED" and "Nothing answered at" in statuses[0]["message"]


def test_plan_says_each_retry_on_stderr_and_nothing_else_of_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], dead_port: DeadPort
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    config, config_path, _ = write_files(tmp_path, dead_port)
    root_handlers = logging.getLogger().handlers[:]
    with pytest.raises(SystemExit) as stopped:
        run(["plan", "--config", str(config_path)])
    assert stopped.value.code == 1
    out, err = capfd.readouterr()
    host = config["base_url"]
    attempts = attempts_without_answer("base_requester", {})  # plan lists the segments as a read does
    assert out == ""
    assert err.splitlines() == [
        *expected_lines(host, checking=False),
        f"Nothing answered at {host} in {attempts} attempts (ConnectionError): check `base_url` and the network.",
    ]  # one line each: no Airbyte message, no line of the CDK's own log
    assert [float(LINE.match(line)["wait"]) for line in err.splitlines()[:-1]] == [s for s in slept if s >= 1]  # type: ignore[index]
    # The routing is plan's alone, and undone after it.
    assert logging.getLogger().handlers == root_handlers
    assert RETRY_LOG.propagate and RETRY_LOG.handlers == []
