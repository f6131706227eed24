"""``source-klaviyo-segments spec|check|discover|read``: the Airbyte protocol on the command line."""

from __future__ import annotations

import sys
from typing import Sequence

from airbyte_cdk.entrypoint import AirbyteEntrypoint, launch

from .source import SourceKlaviyoSegments


def _source(args: Sequence[str]) -> SourceKlaviyoSegments:
    config_path = AirbyteEntrypoint.extract_config(list(args))
    catalog_path = AirbyteEntrypoint.extract_catalog(list(args))
    state_path = AirbyteEntrypoint.extract_state(list(args))
    return SourceKlaviyoSegments(
        catalog=SourceKlaviyoSegments.read_catalog(catalog_path) if catalog_path else None,
        config=SourceKlaviyoSegments.read_config(config_path) if config_path else None,
        state=SourceKlaviyoSegments.read_state(state_path) if state_path else None,
        config_path=config_path,
    )


def run(args: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    launch(_source(argv), argv)


if __name__ == "__main__":
    run()
