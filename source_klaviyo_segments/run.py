"""``source-klaviyo-segments spec|check|discover|read``: the Airbyte protocol on the command line,
run by the CDK's entrypoint exactly as the manifest-only runtime runs it; and ``plan``: what a sync
will cost, without a report call.

The package adds only what the CDK cannot do: the ``plan`` verb, and one sentence for a file that
is missing or unreadable (or a catalog that selects a stream this connector does not have), as one
Airbyte error trace (``plan``: one line on stderr) and exit code 1. Everything a command decides
and every sentence it says once the files are read comes from ``manifest.yaml`` and
``components.py``, the same in every runtime.
"""

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

from airbyte_cdk.entrypoint import AirbyteEntrypoint, launch
from airbyte_cdk.models import (
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    FailureType,
)
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .components import (
    NO_SEGMENTS_YET,
    RETRY_LOG,
    DerivedSettings,
    ReportPlan,
    describe_plan,
    missing_segment_ids,
    missing_segments_warning,
    plan_streams,
    report_streams,
    segment_ids_refusal,
    unique_segments,
)
from .source import SourceKlaviyoSegments

T = TypeVar("T")


class Refusal(Exception):
    """What stops a command before it does anything, in one sentence a person can act on;
    ``failure_type`` is how the Airbyte platform files it (``config_error``: the user must fix it)."""

    def __init__(self, sentence: str, failure_type: FailureType = FailureType.config_error) -> None:
        super().__init__(sentence)
        self.failure_type = failure_type


def load_file(kind: str, path: str, parse: Callable[[Any], T]) -> T:
    """The ``--{kind}`` file at ``path``, parsed by ``parse`` from its JSON; ``Refusal`` with one
    sentence naming the file and what is wrong with it otherwise.

    >>> load_file("state", "/no/state.json", list)
    Traceback (most recent call last):
    ...
    source_klaviyo_segments.run.Refusal: The state file /no/state.json does not exist: check the path given to --state.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise Refusal(f"The {kind} file {path} does not exist: check the path given to --{kind}.") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise Refusal(f"The {kind} file {path} cannot be read ({reason}): check the path given to --{kind}.") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise Refusal(
            f"The {kind} file {path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}): fix it."
        ) from None
    try:
        return parse(document)
    except Exception:
        what = {"config": "a JSON object of settings", "catalog": "an Airbyte configured catalog",
                "state": "a list of Airbyte state messages"}[kind]  # fmt: skip
        raise Refusal(f"The {kind} file {path} is valid JSON but not {what}: check what was written to it.") from None


def _config(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ValueError("not an object")
    return document


def _state(document: Any) -> list[AirbyteStateMessage]:
    return [AirbyteStateMessageSerializer.load(message) for message in document or []]


def _source(
    config_path: str, catalog_path: str | None = None, state_path: str | None = None
) -> tuple[SourceKlaviyoSegments, dict[str, Any], ConfiguredAirbyteCatalog | None, list[AirbyteStateMessage] | None]:
    """The source as the CDK's ``source-declarative-manifest`` builds it from the same files, each
    file judged first (``load_file``)."""
    config = load_file("config", config_path, _config)
    catalog = load_file("catalog", catalog_path, ConfiguredAirbyteCatalogSerializer.load) if catalog_path else None
    state = load_file("state", state_path, _state) if state_path else None
    source = SourceKlaviyoSegments(catalog=catalog, config=config, state=state, config_path=config_path)
    if catalog is not None:
        refuse_unknown_streams(source, catalog, catalog_path or "")
    return source, config, catalog, state


def refuse_unknown_streams(source: SourceKlaviyoSegments, catalog: ConfiguredAirbyteCatalog, path: str) -> None:
    """A catalog file that selects a stream this connector does not have is refused, naming it and
    the streams there are. The CDK reads on without it (it marks it INCOMPLETE); components never
    see the catalog, so this is the catalog file's check, like its JSON's."""
    known = [str(stream["name"]) for stream in source.resolved_manifest["streams"]]
    unknown = [configured.stream.name for configured in catalog.streams if configured.stream.name not in known]
    if unknown:
        names = ", ".join(f"`{name}`" for name in unknown)
        raise Refusal(
            f"The catalog file {path} selects {names}, which this connector does not have: its streams are "
            f"{', '.join(known)} (run discover to see them)."
        )


@dataclass(frozen=True)
class PlannedRead:
    """What a read will do, as the report streams plan it when they start: their plans, the
    source's prepared config, the segments listed and the configured ids the account lacks."""

    plans: list[ReportPlan]
    config: Mapping[str, Any]
    segments: int
    missing: list[str]


