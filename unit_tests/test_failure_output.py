"""A failure mid-read ends the stream with its one sentence as the error trace's message, the same
in every runtime (the CDK's entrypoint prints it; it logs a failed stream with its traceback, a bug
or not), and a bug keeps its traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import requests_mock
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_klaviyo_segments.run import run
from unit_tests import klaviyo_mock as km
from unit_tests.klaviyo_mock import FakeKlaviyo

SERIES_URL = f"{km.BASE_URL}/api/segment-series-reports"


def read_with_series_answering(tmp_path: Path, capfd: pytest.CaptureFixture[str], **answer: object) -> str:
    config_path, catalog_path = tmp_path / "config.json", tmp_path / "catalog.json"
    config_path.write_text(json.dumps(km.config()))
    catalog = km.catalog("segment_series", SyncMode.incremental)
    catalog_path.write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog)))
    with requests_mock.Mocker() as mocker:
        FakeKlaviyo(["SEG001", "SEG002"]).install(mocker)
        mocker.post(SERIES_URL, **answer)  # type: ignore[arg-type]
        # The CDK's entrypoint ends a sync whose stream failed by raising: its hook prints it, exit 1.
        with pytest.raises(AirbyteTracedException):
            run(["read", "--config", str(config_path), "--catalog", str(catalog_path)])
    captured = capfd.readouterr()  # the CDK logs to the stdout it was set up with
    return captured.out + captured.err


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def test_a_report_call_that_gets_no_answer_mid_read_ends_the_stream_in_one_sentence(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    printed = read_with_series_answering(tmp_path, capfd, exc=requests.exceptions.ConnectionError("refused"))
    traces = [json.loads(line)["trace"] for line in printed.splitlines() if line.startswith('{"type":"TRACE"')]
    errors = [trace["error"] for trace in traces if trace["type"] == "ERROR"]
    assert [error["message"] for error in errors] == [
        f"Nothing answered at {km.BASE_URL} in 6 attempts (ConnectionError): check `base_url` and the network."
    ]
    assert errors[0]["failure_type"] == "transient_error"


def test_a_bug_keeps_its_traceback(tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise KeyError("a bug in the connector")

    monkeypatch.setattr("source_klaviyo_segments.components.SeriesRowExtractor.extract_records", broken)
    printed = read_with_series_answering(tmp_path, capfd, json={"data": {}})
    assert "Traceback" in printed and "KeyError" in printed
