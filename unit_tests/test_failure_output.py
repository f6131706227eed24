"""A failure that is no bug of the connector is said without a Python traceback, even when a stream
hits it in the middle of a read: the CDK logs a failed stream with its traceback and puts it in the
error trace's `stack_trace`; `run` keeps both for bugs only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import requests_mock
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, SyncMode

from source_klaviyo_segments.run import run
from unit_tests import klaviyo_mock as km
from unit_tests.klaviyo_mock import FakeKlaviyo

SERIES_URL = f"{km.BASE_URL}/api/segment-series-reports"


def read_with_series_answering(tmp_path: Path, capfd: pytest.CaptureFixture[str], **answer: object) -> tuple[str, int]:
    config_path, catalog_path = tmp_path / "config.json", tmp_path / "catalog.json"
    config_path.write_text(json.dumps(km.config()))
    catalog = km.catalog("segment_series", SyncMode.incremental)
    catalog_path.write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog)))
    with requests_mock.Mocker() as mocker:
        FakeKlaviyo(["SEG001", "SEG002"]).install(mocker)
        mocker.post(SERIES_URL, **answer)  # type: ignore[arg-type]
        with pytest.raises(SystemExit) as exited:
            run(["read", "--config", str(config_path), "--catalog", str(catalog_path)])
    captured = capfd.readouterr()  # the CDK logs to the stdout it was set up with
    return captured.out + captured.err, int(str(exited.value.code))


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def test_a_report_call_that_gets_no_answer_mid_read_ends_in_one_sentence_without_a_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    printed, code = read_with_series_answering(tmp_path, capfd, exc=requests.exceptions.ConnectionError("refused"))
    assert code == 1
    traces = [json.loads(line)["trace"] for line in printed.splitlines() if line.startswith('{"type":"TRACE"')]
    errors = [trace["error"] for trace in traces if trace["type"] == "ERROR"]
    assert [error["message"] for error in errors] == [
        f"Nothing answered at {km.BASE_URL} in 6 attempts (ConnectionError): check `base_url` and the network."
    ]
    assert errors[0]["failure_type"] == "transient_error"
    assert "Traceback" not in printed and 'File \\"' not in printed


def test_a_bug_keeps_its_traceback(tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise KeyError("a bug in the connector")

    monkeypatch.setattr("source_klaviyo_segments.components.SeriesRowExtractor.extract_records", broken)
    printed, code = read_with_series_answering(tmp_path, capfd, json={"data": {}})
    assert code == 1
    assert "Traceback" in printed and "KeyError" in printed