def planned_read(
    source: SourceKlaviyoSegments,
    catalog: ConfiguredAirbyteCatalog | None,
    state: list[AirbyteStateMessage] | None,
) -> PlannedRead:
    """The plan of a read of ``catalog`` (every report stream without one) from ``state``: the same
    listing (the manifest's ``segments`` stream) and the same ``plan_streams`` the streams use
    (``SyncSession.plan_of``), in the order the CDK reads them, without a report call."""
    with tempfile.TemporaryDirectory() as temp_dir:
        config = source.configure({}, temp_dir)  # the source's prepared config
    derived = DerivedSettings.of(config)
    if derived.problem:
        raise Refusal(derived.problem)
    definitions = source.resolved_manifest["definitions"]
    streams = report_streams(definitions["report_streams"])
    try:
        listing = next(stream for stream in source.streams(config) if stream.name == "segments")
        segments = unique_segments(
            (str(record.data["id"]), record.data.get("created"))
            for partition in listing.generate_partitions()
            for record in partition.read()
        )
    except AirbyteTracedException as error:
        sentence = error.message or "Klaviyo refused to list the segments."
        raise Refusal(sentence, error.failure_type or FailureType.system_error) from None
    except Exception as error:  # what the manifest's error handler does not turn into a sentence
        sentence = f"Could not list segments at {config.get('base_url')} ({type(error).__name__})."
        raise Refusal(sentence, FailureType.system_error) from None
    refusal = segment_ids_refusal(config, segments, strict=False)
    if refusal:
        raise Refusal(refusal)
    if not segments:
        raise Refusal(NO_SEGMENTS_YET)
    resumable = {stream.name for stream in streams if stream.resumable}
    if catalog is not None:  # read in the catalog's order, as the CDK reads them
        order = [configured.stream.name for configured in catalog.streams]
        streams = sorted((stream for stream in streams if stream.name in order), key=lambda stream: order.index(stream.name))
    plans = plan_streams(
        streams, derived, config["interval"], segments, int(definitions["segments_per_report"]),
        config.get("max_report_requests"), derived.resumed_start(_saved_cursor(state, resumable)),
    )  # fmt: skip
    return PlannedRead(plans, config, len(segments), missing_segment_ids(config, segments))


def plan_lines(planned: PlannedRead) -> list[str]:
    """The plan for a person."""
    timezone = DerivedSettings.of(planned.config).timezone or (
        "unknown (the key lacks accounts:read): windows keep a daylight-saving margin"
    )
    return [
        *([missing_segments_warning(planned.missing)] if planned.missing else []),
        f"{planned.segments:,} segment{'s' if planned.segments != 1 else ''}; the account's timezone is {timezone}.",
        *describe_plan(planned.plans, planned.config.get("max_report_requests")),
    ]


def _saved_cursor(state: list[AirbyteStateMessage] | None, resumable: set[str]) -> str | None:
    """The saved cursor of the stream that resumes from its state (the manifest's ``report_streams``)."""
    for message in state or []:
        stream = message.stream
        if stream and stream.stream_descriptor.name in resumable and stream.stream_state:
            cursor = getattr(stream.stream_state, "date_time", None)
            return cursor if isinstance(cursor, str) else None
    return None


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


def run(args: Sequence[str] | None = None) -> None:
    """The console script: ``plan``, or the CDK's ``launch`` once the files are judged."""
    argv = list(sys.argv[1:] if args is None else args)
    parsed = build_parser().parse_args(argv)
    try:
        if parsed.command == "plan":
            # A person reads the plan, not the CDK's log lines; what stops it is the one sentence.
            with retry_lines_on_stderr():
                source, _, catalog, state = _source(parsed.config, parsed.catalog, parsed.state)
                planned = planned_read(source, catalog, state)
            for line in plan_lines(planned):
                print(filter_secrets(line))
            return
        if parsed.command == "spec":
            source = SourceKlaviyoSegments()
        else:
            source = _source(parsed.config, getattr(parsed, "catalog", None), getattr(parsed, "state", None))[0]
    except Refusal as refusal:
        _refuse(parsed.command, refusal)
    launch(source, argv)


class _Plain(logging.Formatter):
    """A log line as a person reads it: the message alone, with the API key masked."""

    def format(self, record: logging.LogRecord) -> str:
        return filter_secrets(record.getMessage())


@contextmanager
def retry_lines_on_stderr() -> Iterator[None]:
    """What ``plan`` logs: nothing of the CDK's log, and each line the components say before a retry
    (``components.RETRY_LOG``: a host that does not answer, or answers 5XX / 429) on stderr as it
    happens, one plain line each, so a person waiting on a dead host knows why. The components
    decide the lines; this only routes them, and puts logging back as it was (``run`` may be called
    in a process that goes on)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Plain())
    saved_handlers, saved_propagate = root.handlers[:], RETRY_LOG.propagate
    # A NullHandler, not none: with no handler at all, logging prints warnings to stderr itself.
    root.handlers = [logging.NullHandler()]
    RETRY_LOG.addHandler(handler)
    RETRY_LOG.propagate = False
    try:
        yield
    finally:
        RETRY_LOG.removeHandler(handler)
        RETRY_LOG.propagate = saved_propagate
        root.handlers = saved_handlers


def _refuse(command: str, refusal: Refusal) -> None:
    sentence = filter_secrets(str(refusal))
    if command == "plan":
        print(sentence, file=sys.stderr)
    else:
        error = AirbyteTracedException(message=sentence, internal_message=sentence, failure_type=refusal.failure_type)
        message = error.as_airbyte_message()
        if message.trace and message.trace.error:
            message.trace.error.stack_trace = None  # not a bug: the sentence says it all
        print(filter_secrets(AirbyteEntrypoint.airbyte_message_to_string(message)), flush=True)
    raise SystemExit(1)


if __name__ == "__main__":
    run()
