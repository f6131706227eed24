"""``source-klaviyo-segments spec|check|discover|read``: the Airbyte protocol on the command line,
and ``plan``: what a sync will cost, without a report call.

Every command refuses what a person can fix (a file, a config, a catalog, the account's segment
ids, a ``base_url`` where nothing answers) the same way: one sentence as one Airbyte error trace
(``plan``: one line on stderr), no Python traceback, and exit code 1. ``check`` says a refused
config in a FAILED connection status and exits 0, as the Airbyte protocol wants. A bug in the
connector itself keeps its traceback: that is what a bug report needs.
"""

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
    AirbyteConnectionStatus,
    AirbyteLogMessage,
    AirbyteMessage,
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    ConnectorSpecification,
    FailureType,
    Level,
    Status,
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
    missing_segments_warning,
    no_segment_found,
    plan_read,
    report_streams,
    unique_segments,
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


class Refusal(Exception):
    """What stops a command before it does anything, in one sentence a person can act on;
    ``failure_type`` is how the Airbyte platform files it (``config_error``: the user must fix it)."""

    def __init__(self, sentence: str, failure_type: FailureType = FailureType.config_error) -> None:
        super().__init__(sentence)
        self.failure_type = failure_type


class UnreadableFile(Refusal):
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
    config_path: str | None, catalog_path: str | None = None, state_path: str | None = None
) -> tuple[SourceKlaviyoSegments, dict[str, Any] | None, list[AirbyteStateMessage] | None]:
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
    if catalog is not None:
        refuse_unknown_streams(source, catalog)
    return source, config, state


def refuse_unknown_streams(source: SourceKlaviyoSegments, catalog: ConfiguredAirbyteCatalog) -> None:
    """A catalog that selects a stream this connector does not have is refused, naming it and the
    streams there are (the CDK would skip it without a word)."""
    known = [str(stream["name"]) for stream in source.resolved_manifest["streams"]]
    unknown = [configured.stream.name for configured in catalog.streams if configured.stream.name not in known]
    if unknown:
        names = ", ".join(f"`{name}`" for name in unknown)
        raise Refusal(
            f"The catalog selects {names}, which this connector does not have: its streams are "
            f"{', '.join(known)} (run discover to see them)."
        )




class NoPlan(Exception):
    """Why a plan cannot be made, in one sentence; ``failure_type`` is set when the sync could not
    run either (a config problem, a key Klaviyo refuses, no segment to read, nothing answering),
    and is ``None`` when only the plan is missing."""

    def __init__(self, sentence: str, failure_type: FailureType | None) -> None:
        super().__init__(sentence)
        self.failure_type = failure_type


