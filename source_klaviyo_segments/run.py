"""``source-klaviyo-segments spec|check|discover|read``: the Airbyte protocol on the command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Mapping

from airbyte_cdk.entrypoint import PRINT_BUFFER, AirbyteEntrypoint
from airbyte_cdk.models import ConnectorSpecification
from airbyte_cdk.sources.utils.schema_helpers import split_config
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, update_secrets

from .source import SourceKlaviyoSegments, refuse_unusable_config


class KlaviyoSegmentsEntrypoint(AirbyteEntrypoint):
    """The CDK's entrypoint, except that ``check``, ``discover`` and ``read`` first refuse a config
    with ``config_problem``'s one sentence naming the field and the fix; the spec's JSON-schema
    check stays behind it, but its messages quote regexes and omit the field."""

    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Mapping[str, Any]) -> None:
        connector_config, _ = split_config(config)
        refuse_unusable_config(connector_config)
        AirbyteEntrypoint.validate_connection(source_spec, config)


def _source(args: list[str]) -> SourceKlaviyoSegments:
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    config = SourceKlaviyoSegments.read_config(config_path) if config_path else None
    api_key = config.get("api_key") if config else None
    if isinstance(api_key, str) and api_key.strip():
        # Both forms: the key as typed and as sent (prepare_config strips it).
        update_secrets([api_key, api_key.strip()])
    return SourceKlaviyoSegments(
        catalog=SourceKlaviyoSegments.read_catalog(catalog_path) if catalog_path else None,
        config=config,
        state=SourceKlaviyoSegments.read_state(state_path) if state_path else None,
        config_path=config_path,
    )


def run(args: Sequence[str] | None = None) -> None:
    """Like the CDK's ``launch``, but every line passes the secret filter on its way out: some of
    the CDK's error traces quote Klaviyo's response, and Klaviyo may echo the request's key."""
    argv = list(sys.argv[1:] if args is None else args)
    entrypoint = KlaviyoSegmentsEntrypoint(_source(argv))
    parsed_args = entrypoint.parse_args(argv)
    with PRINT_BUFFER:
        for message in entrypoint.run(parsed_args):
            print(f"{filter_secrets(message)}\n", end="")


if __name__ == "__main__":
    run()
