"""``source-klaviyo-segments spec|check|discover|read``: the Airbyte protocol on the command line,
and ``plan``: what a sync will cost, without a report call."""

import argparse
import datetime as dt
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, TypeVar

from airbyte_cdk.entrypoint import PRINT_BUFFER, AirbyteEntrypoint
from airbyte_cdk.models import (
    AirbyteLogMessage,
    AirbyteMessage,
    AirbyteMessageSerializer,
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalogSerializer,
    ConnectorSpecification,
    FailureType,
    Level,
    Type,
)
from airbyte_cdk.sources.utils.schema_helpers import split_config
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .components import (
    CATALOG_MODES,
    DEFAULT_CATALOG_MODES,
    DerivedSettings,
    ReportPlan,
    company_now,
    config_problem,
    describe_plan,
    missing_segment_ids,
    no_segment_found,
    plan_read,
    report_streams,
)
from .source import SourceKlaviyoSegments

# The easternmost UTC offset: before the account's timezone is known, "now" may be this far ahead of UTC.
EARLIEST_OFFSET = dt.timedelta(hours=14)


def refuse_unusable_config(config: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    """Raises ``config_problem``'s one sentence as a config error, if it has one, judged at the latest
    now any company may have (a start_date later today may be in the past east of UTC): the
    manifest judges it again at the company's now once the account's timezone is known."""
    problem = config_problem(config, spec, lambda: company_now(None) + EARLIEST_OFFSET)
    if problem:
        raise AirbyteTracedException(message=problem, internal_message=problem, failure_type=FailureType.config_error)


class KlaviyoSegmentsEntrypoint(AirbyteEntrypoint):
    """The CDK's entrypoint, except that ``check``, ``discover`` and ``read`` first refuse a config
    with ``config_problem``'s one sentence naming the field and the fix; the spec's JSON-schema
    check stays behind it, but its messages quote regexes and omit the field."""

    def __init__(self, source: SourceKlaviyoSegments, raw_config: Mapping[str, Any] | None = None) -> None:
        super().__init__(source)
        self.raw_config = raw_config

    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Mapping[str, Any]) -> None:
        connector_config, _ = split_config(config)
        refuse_unusable_config(connector_config, source_spec.connectionSpecification)
        AirbyteEntrypoint.validate_connection(source_spec, config)

    def read(self, source_spec: ConnectorSpecification, config: Any, catalog: Any, state: list[Any]) -> Iterable[AirbyteMessage]:
        # Inside the entrypoint's run, whose temporary folder holds the request cache: the plan's
        # segment listing is the one the streams then read from the cache.
        if self.raw_config is not None and isinstance(self.source, SourceKlaviyoSegments):
            _log_plan(self.source, self.raw_config, state)
        yield from super().read(source_spec, config, catalog, state)


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


def _source(
    args: list[str],
) -> tuple[SourceKlaviyoSegments, dict[str, Any] | None, list[AirbyteStateMessage] | None]:
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    config = load_file("config", config_path, _config) if config_path else None
    catalog = load_file("catalog", catalog_path, ConfiguredAirbyteCatalogSerializer.load) if catalog_path else None
    if state_path:
        load_file("state", state_path, lambda document: [AirbyteStateMessageSerializer.load(m) for m in document or []])
    api_key = config.get("api_key") if config else None
    if isinstance(api_key, str) and api_key.strip():
        # The manifest asks Klaviyo for the account's timezone while the source is built, before the
        # CDK's entrypoint registers the key with its secret filter (entrypoint.py,
        # set_up_secret_filter): registered here, the key is masked from the first line on.
        update_secrets([api_key.strip()])
    state = SourceKlaviyoSegments.read_state(state_path) if state_path else None
    source = SourceKlaviyoSegments(catalog=catalog, config=config, state=state, config_path=config_path)
    return source, config, state


REPORT_STREAMS = ("segment_values", "segment_series")


class NoPlan(Exception):
    """Why a plan cannot be made, in one sentence; ``refused`` when the sync could not run either
    (a config problem, a key Klaviyo refuses)."""

    def __init__(self, sentence: str, refused: bool) -> None:
        super().__init__(sentence)
        self.refused = refused