class NothingToRead(NoPlan):
    """The account has no segment to report on: a read of it is empty (and fine), a plan of it is
    refused."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence, FailureType.config_error)


def segment_id_lines(config: Mapping[str, Any], segments: Sequence[tuple[str, Any]]) -> list[str]:
    """The warning about configured ``segment_ids`` missing from the account (the read skips them);
    ``NoPlan`` when none of them is there, and ``NothingToRead`` when the account has no segment.

    >>> segment_id_lines({"segment_ids": ["A", "B"]}, [("A", None)])
    ['B: not in the Klaviyo account, so skipped; remove it from `segment_ids`.']
    >>> segment_id_lines({"segment_ids": ["X", "Y"]}, [])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    source_klaviyo_segments.run.NoPlan: None of the `segment_ids` is in the Klaviyo account (X, Y): fix them, ...
    """
    missing = missing_segment_ids(config, segments)
    if missing and not segments:
        raise NoPlan(no_segment_found(missing), FailureType.config_error)
    if not segments:
        raise NothingToRead("The Klaviyo account has no segments yet: there is nothing to report on.")
    return [missing_segments_warning(missing)] if missing else []


@contextmanager
def _quiet_http_errors() -> Iterator[None]:
    """The CDK's HTTP client logs a failed request with its headers and bodies; the plan says what
    went wrong in one sentence instead. Nested, logging stays off until the outermost ends:

    >>> with _quiet_http_errors():
    ...     with _quiet_http_errors():
    ...         pass
    ...     logging.getLogger("airbyte").isEnabledFor(logging.CRITICAL)
    False
    """
    previous = logging.root.manager.disable  # nested uses keep logging off until the outermost ends
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def plan_of_read(
    source: SourceKlaviyoSegments, raw_config: Mapping[str, Any], state: list[AirbyteStateMessage] | None
) -> tuple[list[ReportPlan], Mapping[str, Any], int, list[str]]:
    """The ``ReportPlan``s of the report streams this source will read, made by ``plan_read`` as
    each stream's ``SegmentBatchRetriever`` makes them, after listing the segments once through the
    manifest's cached listing (``GET /api/segments``, never the report quota); also the prepared
    config, how many segments were listed, and the warning about missing ``segment_ids``."""
    with tempfile.TemporaryDirectory() as temp_dir:
        config = source.configure(raw_config, temp_dir)  # as the entrypoint prepares it
    derived = DerivedSettings.of(config)
    if derived.problem:
        raise NoPlan(derived.problem, FailureType.config_error)
    manifest = source.resolved_manifest["definitions"]
    try:
        with _quiet_http_errors():
            segments_stream = next(stream for stream in source.streams(config) if stream.name == "segments")
            segments = unique_segments(
                (str(record.data["id"]), record.data.get("created"))
                for partition in segments_stream.generate_partitions()
                for record in partition.read()
            )
    except AirbyteTracedException as error:
        sentence = error.message or "Klaviyo refused to list the segments."
        raise NoPlan(sentence, error.failure_type or FailureType.system_error) from None
    except Exception as error:
        raise NoPlan(f"Could not list segments at {config.get('base_url')} ({type(error).__name__}).", None) from None
    warnings = segment_id_lines(raw_config, segments)
    streams = report_streams(manifest["report_streams"])
    resumable = {stream.name for stream in streams if stream.resumable}
    plans = plan_read(
        streams,
        config.get(CATALOG_MODES) or DEFAULT_CATALOG_MODES,
        derived,
        config["interval"],
        segments,
        int(manifest["segments_per_report"]),
        config.get("max_report_requests"),
        derived.resumed_start(_saved_series_cursor(state, resumable)),
    )
    return plans, config, len(segments), warnings


def plan(source: SourceKlaviyoSegments, raw_config: Mapping[str, Any], state: list[AirbyteStateMessage] | None) -> list[str]:
    """The lines of the plan (``plan_of_read``) for a person."""
    plans, config, segments, warnings = plan_of_read(source, raw_config, state)
    timezone = DerivedSettings.of(config).timezone or (
        "unknown (the key lacks accounts:read): windows keep a daylight-saving margin"
    )
    lines = [*warnings, f"{segments:,} segment{'s' if segments != 1 else ''}; the account's timezone is {timezone}."]
    return [f"Plan: {line}" for line in lines] + [
        f"Plan: {line}" for line in describe_plan(plans, config.get("max_report_requests"))
    ]


def _saved_series_cursor(state: list[AirbyteStateMessage] | None, resumable: set[str]) -> str | None:
    """The saved cursor of the stream that resumes from its state (the manifest's ``report_streams``)."""
    for message in state or []:
        stream = message.stream
        if stream and stream.stream_descriptor.name in resumable and stream.stream_state:
            cursor = getattr(stream.stream_state, "date_time", None)
            return cursor if isinstance(cursor, str) else None
    return None


def _print_message(message: AirbyteMessage) -> None:
    """Prints ``message`` as the CDK prints its own (compact JSON), through the secret filter."""
    print(filter_secrets(AirbyteEntrypoint.airbyte_message_to_string(message)), flush=True)


def _error_trace(sentence: str, failure_type: FailureType) -> AirbyteMessage:
    """One sentence as an Airbyte error trace, without a stack trace: it is not a bug."""
    message = AirbyteTracedException(message=sentence, internal_message=sentence, failure_type=failure_type).as_airbyte_message()
    if message.trace and message.trace.error:
        message.trace.error.stack_trace = None
    return message


COMMANDS = {
    "spec": "outputs the JSON configuration specification",
    "check": "checks the config can be used to connect (a failed check still exits 0: read its status)",
    "discover": "outputs a catalog describing the source's streams",
    "read": "reads the streams the catalog selects and outputs messages to stdout",
    "plan": "prints what a read would cost, for a person: segments, windows, report calls, time, "
    "share of the daily quota; makes no report call",
}


def build_parser() -> argparse.ArgumentParser:
    """The command line: the CDK's four Airbyte commands (with its arguments) and ``plan``."""
    parser = argparse.ArgumentParser(
        prog="source-klaviyo-segments",
        description="Airbyte source for Klaviyo segment growth reports (segment values and series).",
    )
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", help="enables detailed debug logs related to the sync")
    for name, help_text in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text, parents=[debug])
        if name == "spec":
            continue
        command.add_argument("--config", required=True, help="path to the JSON configuration file")
        if name in ("read", "plan"):
            optional = "" if name == "read" else " (default: every stream)"
            command.add_argument("--catalog", required=name == "read", help=f"path to the configured catalog{optional}")
            command.add_argument("--state", help="path to the state of the last read, to read on from it")
    return parser


def run_plan(args: argparse.Namespace) -> None:
    """``plan --config C [--catalog CAT] [--state S]``: the plan, printed for a person. What stops it
    (an account with nothing to report on, too) is ``run``'s one line on stderr and exit code 1."""
    with _quiet_http_errors():  # a person reads the plan, not the CDK's log lines
        source, config, state = _source(args.config, args.catalog, args.state)
        try:
            lines = plan(source, config or {}, state)
        except NoPlan as problem:
            raise Refusal(str(problem), problem.failure_type or FailureType.system_error) from None
    for line in lines:
        print(filter_secrets(line.removeprefix("Plan: ")))


