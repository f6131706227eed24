"""``source-klaviyo-segments spec|check|discover|read``: the Airbyte protocol on the command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, Mapping, TypeVar

from airbyte_cdk.entrypoint import PRINT_BUFFER, AirbyteEntrypoint
from airbyte_cdk.models import (
    AirbyteMessageSerializer,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalogSerializer,
    ConnectorSpecification,
    FailureType,
)
from airbyte_cdk.sources.utils.schema_helpers import split_config
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

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


T = TypeVar("T")


class UnreadableFile(Exception):
    """A config, catalog or state file that is missing or is not what it should be."""


def load_file(kind: str, path: str, parse: Callable[[Any], T]) -> T:
    """The ``--{kind}`` file at ``path``, parsed by ``parse`` from its JSON; ``UnreadableFile`` with
    one sentence naming the file and what is wrong with it otherwise.

    >>> load_file("state", "/no/state.json", list)
    Traceback (most recent call last):
    ...
    source_klaviyo_segments.run.UnreadableFile: The state file /no/state.json does not exist: check the path given to --state.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise UnreadableFile(f"The {kind} file {path} does not exist: check the path given to --{kind}.") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        problem = f"The {kind} file {path} cannot be read ({reason}): check the path given to --{kind}."
        raise UnreadableFile(problem) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UnreadableFile(
            f"The {kind} file {path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}): fix it."
        ) from None
    try:
        return parse(document)
    except Exception:
        what = {"config": "a JSON object of settings", "catalog": "an Airbyte configured catalog",
                "state": "a list of Airbyte state messages"}[kind]  # fmt: skip
        raise UnreadableFile(f"The {kind} file {path} is valid JSON but not {what}: check what was written to it.") from None


def _config(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ValueError("not an object")
    return document


def _source(args: list[str]) -> SourceKlaviyoSegments:
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    config = load_file("config", config_path, _config) if config_path else None
    catalog = load_file("catalog", catalog_path, ConfiguredAirbyteCatalogSerializer.load) if catalog_path else None
    if state_path:
        load_file("state", state_path, lambda document: [AirbyteStateMessageSerializer.load(m) for m in document or []])
    api_key = config.get("api_key") if config else None
    if isinstance(api_key, str) and api_key.strip():
        # Both forms: the key as typed and as sent (prepare_config strips it).
        update_secrets([api_key, api_key.strip()])
    return SourceKlaviyoSegments(
        catalog=catalog,
        config=config,
        state=SourceKlaviyoSegments.read_state(state_path) if state_path else None,
        config_path=config_path,
    )


def run(args: Sequence[str] | None = None) -> None:
    """Like the CDK's ``launch``, but every line passes the secret filter on its way out: some of
    the CDK's error traces quote Klaviyo's response, and Klaviyo may echo the request's key."""
    argv = list(sys.argv[1:] if args is None else args)
    try:
        source = _source(argv)
    except UnreadableFile as problem:
        # One sentence, as a trace the platform shows, and a non-zero exit: no Python traceback.
        error = AirbyteTracedException(message=str(problem), internal_message=str(problem), failure_type=FailureType.config_error)
        print(json.dumps(AirbyteMessageSerializer.dump(error.as_airbyte_message())), flush=True)
        raise SystemExit(1) from None
    entrypoint = KlaviyoSegmentsEntrypoint(source)
    parsed_args = entrypoint.parse_args(argv)
    with PRINT_BUFFER:
        for message in entrypoint.run(parsed_args):
            print(f"{filter_secrets(message)}\n", end="")


if __name__ == "__main__":
    run()
