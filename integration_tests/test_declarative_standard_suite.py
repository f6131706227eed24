"""The CDK's standard tests on the manifest-only form: ``DeclarativeSourceTestSuite`` injects
``source_klaviyo_segments/manifest.yaml`` and ``components.py`` into a ``ConcurrentDeclarativeSource``
and runs the scenarios of ``acceptance-test-config.yml`` against the emulator, beside the package's
own suite (``test_standard_suite.py``).

The suite runs in this process, where the package is installed; while it runs, importing
``source_klaviyo_segments`` fails, so the two injected files stand alone as they would in the
manifest-only runtime. ``test_manifest_only.py`` runs the same files through the
``source-declarative-manifest`` entrypoint in a subprocess.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests.declarative_sources import DeclarativeSourceTestSuite
from boltons.typeutils import classproperty

from integration_tests.conftest import NOW
from integration_tests.manifest_only import COMPONENTS, MANIFEST, PACKAGE, HidePackage, run_manifest_only, without_the_package
from klaviyo_emulator import Emulator, EmulatorConfig

ROOT = Path(__file__).resolve().parents[1]
ACCEPTANCE = ROOT / "integration_tests" / "acceptance"
# The acceptance configs name port 18765, which test_standard_suite.py's emulator holds. Under
# `make test` (pytest-xdist) the two suites, and parts of each, run at once in separate workers, so
# this one serves the same scenarios on a port of its own: one per worker, outside the ephemeral
# range the other tests' emulators draw from.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
PORT = 18780 + int(WORKER.removeprefix("gw") or 0)
BASE_URL = f"http://127.0.0.1:{PORT}"


@pytest.fixture(scope="module", autouse=True)
def klaviyo() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(segments=30, now=NOW, port=PORT)) as emulator:
        yield emulator


@pytest.fixture(scope="module", autouse=True)
def package_hidden() -> Iterator[HidePackage]:
    # create_connector sets AIRBYTE_ENABLE_UNSAFE_CODE itself; the helper restores it afterwards.
    with without_the_package() as hide:
        yield hide
    assert hide.attempts == [], f"the injected components reached for the package: {hide.attempts}"


class TestManifestOnlyStandardSuite(DeclarativeSourceTestSuite):
    """The CDK's suite as it is meant to be subclassed: it finds ``manifest.yaml`` and
    ``components.py`` at the connector root; ours live in the package directory.

    Two differences from the platform's injection, both the CDK's (declarative_sources.py,
    ``create_connector``): it puts the manifest under ``__injected_manifest`` rather than
    ``__injected_declarative_manifest``, and builds the source with trusted custom components.
    Neither changes what runs here (the manifest is passed as ``source_config``, and custom code
    is allowed either way); ``test_manifest_only.py`` injects exactly as the platform does.
    """

    @classmethod
    def get_scenarios(cls) -> list[ConnectorTestScenario]:
        """The scenarios of acceptance-test-config.yml, each config pointed at this module's port."""
        return [
            scenario.model_copy(update={"config_dict": {**scenario.get_config_dict(connector_root=ROOT, empty_if_missing=False),
                                                        "base_url": BASE_URL}})
            if scenario.config_path else scenario
            for scenario in super().get_scenarios()
        ]  # fmt: skip

    @classproperty
    def manifest_yaml_path(cls) -> Path:
        return MANIFEST

    @classproperty
    def components_py_path(cls) -> Path | None:
        return COMPONENTS

    # The image tests build the image metadata.yaml describes: the Python package's
    # (python-connector-base, language:python), not a manifest-only one, so here they would test
    # the package a second time. test_standard_suite.py runs them where a Docker engine answers.
    _PACKAGE_IMAGE = "metadata.yaml builds the package's Python image; test_standard_suite.py runs the image tests"

    @pytest.mark.skip(reason=_PACKAGE_IMAGE)
    def test_docker_image_build_and_spec(self) -> None: ...

    @pytest.mark.skip(reason=_PACKAGE_IMAGE)
    def test_docker_image_spec_backward_compatibility(self) -> None: ...

    @pytest.mark.skip(reason=_PACKAGE_IMAGE)
    def test_docker_image_build_and_check(self) -> None: ...

    @pytest.mark.skip(reason=_PACKAGE_IMAGE)
    def test_docker_image_build_and_config_matches_spec(self) -> None: ...

    @pytest.mark.skip(reason=_PACKAGE_IMAGE)
    def test_docker_image_build_and_discover(self) -> None: ...

    @pytest.mark.skip(reason=_PACKAGE_IMAGE)
    def test_docker_image_build_and_read(self) -> None: ...


def test_the_suite_runs_the_injected_text_not_the_package() -> None:
    source = TestManifestOnlyStandardSuite.create_connector(None)
    module = source.components_module
    assert module is not None and not hasattr(module, "__file__")  # built from the config's text
    assert sys.modules["source_declarative_manifest.components"] is module
    assert not any(name == PACKAGE or name.startswith(PACKAGE + ".") for name in sys.modules)


def test_an_abnormal_future_state_reads_nothing_and_keeps_the_state(klaviyo: Emulator, tmp_path: Path) -> None:
    """The acceptance config's `incremental` scenario, which the standard suite does not collect,
    through the source-declarative-manifest entrypoint."""
    config = {**json.loads((ACCEPTANCE / "config.json").read_text()), "base_url": BASE_URL}
    state = json.loads((ACCEPTANCE / "abnormal_state.json").read_text())
    klaviyo.reset_calls()
    run = run_manifest_only(tmp_path, "read", config, [("segment_series", "incremental")], state=state)
    assert run.returncode == 0 and not run.errors(), run.errors() or run.stderr[-3000:]
    assert run.hidden_imports == []
    assert run.records("segment_series") == []
    assert klaviyo.report_calls(status=None) == []
    assert run.states()[-1]["stream"]["stream_state"] == {"date_time": "2099-01-01T00:00:00"}