def run(args: Sequence[str] | None = None) -> None:
    """Like the CDK's ``launch``, but every line passes the secret filter on its way out (some of
    the CDK's error traces quote Klaviyo's response, and Klaviyo may echo the request's key), a
    ``read`` logs its plan first, and what a person can fix stops the command in one sentence
    (the module's docstring says how)."""
    parsed = build_parser().parse_args(list(sys.argv[1:] if args is None else args))
    try:
        if parsed.command == "plan":
            run_plan(parsed)
        else:
            _run_airbyte_command(parsed)
    except Refusal as refusal:
        _refuse(parsed.command, refusal)
    except AirbyteTracedException as error:
        if error.failure_type != FailureType.config_error:
            raise  # the CDK's handler prints it with its traceback: not the user's to fix
        _refuse(parsed.command, Refusal(error.message or str(error)))


def _refuse(command: str, refusal: Refusal) -> None:
    sentence = str(refusal)
    if command == "plan":
        print(filter_secrets(sentence), file=sys.stderr)
    elif command == "check" and refusal.failure_type == FailureType.config_error and not isinstance(refusal, UnreadableFile):
        status = AirbyteConnectionStatus(status=Status.FAILED, message=sentence)
        _print_message(AirbyteMessage(type=Type.CONNECTION_STATUS, connectionStatus=status))
        return  # a failed check exits 0, as the Airbyte protocol says
    else:
        _print_message(_error_trace(sentence, refusal.failure_type))
    raise SystemExit(1)


def _run_airbyte_command(parsed: argparse.Namespace) -> None:
    paths = (getattr(parsed, name, None) for name in ("config", "catalog", "state"))
    source, config, state = _source(*paths)
    entrypoint = KlaviyoSegmentsEntrypoint(source, config)
    printed_an_error = False
    try:
        with PRINT_BUFFER, _tracebacks_only_for_bugs():
            for message in entrypoint.run(parsed):
                line, is_error = _without_stack_trace_of_config_errors(message)
                printed_an_error = printed_an_error or is_error
                print(f"{filter_secrets(line)}\n", end="")
    except AirbyteTracedException as error:
        if error.failure_type == FailureType.config_error and printed_an_error:
            # The CDK ends a read whose streams failed with a summary of the errors it has already
            # printed, one trace each: the exit code is what is left to say.
            raise SystemExit(1) from None
        raise


# Failures that are no bug of the connector: the user's to fix (config_error), or the network's or
# Klaviyo's to get over (transient_error). Their sentence says it all; a bug (system_error, or an
# exception the connector did not expect) keeps its traceback.
NOT_A_BUG = (FailureType.config_error.value, FailureType.transient_error.value)


class _NoTracebackUnlessABug(logging.Filter):
    """Drops the traceback from a log record of a failure that is ``NOT_A_BUG``: the CDK logs a
    failed stream with its traceback, and the failure's sentence follows as a trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, AirbyteTracedException) and error.failure_type and error.failure_type.value in NOT_A_BUG:
            record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def _tracebacks_only_for_bugs() -> Iterator[None]:
    """``_NoTracebackUnlessABug`` on the handlers the CDK logs through, while a command runs."""
    handlers = list(logging.getLogger().handlers)
    not_bugs = _NoTracebackUnlessABug()
    for handler in handlers:
        handler.addFilter(not_bugs)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(not_bugs)


def _without_stack_trace_of_config_errors(line: str) -> tuple[str, bool]:
    """``line`` without the stack trace of a trace whose failure is ``NOT_A_BUG``, and whether it
    is an error trace."""
    if not line.startswith('{"type":"TRACE"'):
        return line, False
    message = json.loads(line)
    error = message.get("trace", {}).get("error")
    if not error:
        return line, False
    if error.get("failure_type") in NOT_A_BUG and error.get("stack_trace"):
        del error["stack_trace"]
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False), True
    return line, True


def _log_plan(source: SourceKlaviyoSegments, config: Mapping[str, Any], state: list[AirbyteStateMessage] | None) -> None:
    """Logs what the read will cost in all before the first report call (each report stream logs
    its own plan line as it starts). What the sync could not get past (a config the
    connector refuses, a key Klaviyo refuses, no requested segment in the account, nothing
    answering at ``base_url``) ends it here, with one sentence and no report call."""
    refuse_unusable_config(config, source.spec(logging.getLogger("airbyte")).connectionSpecification)
    try:
        plans, prepared, segments, warnings = plan_of_read(source, config, state)
    except NothingToRead as problem:
        lines = [str(problem)]
    except NoPlan as problem:
        if problem.failure_type:
            raise Refusal(str(problem), problem.failure_type) from None
        lines = [f"No plan: {problem} The sync goes on."]
    else:
        totals = describe_plan(plans, prepared.get("max_report_requests"))[len(plans) :]
        lines = [*warnings, f"Plan: {segments:,} segments. {' '.join(totals)}"]
    for line in lines:
        _print_message(AirbyteMessage(type=Type.LOG, log=AirbyteLogMessage(level=Level.INFO, message=line)))


if __name__ == "__main__":
    run()
