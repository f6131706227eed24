"""The Python package's source: ``manifest.yaml`` and ``components.py``, run by the CDK as they are.

Everything the connector decides is in those two files, which are also the manifest-only
connector. The package adds only what a manifest cannot know: the configured catalog's sync modes
(so the report-call allowance plans for the streams actually selected) and a check message without
the CDK's wrapping.
"""

import ast
import logging
import sys
from typing import Any, List, Mapping

from airbyte_cdk.models import AirbyteConnectionStatus, AirbyteStateMessage, ConfiguredAirbyteCatalog, Status
from airbyte_cdk.sources.declarative.parsers.custom_code_compiler import SDM_COMPONENTS_MODULE_NAME
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource

from . import components

# The manifest names its classes where Airbyte's manifest-only runtime puts injected code
# (`source_declarative_manifest.components.X`); the package puts its own module there, as the CDK's
# loader does for injected code (airbyte_cdk/sources/declarative/parsers/custom_code_compiler.py).
sys.modules.setdefault(SDM_COMPONENTS_MODULE_NAME, components)


def with_catalog_modes(config: Mapping[str, Any], catalog: ConfiguredAirbyteCatalog | None) -> Mapping[str, Any]:
    """``config`` telling ``PrepareSyncConfig`` how each selected stream is read: the CDK hands the
    configured catalog to no component, and the allowance must know which streams can resume."""
    if not catalog or not catalog.streams:
        return config
    modes = {configured.stream.name: configured.sync_mode.value for configured in catalog.streams}
    return {**config, components.CATALOG_MODES: modes}


def unwrapped_check_message(message: str | None) -> str | None:
    """The sentence inside the CDK's check message: ``CheckStream`` prefixes "Stream X is not
    available: " and the source quotes the whole (``repr``).

    >>> unwrapped_check_message("'Stream segment_series is not available: Klaviyo did not accept the API key (401).'")
    'Klaviyo did not accept the API key (401).'
    """
    if not message:
        return message
    try:
        text = ast.literal_eval(message)
    except (ValueError, SyntaxError):
        text = message
    if not isinstance(text, str):
        return message
    _, separator, sentence = text.partition(" is not available: ")
    return sentence if separator and text.startswith("Stream ") else text


class SourceKlaviyoSegments(YamlDeclarativeSource):
    def __init__(
        self,
        catalog: ConfiguredAirbyteCatalog | None = None,
        config: Mapping[str, Any] | None = None,
        state: List[AirbyteStateMessage] | None = None,
        config_path: str | None = None,
    ) -> None:
        super().__init__(
            path_to_yaml="manifest.yaml",
            catalog=catalog,
            config=with_catalog_modes(config, catalog) if config else config,
            state=state,
            config_path=config_path,
        )

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        status = super().check(logger, config)
        if status.status == Status.FAILED:
            status.message = unwrapped_check_message(status.message)
        return status