@contextmanager
def _quiet_http_errors() -> Iterator[None]:
    """The CDK's HTTP client logs a failed request with its headers and bodies; the plan says what
    went wrong in one sentence instead."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def plan_of_read(
    source: SourceKlaviyoSegments, raw_config: Mapping[str, Any], state: list[AirbyteStateMessage] | None
) -> tuple[list[ReportPlan], Mapping[str, Any], int]:
    """The ``ReportPlan``s of the report streams this source will read, made by ``plan_read`` as
    each stream's ``SegmentBatchRetriever`` makes them, after listing the segments once through the
    manifest's cached listing (``GET /api/segments``, never the report quota); also the prepared
    config and how many segments were listed."""
    with tempfile.TemporaryDirectory() as temp_dir:
        config = source.configure(raw_config, temp_dir)  # as the entrypoint prepares it
    derived = DerivedSettings.of(config)
    if derived.problem:
        raise NoPlan(derived.problem, refused=True)
    manifest = source.resolved_manifest["definitions"]
    try:
        with _quiet_http_errors():
            segments_stream = next(stream for stream in source.streams(config) if stream.name == "segments")
            segments = [
                (str(record.data["id"]), record.data.get("created"))
                for partition in segments_stream.generate_partitions()
                for record in partition.read()
            ]
    except AirbyteTracedException as error:
        sentence = error.message or "Klaviyo refused to list the segments."
        raise NoPlan(sentence, refused=error.failure_type == FailureType.config_error) from None
    except Exception as error:
        raise NoPlan(f"Could not list segments at {config.get('base_url')} ({type(error).__name__}).", refused=False) from None
    missing = missing_segment_ids(config, segments)
    if missing and not segments:
        raise NoPlan(no_segment_found(missing), refused=True)
    plans = plan_read(
        report_streams(manifest["report_streams"]),
        config.get(CATALOG_MODES) or DEFAULT_CATALOG_MODES,
        derived,
        config["interval"],
        segments,
        int(manifest["segments_per_report"]),
        config.get("max_report_requests"),
        derived.resumed_start(_saved_series_cursor(state)),
    )
    return plans, config, len(segments)


def plan(source: SourceKlaviyoSegments, raw_config: Mapping[str, Any], state: list[AirbyteStateMessage] | None) -> list[str]:
    """The lines of the plan (``plan_of_read``) for a person."""
    plans, config, segments = plan_of_read(source, raw_config, state)
    timezone = DerivedSettings.of(config).timezone or (
        "unknown (the key lacks accounts:read): windows keep a daylight-saving margin"
    )
    return [f"Plan: {segments:,} segments; the account's timezone is {timezone}."] + [
        f"Plan: {line}" for line in describe_plan(plans, config.get("max_report_requests"))
    ]


def _saved_series_cursor(state: list[AirbyteStateMessage] | None) -> str | None:
    for message in state or []:
        stream = message.stream
        if stream and stream.stream_descriptor.name == "segment_series" and stream.stream_state:
            cursor = getattr(stream.stream_state, "date_time", None)
            return cursor if isinstance(cursor, str) else None
    return None


def _print_message(message: AirbyteMessage) -> None:
    print(filter_secrets(json.dumps(AirbyteMessageSerializer.dump(message))), flush=True)


def _config_error(sentence: str) -> AirbyteMessage:
    error = AirbyteTracedException(message=sentence, internal_message=sentence, failure_type=FailureType.config_error)
    return error.as_airbyte_message()


def run_plan(argv: list[str]) -> None:
    """``plan --config C [--catalog CAT] [--state S]``: the plan, printed for a person."""
    parser = argparse.ArgumentParser(prog="source-klaviyo-segments plan", description="What a sync will cost.")
    parser.add_argument("--config", required=True)
    parser.add_argument("--catalog")
    parser.add_argument("--state")
    args = parser.parse_args(argv)
    command = ["read", "--config", args.config]
    command += ["--catalog", args.catalog] if args.catalog else []
    command += ["--state", args.state] if args.state else []
    try:
        with _quiet_http_errors():  # a person reads the plan, not the CDK's log lines
            source, config, state = _source(command)
            lines = plan(source, config or {}, state)
    except (UnreadableFile, NoPlan) as problem:
        print(filter_secrets(str(problem)), file=sys.stderr)
        raise SystemExit(1) from None
    for line in lines:
        print(filter_secrets(line.removeprefix("Plan: ")))


def run(args: Sequence[str] | None = None) -> None:
    """Like the CDK's ``launch``, but every line passes the secret filter on its way out (some of
    the CDK's error traces quote Klaviyo's response, and Klaviyo may echo the request's key), and a
    ``read`` logs its plan first, or stops at once with the one sentence that explains why it cannot run."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["plan"]:
        run_plan(argv[1:])
        return
    try:
        source, config, state = _source(argv)
    except UnreadableFile as problem:
        # One sentence, as a trace the platform shows, and a non-zero exit: no Python traceback.
        _print_message(_config_error(str(problem)))
        raise SystemExit(1) from None
    entrypoint = KlaviyoSegmentsEntrypoint(source, config)
    parsed_args = entrypoint.parse_args(argv)
    with PRINT_BUFFER:
        for message in entrypoint.run(parsed_args):
            print(f"{filter_secrets(message)}\n", end="")


def _log_plan(source: SourceKlaviyoSegments, config: Mapping[str, Any], state: list[AirbyteStateMessage] | None) -> None:
    """Logs what the read will cost in all before the first report call (each report stream logs
    its own plan line as it starts); a key Klaviyo refuses, or ``segment_ids`` none of which is in
    the account, ends the sync here, with one sentence and no report call."""
    try:
        refuse_unusable_config(config, source.spec(logging.getLogger("airbyte")).connectionSpecification)
        plans, prepared, segments = plan_of_read(source, config, state)
    except AirbyteTracedException:
        return  # the entrypoint refuses the config in its words
    except NoPlan as problem:
        if problem.refused:
            _print_message(_config_error(str(problem)))
            raise SystemExit(1) from None
        lines = [f"No plan: {problem} The sync goes on."]
    else:
        totals = describe_plan(plans, prepared.get("max_report_requests"))[len(plans) :]
        lines = [f"Plan: {segments:,} segments. {' '.join(totals)}"]
    for line in lines:
        _print_message(AirbyteMessage(type=Type.LOG, log=AirbyteLogMessage(level=Level.INFO, message=line)))


if __name__ == "__main__":
    run()
