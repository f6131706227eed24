"""Airbyte's own standard tests (the CDK's `SourceTestSuiteBase`), without Docker, against the
emulator: the scenarios come from `acceptance-test-config.yml`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from airbyte_cdk.test.state_builder import StateBuilder

from integration_tests.conftest import NOW
from klaviyo_emulator import Emulator, EmulatorConfig
from source_klaviyo_segments import SourceKlaviyoSegments

ROOT = Path(__file__).resolve().parents[1]
ACCEPTANCE = ROOT / "integration_tests" / "acceptance"
PORT = 18765  # what the acceptance configs name


@pytest.fixture(scope="module", autouse=True)
def klaviyo() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(segments=30, now=NOW, port=PORT)) as emulator:
        yield emulator


class TestKlaviyoSegmentsStandardSuite(SourceTestSuiteBase):
    @classmethod
    def create_connector(cls, scenario: ConnectorTestScenario | None) -> SourceKlaviyoSegments:
        # A CDK 7 declarative source is built with its config.
        config = scenario.get_config_dict(connector_root=ROOT, empty_if_missing=True) if scenario else {}
        return SourceKlaviyoSegments(config=config or None)


def test_an_abnormal_future_state_reads_nothing_and_keeps_the_state(klaviyo: Emulator) -> None:
    """The acceptance config's `incremental` scenario, which the standard suite does not collect."""
    config = json.loads((ACCEPTANCE / "config.json").read_text())
    saved = json.loads((ACCEPTANCE / "abnormal_state.json").read_text())[0]["stream"]["stream_state"]
    state = StateBuilder().with_stream_state("segment_series", saved).build()
    catalog = CatalogBuilder().with_stream("segment_series", SyncMode.incremental).build()
    klaviyo.reset_calls()
    output = read(SourceKlaviyoSegments(catalog=catalog, config=config, state=state), config, catalog, state)
    assert not output.errors
    assert output.records == []
    assert klaviyo.report_calls(status=None) == []
    assert output.most_recent_state.stream_state.__dict__ == {"date_time": "2099-01-01T00:00:00"}
