"""The Python package's source: ``manifest.yaml`` and ``components.py``, run by the CDK as they are.

Everything the connector decides is in those two files, which are also the manifest-only
connector: this class only finds the manifest in the package and its components where the
manifest names them.
"""

import sys
from typing import Any, List, Mapping

from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog
from airbyte_cdk.sources.declarative.parsers.custom_code_compiler import SDM_COMPONENTS_MODULE_NAME
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource

from . import components

# The manifest names its classes where Airbyte's manifest-only runtime puts injected code
# (`source_declarative_manifest.components.X`); the package puts its own module there, as the CDK's
# loader does for injected code (airbyte_cdk/sources/declarative/parsers/custom_code_compiler.py).
sys.modules.setdefault(SDM_COMPONENTS_MODULE_NAME, components)


class SourceKlaviyoSegments(YamlDeclarativeSource):
    def __init__(
        self,
        catalog: ConfiguredAirbyteCatalog | None = None,
        config: Mapping[str, Any] | None = None,
        state: List[AirbyteStateMessage] | None = None,
        config_path: str | None = None,
    ) -> None:
        super().__init__(path_to_yaml="manifest.yaml", catalog=catalog, config=config, state=state, config_path=config_path)
