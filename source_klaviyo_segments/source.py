"""The source: the manifest, run by the CDK, with the config prepared and refused in one place."""

from __future__ import annotations

import logging
from typing import Any, Iterator, List, Mapping

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    FailureType,
    Status,
)
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .config import config_problem, prepare_config


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
            config=prepare_config(config) if config else config,
            state=state,
            config_path=config_path,
        )

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        problem = config_problem(self._config or config)
        if problem:
            return AirbyteConnectionStatus(status=Status.FAILED, message=problem)
        return super().check(logger, config)

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: List[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        problem = config_problem(self._config or config)
        if problem:
            raise AirbyteTracedException(
                message=problem, internal_message=problem, failure_type=FailureType.config_error
            )
        yield from super().read(logger, config, catalog, state)
