"""Everything the Klaviyo Segments connector decides, in the order data flows.

With ``manifest.yaml`` this file is the whole connector: the CDK's ``source-declarative-manifest``
runs the two unchanged (Airbyte's manifest-only form), and the ``source_klaviyo_segments`` package
runs the same two files. So it imports only the standard library and what ``airbyte-cdk`` itself
depends on, and it avoids ``from __future__ import annotations`` (the CDK's loader for injected
code runs a module before registering it, and dataclasses would look it up).

1. **Klaviyo's facts**: the series caps, quotas, the first day of data, each stated once (the
   statistics, intervals and timeframe keys are the spec's enums, in ``manifest.yaml``).
2. **Config**: ``config_problems`` says every reason a config cannot be used, a sentence each,
   worded from the spec (``config_problem`` joins them); ``prepare_config`` derives the settings
   the manifest reads (``config["_derived"]``, typed by ``DerivedSettings``);
   ``PrepareSyncConfig`` (a ``CustomConfigTransformation``) runs once per source: it registers the
   key as a secret, asks Klaviyo for the account's timezone, opens the source's ``SyncSession`` and
   prepares the config; ``RefuseConfigProblem`` refuses a config with problems.
3. **Windows**: wall-time arithmetic in the account's timezone: buckets, the cursor's step and
   lookback, custom values timeframes, which segments exist by a window's end.
4. **The plan**, pure functions: ``window_fits`` (Klaviyo's caps in wall and elapsed time),
   ``plan_series_windows`` (the fewest calls they allow), ``plan_report_stream`` and
   ``plan_streams`` (every report call of each stream, sharing ``max_report_requests`` in read
   order), as ``ReportPlan``s, which also say what stops them (``refusal``, ``stop_of``) and how
   a person is told (``describe``, ``progress``, ``describe_plan``).
5. **Requests**: ``SyncSession``, one per source, lists the segments once and makes each report
   stream's plan when the stream starts (with the planner's refusals); ``SegmentBatchRetriever``
   carries out its stream's part, partition by partition, within a Builder test read's limits
   (``BuilderTestRead``).
6. **Answers and rows**: nothing an answer says is used unjudged. ``SameHostCursorPagination``
   asks ``base_url`` for each next segment page, with the cursor of ``links.next`` whatever host
   that names, and stops a listing that never ends; ``SegmentListExtractor``
   refuses a listed segment without an id or with an unreadable ``created``;
   ``SeriesRowExtractor`` / ``ValuesRowExtractor`` check a report against what its call asked
   (``asked_report``) and turn it into rows; ``BucketWindowFilter`` keeps each bucket once (the
   manifest's ``AddFields`` stamps a values row).
7. **Errors and pacing**: ``SentenceErrorHandler`` ends a failed request in its sentence alone,
   the key masked; ``RetryAfterBackoff`` waits what a 429 asks (or ends the sync on the daily
   quota); ``AnswerAwareBackoff`` backs off after an answer, says each retry as it waits
   (``RETRY_LOG``), and ends a request that gets none in one sentence naming the host;
   ``ReportPacer`` (the session's) spaces report calls within Klaviyo's burst and steady limits.
   The segment listing is paced by the manifest's ``api_budget``.
"""

import bisect
import copy
import datetime as dt
import json
import logging
import math
import re
import threading
import time
import weakref
from dataclasses import InitVar, dataclass, field, replace
from http import HTTPStatus
from typing import Any, Callable, Final, Iterable, Iterator, Mapping, MutableMapping, Sequence, Union
from urllib.parse import parse_qsl, urlparse, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import isodate
import jsonschema
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.extractors.record_filter import RecordFilter
from airbyte_cdk.sources.declarative.interpolation import InterpolatedString
from airbyte_cdk.sources.declarative.models.declarative_component_schema import HttpRequester as HttpRequesterModel
from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory
from airbyte_cdk.sources.declarative.partition_routers.partition_router import PartitionRouter
from airbyte_cdk.sources.declarative.requesters.error_handlers import DefaultErrorHandler
from airbyte_cdk.sources.declarative.requesters.error_handlers.backoff_strategies import ExponentialBackoffStrategy
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.cursor_pagination_strategy import (
    CursorPaginationStrategy,
)
from airbyte_cdk.sources.declarative.retrievers.simple_retriever import SimpleRetriever
from airbyte_cdk.sources.declarative.transformations.config_transformations.config_transformation import (
    ConfigTransformation,
)
from airbyte_cdk.sources.declarative.validators.validation_strategy import ValidationStrategy
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.types import Config, Record, StreamSlice, StreamState
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets, filter_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

LOGGER = logging.getLogger("airbyte")


# ---------------------------------------------------------------------------------------------
# 1. Klaviyo's facts. The API revision and the 100-id batch size live in manifest.yaml, where the
#    requests are made; the statistics, intervals and timeframe keys in its spec (section 2).
# ---------------------------------------------------------------------------------------------

# Klaviyo holds no segment report data before this day (company-local time).
FIRST_DATA_DAY: Final = dt.datetime(2023, 6, 1)

# The spec's default `base_url`, for what runs without the spec (the demo). Config defaults come
# from the spec (spec_defaults); a test holds this equal.
DEFAULT_BASE_URL: Final = "https://a.klaviyo.com"

# Klaviyo's caps on one series call's timeframe, and how the connector reads them. Documented:
# hourly at most 7 days, daily at most 60 days, monthly at most 52 weeks; weekly is undocumented
# (third parties say 52 weeks). Klaviyo does not say whether a cap is measured in wall time or in
# elapsed time, and a window holding a DST fall-back is an hour longer in elapsed time; a refused
# window would fail every sync. So:
# - with the account's timezone a window may take the cap in wall time (SERIES_WINDOW_CAP) if it
#   also fits it in elapsed time (SERIES_ELAPSED_CAP), which window_fits checks;
# - without it (no DST to see), a window keeps a bucket of margin: SERIES_WINDOW_STEP, also the
#   cursor's step (series_window_step). Monthly windows are 11 whole months, the most that always
#   fit 52 weeks (12 months can be 366 days); weekly ones 52 weeks, which hold both DST changes.
SERIES_WINDOW_STEP: Final = {
    "hourly": "PT167H",
    "daily": "P59D",
    "weekly": "P52W",
    "monthly": "P11M",
}
SERIES_WINDOW_CAP: Final = {"hourly": "P7D", "daily": "P60D"}
SERIES_ELAPSED_CAP: Final = {
    "hourly": dt.timedelta(days=7),
    "daily": dt.timedelta(days=60),
    "weekly": dt.timedelta(weeks=52),
    "monthly": dt.timedelta(weeks=52),
}

# A custom values timeframe may span at most one year, read harshly as 365 days (a leap year's
# 366 may be refused).
VALUES_WINDOW_YEARS: Final = 1
VALUES_WINDOW_DAYS: Final = 365

# Where the connector's own bucket arithmetic puts a week's start (Monday, ISO). Klaviyo does not
# document its week start: weekly windows start on the earlier of Sunday and Monday
# (first_series_bucket), so either reading gives every bucket once.
WEEK_START_WEEKDAY: Final = 0

# Klaviyo's published report limits, per account: the daily quota and the steady pace.
DAILY_REPORT_QUOTA: Final = 225
REPORT_CALLS_PER_MINUTE: Final = 2

# A 429 asking for a longer wait than this is the daily quota, not the per-minute limit.
MAX_RATE_LIMIT_WAIT_SECONDS: Final = 600
# ---------------------------------------------------------------------------------------------
# 2. Config: every reason a config cannot be used, worded from the spec; the checks a JSON schema
#    cannot express; the derived settings; and the per-sync objects.
#
# The spec (manifest.yaml's spec.connection_specification, handed to components as
# $parameters.connection_specification) is the one statement of each field's type, choices,
# format and default, Klaviyo's statistics, intervals and timeframe keys included: the code here
# reads them from it and copies none.
# ---------------------------------------------------------------------------------------------

DERIVED = "_derived"


def _utc_now() -> dt.datetime:
    return company_now(None)


def _fields(spec: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """The spec's fields by name, each its JSON schema."""
    fields: Mapping[str, Mapping[str, Any]] = spec.get("properties") or {}
    return fields


def spec_defaults(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Each field's ``default`` as the spec states it, copied (a config never shares the spec's list).

    >>> spec_defaults({"properties": {"interval": {"default": "daily"}, "end_date": {"type": "string"}}})
    {'interval': 'daily'}
    """
    return {name: copy.deepcopy(prop["default"]) for name, prop in _fields(spec).items() if "default" in prop}


def _shown(value: Any) -> str:
    """A config value as a sentence quotes it: text as Python writes it (as the refusals always
    have), anything else as the JSON the user wrote."""
    return repr(value) if isinstance(value, str) else json.dumps(value)


def _distinct(values: Sequence[Any]) -> list[Any]:
    """``values`` without repeats, in order; JSON values (lists, objects) are not hashable.

    >>> _distinct(["a", ["b"], "a", ["b"]])
    ['a', ['b']]
    """
    return [value for index, value in enumerate(values) if value not in values[:index]]


def _and(words: Sequence[str]) -> str:
    """Words as a sentence lists them.

    >>> _and(["'a'"]), _and(["'a'", "'b'", "'c'"])
    ("'a'", "'a', 'b' and 'c'")
    """
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _example(prop: Mapping[str, Any]) -> str | None:
    """The spec's examples of a field, as "X or Y" (lists as JSON), or ``None`` when it gives none."""
    examples = prop.get("examples")
    if not isinstance(examples, list) or not examples:
        return None
    return " or ".join(e if isinstance(e, str) else json.dumps(e) for e in examples)


def _how_written(prop: Mapping[str, Any]) -> str:
    """How to write a text field, from its ``pattern_descriptor`` and ``examples``, to end a sentence.

    >>> _how_written({"pattern_descriptor": "YYYY-MM-DD", "examples": ["2024-01-01"]})
    ': write it YYYY-MM-DD, such as 2024-01-01'
    """
    example = _example(prop)
    written = f": write it {prop['pattern_descriptor']}" if prop.get("pattern_descriptor") else ""
    return written + (f"{',' if written else ''} such as {example}" if example else "")


def _item_example(prop: Mapping[str, Any]) -> str | None:
    """The first item of a list field's first example, as JSON: ``"RpKvCF"``."""
    examples = prop.get("examples")
    first = examples[0] if isinstance(examples, list) and examples else None
    return json.dumps(first[0]) if isinstance(first, list) and first else None


def _noun(name: str, prop: Mapping[str, Any]) -> str:
    """What a list field holds, in words: its title in lower case ("segment ids")."""
    return str(prop.get("title") or name.replace("_", " ")).lower()


def _choices(prop: Mapping[str, Any]) -> list[Any]:
    """The values a field (or each item of a list field) may take, as the spec lists them."""
    items = prop.get("items")
    choices = prop.get("enum") or (items.get("enum") if isinstance(items, Mapping) else None)
    return list(choices) if isinstance(choices, list) else []


def _shape(name: str, prop: Mapping[str, Any]) -> str:
    """What a field's value must be, from its spec, to follow "must be".

    >>> _shape("interval", {"type": "string", "enum": ["hourly", "daily"]})
    'one of hourly, daily'
    >>> _shape("lookback_window_days", {"type": "integer", "minimum": 0})
    'a whole number, 0 or more'
    >>> _shape("start_date", {"type": "string", "pattern_descriptor": "YYYY-MM-DD", "examples": ["2024-01-01"]})
    'text written YYYY-MM-DD, such as 2024-01-01'
    """
    kind, example = prop.get("type"), _example(prop)
    such_as = f", such as {example}" if example else ""
    if prop.get("enum"):
        return f"one of {', '.join(map(str, prop['enum']))}"
    if kind == "array":
        return f"a list of {_noun(name, prop)}{such_as}"
    if kind in ("integer", "number"):
        minimum = prop.get("minimum")
        number = "a whole number" if kind == "integer" else "a number"
        return number + (f", {minimum} or more" if minimum is not None else "")
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        if prop.get("pattern_descriptor"):
            return f"text written {prop['pattern_descriptor']}{such_as}"
        described = _described(prop)
        return f"text: {described}" if described else f"text{such_as}"
    return f"of JSON type {kind}"


def _described(prop: Mapping[str, Any]) -> str:
    """The first sentence of a field's description, to follow a verb: "a Klaviyo private API key ..."."""
    first = str(prop.get("description") or "").split(". ")[0].strip().rstrip(".")
    return first[:1].lower() + first[1:]


def _fill_in(name: str, prop: Mapping[str, Any]) -> str:
    """How to give a missing or empty field a value: a secret is pasted, anything else set."""
    described = _described(prop)
    if prop.get("airbyte_secret") and described:
        return f"paste {described}"
    return f"set it to {_shape(name, prop)}"


def _or_remove(name: str, prop: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """", or remove the field (the default is ...)" for an optional field, from its description's
    "Default: ..." or its ``default``; "" for a required one."""
    if name in (spec.get("required") or ()):
        return ""
    stated = re.search(r"\bDefault: ([^.;]+)", str(prop.get("description") or ""))
    if stated:
        default: str | None = stated.group(1)
    elif "default" in prop and not isinstance(prop["default"], list):
        default = str(prop["default"])
    else:
        default = None
    return ", or remove the field" + (f" (the default is {default})" if default else "")


def _blank_as_empty(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` with every blank text (only whitespace) that its schema gives a ``minLength``
    made empty, so that ``minLength`` calls it empty, as a person would: the spec could say "not
    blank" only with a regex, whose error would read as a mistake in the format.

    >>> _blank_as_empty({"ids": ["A", "  "]}, {"properties": {"ids": {"items": {"minLength": 1}}}})
    {'ids': ['A', '']}
    """
    if isinstance(value, str):
        return "" if schema.get("minLength") and not value.strip() else value
    items, properties = schema.get("items"), schema.get("properties")
    if isinstance(value, list) and isinstance(items, Mapping):
        return [_blank_as_empty(item, items) for item in value]
    if isinstance(value, Mapping) and isinstance(properties, Mapping):
        return {k: _blank_as_empty(v, properties.get(k) or {}) for k, v in value.items()}
    return value


# A field of the wrong type, or missing, gets that one sentence: its schema's other errors (an
# enum's, say) only restate it. An item's errors are of kind "items <validator>".
_FIRST_KINDS = ("type", "required")


def _schema_problems(config: Mapping[str, Any], spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(field, sentence)`` for each way ``config`` breaks the spec's JSON schema: one sentence per
    field and kind of error (an item's errors of one kind are said together), worded from the spec."""
    fields = _fields(spec)
    found: dict[str, dict[str, list[jsonschema.ValidationError]]] = {}
    for error in jsonschema.Draft7Validator(spec).iter_errors(_blank_as_empty(dict(config), spec)):
        if error.validator == "required":
            names = [n for n in error.validator_value if isinstance(error.instance, Mapping) and n not in error.instance]
        elif error.absolute_path:
            names = [str(error.absolute_path[0])]
        else:
            continue  # a config that is not a JSON object: the CDK refuses it before any component runs
        for name in names:
            kind = str(error.validator)
            if len(error.absolute_path) > 1:
                # An item of the wrong type where the items are choices is, to a person, a wrong choice.
                kind = "items enum" if kind == "type" and _choices(fields.get(name, {})) else f"items {kind}"
            found.setdefault(name, {}).setdefault(kind, []).append(error)
    problems = []
    for name, kinds in found.items():
        first = [kind for kind in _FIRST_KINDS if kind in kinds][:1]
        # Each bad value is said once: an unknown statistic listed twice is not also "listed twice".
        bad_items = [error.instance for kind, errors in kinds.items() if kind.startswith("items ") for error in errors]
        for kind in first or list(kinds):
            sentence = _schema_sentence(name, kind, kinds[kind], spec, bad_items)
            if sentence:
                problems.append((name, sentence))
    return problems


def _schema_sentence(
    name: str, kind: str, errors: list[jsonschema.ValidationError], spec: Mapping[str, Any], bad_items: Sequence[Any] = ()
) -> str | None:
    """One sentence for a field's errors of one kind (a JSON schema validator, or "items X"),
    naming the field and the fix from what the spec says of it; ``None`` for repeats that are
    all ``bad_items`` (said by the field's other sentences).

    >>> spec = {"properties": {"interval": {"type": "string", "enum": ["hourly", "daily"]}}}
    >>> config_problems({"interval": "yearly"}, spec)
    ["`interval` is 'yearly'; use one of hourly, daily."]
    """
    prop = _fields(spec).get(name, {})
    value = errors[0].instance
    if kind == "required":
        return f"`{name}` is missing: {_fill_in(name, prop)}."
    if kind == "type":
        return f"`{name}` must be {_shape(name, prop)}."
    if kind == "enum":
        return f"`{name}` is {_shown(value)}; use {_shape(name, prop)}."
    if kind == "minLength":
        return f"`{name}` is empty: {_fill_in(name, prop)}{_or_remove(name, prop, spec)}."
    if kind == "minItems":
        choices = _choices(prop)
        what = f"of {', '.join(map(str, choices))}" if choices else _noun(name, prop)
        return f"`{name}` is empty: list one or more {what}{_or_remove(name, prop, spec)}."
    if kind == "uniqueItems":
        repeated = _distinct([v for i, v in enumerate(value) if v in value[:i] and v not in bad_items])
        return f"`{name}` lists {_and([_shown(v) for v in repeated])} more than once: list each once." if repeated else None
    if kind == "minimum":
        return f"`{name}` is {_shown(value)}; use {_shape(name, prop)}{_or_remove(name, prop, spec)}."
    if kind == "pattern":
        if prop.get("pattern_descriptor"):
            return f"`{name}` is {_shown(value)}{_how_written(prop)}."
        return f"`{name}` is {_shown(value)}, which is not {_shape(name, prop)}."
    items = [_shown(v) for v in _distinct([e.instance for e in errors])]
    example = _item_example(prop)
    such_as = f", such as {example}" if example else ""
    if kind == "items enum":
        verb = "is" if len(items) == 1 else "are"
        return f"`{name}` has {_and(items)}, which {verb} not one of {', '.join(map(str, _choices(prop)))}."
    if kind == "items minLength":
        return f"`{name}` must contain only non-empty {_noun(name, prop)}{such_as}."
    if kind.startswith("items "):
        items_schema = prop.get("items")
        item_schema: Mapping[str, Any] = items_schema if isinstance(items_schema, Mapping) else {}
        return f"`{name}` has {_and(items)}: each of its {_noun(name, prop)} must be {_shape(name, item_schema)}{such_as}."
    return f"`{name}` is {_shown(value)}, which the spec refuses ({errors[0].message})."  # a validator the spec does not use yet


def _parse_date(config: Mapping[str, Any], field: str) -> dt.datetime | None:
    """A date field's wall time; ``None`` when it is absent. Call it once the field's problems are known."""
    value = config.get(field)
    return wall_time(value) if isinstance(value, str) and value else None


def _value_problems(
    config: Mapping[str, Any], spec: Mapping[str, Any], now: Callable[[], dt.datetime], reported: set[str]
) -> list[tuple[str, str]]:
    """``(field, sentence)`` for what a JSON schema cannot say, on the fields whose schema was met
    (``reported`` names the others): whitespace inside the key, a date that matches the pattern but
    is not on the calendar, a range that holds no day with data, a URL no request could be sent to."""
    fields, problems = _fields(spec), []
    api_key = config.get("api_key")
    # Leading and trailing whitespace is stripped (prepare_config): a pasted key often ends in a newline.
    inside = api_key.strip() if "api_key" not in reported and isinstance(api_key, str) else ""
    if any(character.isspace() or not character.isprintable() for character in inside):
        problems.append(
            ("api_key", "`api_key` has a space, a line break or a control character inside it: paste the key alone.")
        )
    for name in ("start_date", "end_date"):
        value = config.get(name)
        if name in reported or not isinstance(value, str):
            continue
        try:
            wall_time(value)
        except ValueError:  # the pattern admits 2024-02-30 and 25:00
            written = _how_written(fields.get(name, {}))
            problems.append((name, f"`{name}` is {value!r}, which is not a real date or time{written}."))
            reported = reported | {name}
    range_problem = None if {"start_date", "end_date"} & reported else _range_problem(config, now)
    problems += [range_problem] if range_problem else []
    base_url = config.get("base_url")
    if "base_url" not in reported and isinstance(base_url, str) and not _callable_url(base_url):
        written = _how_written(fields.get("base_url", {}))
        problems.append(("base_url", f"`base_url` is {base_url!r}, whose host or port cannot be read{written}."))
    return problems


def _callable_url(url: str) -> bool:
    """Whether a request could be sent to ``url``: what the spec's pattern lets through may still
    have no host, or a port that is not a number from 1 to 65535.

    >>> _callable_url("https://a.klaviyo.com"), _callable_url("https://host:https"), _callable_url("https://[::1")
    (True, False, False)
    """
    try:
        parsed = urlparse(url)
        port = parsed.port  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        return False
    return bool(parsed.hostname) and port != 0


def _resolve_range(config: Mapping[str, Any], now: Callable[[], dt.datetime]) -> tuple[dt.datetime, dt.datetime]:
    """The wall-time range to report on: ``start_date`` raised to Klaviyo's first day of data,
    ``end_date`` (exclusive) lowered to now, since a report call on the future spends quota on nothing."""
    start = max(_parse_date(config, "start_date") or FIRST_DATA_DAY, FIRST_DATA_DAY)
    return start, min(_parse_date(config, "end_date") or now(), now())


def _range_problem(config: Mapping[str, Any], now: Callable[[], dt.datetime]) -> tuple[str, str] | None:
    """``(field, sentence)`` when the range holds nothing Klaviyo could report (the first reason that applies)."""
    start, end = _resolve_range(config, now)
    configured_end = _parse_date(config, "end_date")
    if configured_end is not None and configured_end <= FIRST_DATA_DAY:
        first_day = f"{FIRST_DATA_DAY:%Y-%m-%d}, the first day Klaviyo has segment data for"
        return "end_date", f"`end_date` ({format_wall_time(configured_end)}) is not after {first_day}: set a later one."
    if configured_end is not None and configured_end <= start:
        later = f"must be later than `start_date` ({format_wall_time(start)})"
        return "end_date", f"`end_date` ({format_wall_time(configured_end)}) {later}."
    if end <= start:
        return "start_date", f"`start_date` ({format_wall_time(start)}) is in the future: Klaviyo has no segment data for it yet."
    return None


def config_problems(
    config: Mapping[str, Any], spec: Mapping[str, Any], now: Callable[[], dt.datetime] = _utc_now
) -> list[str]:
    """Every reason ``config`` cannot be used, a sentence each naming the field and the fix, in
    the spec's order of fields; ``[]`` when it can. The spec's JSON schema finds what it can say
    (``_schema_problems``, worded from the spec), the code the rest (``_value_problems``).

    >>> spec = {"required": ["api_key"], "properties": {
    ...     "api_key": {"type": "string", "description": "A Klaviyo private API key.", "airbyte_secret": True, "order": 0},
    ...     "start_date": {"type": "string", "pattern": "^\\\\d{4}-\\\\d{2}-\\\\d{2}$", "pattern_descriptor": "YYYY-MM-DD",
    ...                    "examples": ["2024-01-01"], "order": 1},
    ...     "interval": {"type": "string", "enum": ["hourly", "daily"], "order": 2}}}
    >>> for sentence in config_problems({"start_date": "2024-02-30", "interval": "yearly"}, spec):
    ...     print(sentence)
    `api_key` is missing: paste a Klaviyo private API key.
    `start_date` is '2024-02-30', which is not a real date or time: write it YYYY-MM-DD, such as 2024-01-01.
    `interval` is 'yearly'; use one of hourly, daily.
    """
    problems = _schema_problems(config, spec)
    problems += _value_problems(config, spec, now, {name for name, _ in problems})
    fields = list(_fields(spec).items())
    place = {name: (prop.get("order", len(fields)), index) for index, (name, prop) in enumerate(fields)}
    problems.sort(key=lambda problem: place.get(problem[0], (len(fields), len(fields))))  # stable: a field's own order kept
    return [sentence for _, sentence in problems]


def config_problem(config: Mapping[str, Any], spec: Mapping[str, Any], now: Callable[[], dt.datetime] = _utc_now) -> str | None:
    """``config_problems`` as one message (each its own sentence, joined by a space), or ``None``
    when the config can be used: what a refusal says.

    >>> spec = {"properties": {"segment_ids": {"type": "array", "title": "Segment IDs"}, "interval": {"enum": ["daily"]}}}
    >>> config_problem({"api_key": "pk_x", "segment_ids": "RpKvCF", "interval": "day"}, spec)
    "`segment_ids` must be a list of segment ids. `interval` is 'day'; use one of daily."
    """
    return " ".join(config_problems(config, spec, now)) or None


def _whole_number(value: Any) -> int | None:
    """``value`` as an int when it is a whole number: JSON may carry the spec's integers as ``7.0``.

    >>> _whole_number(7.0), _whole_number(7.5), _whole_number(True)
    (7, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _with_defaults(config: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as it is judged and used: the spec's defaults filled in, the key stripped, no
    trailing slash on ``base_url``.

    >>> _with_defaults({"api_key": " pk_x\\n", "base_url": ""}, {"properties": {"base_url": {"default": "https://a.klaviyo.com"}}})
    {'api_key': 'pk_x', 'base_url': 'https://a.klaviyo.com'}
    """
    prepared = dict(config)
    if isinstance(prepared.get("api_key"), str):
        # A key pasted with a trailing newline would make `requests` refuse the header, quoting it.
        prepared["api_key"] = prepared["api_key"].strip()
    defaults = spec_defaults(spec)
    if prepared.get("base_url") in (None, "") and "base_url" in defaults:
        prepared.pop("base_url", None)  # an emptied field means the default, as an absent one does
    for name, default in defaults.items():
        prepared.setdefault(name, default)
    if isinstance(prepared.get("base_url"), str):
        prepared["base_url"] = prepared["base_url"].rstrip("/")
    return prepared


def prepare_config(
    config: Mapping[str, Any],
    spec: Mapping[str, Any],
    now: Callable[[], dt.datetime] | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    """``config`` with defaults filled in and the settings the manifest reads under ``_derived``.

    ``timezone`` is the account's (``GET /api/accounts``), or ``None`` when the key may not read
    it: it sets "now" (the company's; UTC's when unknown), the offsets timeframes are sent with,
    and whether windows may take Klaviyo's full caps. A config that ``config_problems`` refuses gets
    only ``_derived.problem``, its sentences, which ``RefuseConfigProblem`` refuses it with before
    any stream is built. The defaults are the spec's.

    >>> spec = {"properties": {"interval": {"default": "daily"}, "values_timeframe": {"default": "last_30_days"},
    ...                        "lookback_window_days": {"default": 1}}}
    >>> prepared = prepare_config({"api_key": "pk_x", "start_date": "2024-01-31"}, spec,
    ...                           now=lambda: dt.datetime(2024, 3, 1), timezone="Asia/Tokyo")
    >>> {key: prepared[DERIVED][key] for key in ("problem", "series_start", "series_end", "series_step")}
    {'problem': None, 'series_start': '2024-01-31T00:00:00', 'series_end': '2024-02-29T23:59:59', 'series_step': 'P60D'}
    """
    if timezone is None:  # a config prepared before keeps the timezone it was prepared with
        derived = config.get(DERIVED)
        timezone = derived.get("timezone") if isinstance(derived, Mapping) else None
    timezone = timezone if zone(timezone) else None
    now = now or (lambda: company_now(timezone))
    prepared = _with_defaults(config, spec)
    problem = config_problem(prepared, spec, now)
    if problem:
        prepared[DERIVED] = {"timezone": timezone, "problem": problem}
        return prepared
    for field_name in ("lookback_window_days", "max_report_requests"):
        if prepared.get(field_name) is not None:
            prepared[field_name] = _whole_number(prepared[field_name])
    start, end = _resolve_range(prepared, now)
    requested_start = _parse_date(prepared, "start_date")
    if requested_start and requested_start < FIRST_DATA_DAY:
        LOGGER.warning(
            "start_date %s is before %s, the first day Klaviyo has segment data for; starting there instead.",
            format_wall_time(requested_start),
            f"{FIRST_DATA_DAY:%Y-%m-%d}",
        )
    requested_end = _parse_date(prepared, "end_date")
    if requested_end and requested_end > end:
        LOGGER.warning(
            "end_date %s is in the future; reading up to now, %s in the account's timezone (%s).",
            format_wall_time(requested_end),
            format_wall_time(end),
            timezone or "UTC: the API key may not read it",
        )
    interval = prepared["interval"]
    first = first_series_bucket(start, interval)
    prepared[DERIVED] = {
        "timezone": timezone,
        "problem": None,
        "series_start": format_wall_time(first),
        # The cursor's end is the last second read: [start, end) in config terms.
        "series_end": format_wall_time(end - ONE_SECOND),
        "series_step": series_window_step(interval, timezone),
        "series_lookback": lookback_duration(interval, prepared["lookback_window_days"]),
        "values_timeframes": [
            t.as_partition() for t in plan_values_timeframes(prepared["values_timeframe"], start, end, timezone)
        ],
    }
    return prepared


def account_timezone(requester_definition: Mapping[str, Any], config: Mapping[str, Any]) -> str | None:
    """The account's IANA timezone from ``GET /api/accounts``, sent by the manifest's
    ``account_requester`` (its retries and error handling, never the report quota), or ``None``
    when the key lacks ``accounts:read``, Klaviyo cannot be reached, or it names a zone this
    machine does not know. Never raises: the timezone only refines the plan, and the streams'
    own requests report a wrong key or an unreachable ``base_url`` in their words."""
    try:
        requester = ModelToComponentFactory().create_component(
            HttpRequesterModel, dict(requester_definition), config, name="account"
        )
        response = requester.send_request()
    except AirbyteTracedException as error:
        if error.failure_type != FailureType.config_error:  # a 401 is said by the first stream request
            LOGGER.warning("Could not read the account's timezone (%s): planning without it.", error.message or error)
        return None
    except Exception as error:  # an unreachable host, a refused connection: said by the streams
        LOGGER.warning("Could not read the account's timezone (%s): planning without it.", type(error).__name__)
        return None
    if response is not None and response.status_code == 401:
        return None  # the key is refused: the streams' first request says so, in its words
    if response is None or response.status_code in (403, 404):
        LOGGER.info(
            "The API key may not read the account's timezone (scope accounts:read): report windows keep a "
            "daylight-saving margin and timeframes are sent with +00:00 (Klaviyo reads them in the account's timezone)."
        )
        return None
    try:
        timezone = response.json()["data"][0]["attributes"]["timezone"]
    except (ValueError, LookupError, TypeError):
        timezone = None
    if not isinstance(timezone, str) or zone(timezone) is None:
        LOGGER.warning("Klaviyo named no timezone this connector knows (%r): planning without it.", timezone)
        return None
    LOGGER.info("The Klaviyo account's timezone is %s.", timezone)
    return timezone


@dataclass
class PrepareSyncConfig(ConfigTransformation):
    """Runs once per source, on the config as given (``spec.config_normalization_rules``).

    Asks Klaviyo for the account's timezone (the manifest's ``account_requester``, passed as
    ``$parameters.account_requester``) unless the config cannot be used anyway, then adds
    ``_derived`` (``prepare_config``).

    ``$parameters.connection_specification`` is the spec: the one statement of the config's shape.
    """

    parameters: Mapping[str, Any]

    def transform(self, config: MutableMapping[str, Any]) -> None:
        spec = self.parameters["connection_specification"]
        register_secrets(config)
        # With the spec's defaults: a config without `base_url` asks the default one (as given, the
        # requester's URL would have no host, and the timezone would never be read).
        defaulted = _with_defaults(config, spec)
        timezone = None
        if not _refused_whatever_the_time(defaulted, spec):
            timezone = account_timezone(self.parameters["account_requester"], defaulted)
        session = DerivedSettings.of(config).session or SyncSession.open()
        prepared = prepare_config(config, spec, timezone=timezone)
        prepared[DERIVED]["session"] = session
        if prepared[DERIVED].get("problem"):
            # The CDK's entrypoint checks the prepared config against the spec before any component
            # speaks, and says only the schema's first error, in the schema's words. A config the
            # connector refuses becomes one the schema accepts and that holds only the problem, which
            # RefuseConfigProblem then says in full: the same sentences in every runtime.
            api_key = prepared.get("api_key")
            usable = isinstance(api_key, str) and api_key.strip() != ""
            prepared = {"api_key": api_key if usable else REFUSED_CONFIG_KEY, DERIVED: prepared[DERIVED]}
        config.clear()
        config.update(prepared)


# Stands in for a missing or empty key in a config the connector refuses (PrepareSyncConfig): never sent.
REFUSED_CONFIG_KEY: Final = "no-usable-api-key-in-this-config"


def register_secrets(config: Mapping[str, Any]) -> None:
    """Masks the API key in every line the connector prints from now on. The CDK's entrypoint
    registers the spec's secrets only after the source is built, and building it sends
    ``GET /api/accounts`` (``account_timezone``), whose failure the CDK logs with the answer, which
    may echo the key: every runtime builds the source through ``PrepareSyncConfig``, so this is
    where the key is registered first."""
    api_key = config.get("api_key")
    if isinstance(api_key, str) and api_key.strip():
        add_to_secrets(api_key)
        add_to_secrets(api_key.strip())


def _refused_whatever_the_time(config: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """Whether ``config`` is refused whatever the company's now turns out to be: then asking for
    the account's timezone would be a request for nothing (only "`start_date` is in the future"
    depends on it, so it is judged here as if every start were past)."""
    return bool(config_problems(config, spec, now=lambda: dt.datetime.max))


@dataclass
class RefuseConfigProblem(ValidationStrategy):
    """Refuses a config with ``_derived.problem``, the sentences ``config_problem`` found, as a
    config error the platform shows as it is (``spec.config_normalization_rules.validations``)."""

    def validate(self, value: Any) -> None:
        if value:
            raise AirbyteTracedException(message=str(value), internal_message=str(value), failure_type=FailureType.config_error)


@dataclass(frozen=True)
class DerivedSettings:
    """``config["_derived"]``, typed: what ``prepare_config`` derived from the config once per
    source, and every component reads (the manifest reads the same keys by name).

    >>> settings = DerivedSettings.of({"_derived": {"timezone": "Asia/Tokyo", "series_start": "2024-01-01T00:00:00",
    ...                                             "series_end": "2024-01-31T23:59:59"}})
    >>> settings.timezone, settings.start, settings.end
    ('Asia/Tokyo', datetime.datetime(2024, 1, 1, 0, 0), datetime.datetime(2024, 2, 1, 0, 0))
    """

    timezone: str | None = None
    problem: str | None = None
    series_start: str = format(FIRST_DATA_DAY, "%Y-%m-%dT%H:%M:%S")
    series_end: str = format(FIRST_DATA_DAY, "%Y-%m-%dT%H:%M:%S")
    series_step: str = "P1D"
    series_lookback: str = "P1D"
    values_timeframes: Sequence[Mapping[str, Any]] = ()
    # The source's SyncSession, by id (SyncSession.of).
    session: str | None = None

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> "DerivedSettings":
        derived = config.get(DERIVED)
        if not isinstance(derived, Mapping):
            return cls()
        known = {key: value for key, value in derived.items() if key in cls.__dataclass_fields__ and value is not None}
        return cls(**known)

    @property
    def start(self) -> dt.datetime:
        """Where a first series sync starts (a bucket start, company wall time)."""
        return wall_time(self.series_start)

    @property
    def end(self) -> dt.datetime:
        """Where every series read ends, exclusive (company wall time)."""
        return wall_time(self.series_end) + ONE_SECOND

    def resumed_start(self, cursor: str | None) -> dt.datetime:
        """Where a ``segment_series`` read starts: the saved cursor less the lookback, or the
        configured start for a first sync (never before it).

        >>> DerivedSettings(series_start="2024-01-01T00:00:00").resumed_start("2024-03-05T00:00:00")
        datetime.datetime(2024, 3, 4, 0, 0)
        """
        if not cursor:
            return self.start
        return max(_add_step(wall_time(cursor), self.series_lookback, times=-1), self.start)


# ---------------------------------------------------------------------------------------------
# 3. Windows: pure wall-time arithmetic in the account's timezone.
#
# Datetimes here are naive *company-local wall times*: Klaviyo ignores the offset of a custom
# timeframe and reads it in the account's timezone, so windows are planned in wall time. The
# timezone (from GET /api/accounts, when the key may read it) adds what wall time cannot tell: the
# company's "now", the offset each timeframe is sent with (RFC 3339 requires one), where a
# daylight-saving change makes a window longer in elapsed time, and how to read date_times written
# in another offset. Without it the connector sends +00:00 and keeps a margin on every window.
# ---------------------------------------------------------------------------------------------

WALL_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# The last second a window covers: windows are sent as [start, next_start - 1 s] so that a bucket
# starting at next_start is outside the window whether Klaviyo reads `end` as inclusive or not.
ONE_SECOND = dt.timedelta(seconds=1)


def wall_time(value: str) -> dt.datetime:
    """Parse a date or an ISO 8601 date-time and drop any offset.

    >>> wall_time("2024-01-05T00:00:00-05:00")
    datetime.datetime(2024, 1, 5, 0, 0)
    >>> wall_time("2024-01-05")
    datetime.datetime(2024, 1, 5, 0, 0)
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1]
    parsed = dt.datetime.fromisoformat(text)
    return parsed.replace(tzinfo=None, microsecond=0)


def format_wall_time(value: dt.datetime) -> str:
    return value.strftime(WALL_TIME_FORMAT)


def zone(timezone: str | None) -> ZoneInfo | None:
    """The account's timezone, or ``None`` when it is unknown (or a name this machine lacks)."""
    if not timezone:
        return None
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        return None


def company_now(timezone: str | None) -> dt.datetime:
    """The company's wall-clock now; UTC's when the timezone is unknown."""
    tz = zone(timezone) or dt.timezone.utc
    return dt.datetime.now(tz).replace(tzinfo=None, microsecond=0)


def timeframe_bound(wall: dt.datetime, timezone: str | None, last: bool = False) -> str:
    """A wall time as Klaviyo's spec types it (RFC 3339, with an offset): the account's offset at
    that wall time, or ``+00:00`` when the timezone is unknown. Klaviyo ignores the offset and
    reads the wall time in the account's timezone, so either way the same instant is asked for.

    >>> timeframe_bound(dt.datetime(2024, 7, 1), "America/New_York")
    '2024-07-01T00:00:00-04:00'
    >>> timeframe_bound(dt.datetime(2024, 7, 1, 23, 59, 59), None)
    '2024-07-01T23:59:59+00:00'
    >>> timeframe_bound(dt.datetime(2024, 11, 3, 1, 59, 59), "America/New_York", last=True)
    '2024-11-03T01:59:59-05:00'
    """
    tz = zone(timezone)
    # A window's last second inside a repeated (fall-back) hour is the later of the two: the
    # window covers both.
    return wall.replace(tzinfo=tz or dt.timezone.utc, fold=1 if last else 0).isoformat()


def company_date_time(date_time: str, timezone: str | None) -> str:
    """A bucket start Klaviyo wrote (with the company's offset, or in UTC: undocumented) as the
    same instant in company time; unchanged when the timezone is unknown or it has no offset.

    >>> company_date_time("2024-01-05T05:00:00+00:00", "America/New_York")
    '2024-01-05T00:00:00-05:00'
    >>> company_date_time("2024-01-05T00:00:00-05:00", "America/New_York")
    '2024-01-05T00:00:00-05:00'
    """
    tz = zone(timezone)
    if tz is None:
        return date_time
    parsed = dt.datetime.fromisoformat(date_time.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return date_time
    return parsed.astimezone(tz).isoformat()


def add_months(value: dt.datetime, months: int) -> dt.datetime:
    """``value`` moved by whole months, its day clamped to the month's last (isodate's arithmetic,
    the CDK's cursor's for the same steps).

    >>> add_months(dt.datetime(2024, 1, 31), 1), add_months(dt.datetime(2024, 3, 31), -13)
    (datetime.datetime(2024, 2, 29, 0, 0), datetime.datetime(2023, 2, 28, 0, 0))
    """
    moved: dt.datetime = value + isodate.Duration(months=months)
    return moved


def floor_to_bucket(value: dt.datetime, interval: str) -> dt.datetime:
    """The start of the bucket that contains ``value``.

    >>> floor_to_bucket(dt.datetime(2024, 1, 4, 13, 30), "weekly")  # a Thursday
    datetime.datetime(2024, 1, 1, 0, 0)
    """
    hour = value.replace(minute=0, second=0, microsecond=0)
    if interval == "hourly":
        return hour
    day = hour.replace(hour=0)
    if interval == "daily":
        return day
    if interval == "weekly":
        return day - dt.timedelta(days=(day.weekday() - WEEK_START_WEEKDAY) % 7)
    if interval == "monthly":
        return day.replace(day=1)
    raise ValueError(f"unknown interval {interval!r}")


def next_bucket(value: dt.datetime, interval: str) -> dt.datetime:
    """The start of the bucket after the one that contains ``value``."""
    start = floor_to_bucket(value, interval)
    if interval == "hourly":
        return start + dt.timedelta(hours=1)
    if interval == "daily":
        return start + dt.timedelta(days=1)
    if interval == "weekly":
        return start + dt.timedelta(weeks=1)
    return add_months(start, 1)


def first_series_bucket(start: dt.datetime, interval: str) -> dt.datetime:
    """Where a series sync starts: the bucket containing ``start``, or the first whole bucket
    when that one would begin before Klaviyo's first day of data (a week of 2023-05-29).

    Klaviyo does not say which day its weeks start on. A weekly sync starts on the earlier of the
    Sunday and the Monday on or before ``start``: the bucket holding ``start`` begins on or after
    it whichever the day, and the week before begins before it. Every later window edge is a
    whole number of weeks on, so each bucket starts inside exactly one window either way.

    >>> first_series_bucket(dt.datetime(2024, 1, 3), "weekly")  # a Wednesday: Sunday Dec 31 comes first
    datetime.datetime(2023, 12, 31, 0, 0)
    >>> first_series_bucket(dt.datetime(2023, 6, 1), "weekly")  # Thursday, Klaviyo's first day: Sunday June 4
    datetime.datetime(2023, 6, 4, 0, 0)
    """
    if interval == "weekly":
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        monday = day - dt.timedelta(days=day.weekday())
        sunday = day - dt.timedelta(days=(day.weekday() + 1) % 7)
        first = min(monday, sunday)
        while first < FIRST_DATA_DAY:  # the first Sunday or Monday on or after Klaviyo's first day
            first += dt.timedelta(days=1)
            while first.weekday() not in (0, 6):
                first += dt.timedelta(days=1)
        return first
    aligned = floor_to_bucket(start, interval)
    return aligned if aligned >= FIRST_DATA_DAY else next_bucket(aligned, interval)


def _add_step(start: dt.datetime, step: str, times: int = 1) -> dt.datetime:
    """``start`` plus ``times`` one of the ISO 8601 durations the manifest's cursor steps by
    (SERIES_WINDOW_STEP's, SERIES_WINDOW_CAP's, ``lookback_duration``'s), in wall time, as the
    CDK's cursor adds them (``isodate``): months at once, the day clamped to the month's last.

    >>> _add_step(dt.datetime(2024, 3, 31), "P1M", times=-1)
    datetime.datetime(2024, 2, 29, 0, 0)
    >>> _add_step(dt.datetime(2024, 3, 10, 1), "PT167H")
    datetime.datetime(2024, 3, 17, 0, 0)
    """
    moved: dt.datetime = start + isodate.parse_duration(step) * times
    return moved


def elapsed(start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> dt.timedelta:
    """Real time between two company wall times; a repeated (fall-back) wall time is read the way
    that makes the span longest."""
    first = start.replace(tzinfo=tz, fold=0).astimezone(dt.timezone.utc)
    last = end.replace(tzinfo=tz, fold=1).astimezone(dt.timezone.utc)
    return last - first


def series_window_step(interval: str, timezone: str | None) -> str:
    """The manifest cursor's step for ``interval``: the longest window Klaviyo's caps allow as the
    connector reads them (section 1), so that each cursor window holds the start of a report call.
    What each call asks for is the plan's (``plan_series_windows``).

    >>> series_window_step("hourly", "America/New_York"), series_window_step("hourly", None)
    ('P7D', 'PT167H')
    """
    cap = SERIES_WINDOW_CAP.get(interval)
    return cap if cap is not None and zone(timezone) is not None else SERIES_WINDOW_STEP[interval]


def lookback_duration(interval: str, days: int) -> str:
    """The cursor's lookback as an ISO 8601 duration of whole buckets, at least ``days`` long.

    Subtracting whole buckets from a bucket start lands on a bucket start, so incremental
    windows stay aligned without any clamping.

    >>> lookback_duration("weekly", 8)
    'P2W'
    >>> lookback_duration("monthly", 1)
    'P1M'
    """
    if interval == "weekly":
        return f"P{math.ceil(days / 7)}W"
    if interval == "monthly":
        return f"P{math.ceil(days / 28)}M"
    return f"P{days}D"


def bucket_in_window(bucket_start: str, window_start: str, window_last_second: str) -> bool:
    """Whether a bucket belongs to the window that asked for it: its start (compared in company
    wall time: ``bucket_start`` has been placed in company time by ``company_date_time``) lies in
    ``[window_start, window_last_second]``.

    >>> bucket_in_window("2024-03-01T00:00:00-05:00", "2024-01-01T00:00:00", "2024-02-29T23:59:59")
    False
    """
    wall = bucket_start[:19]
    return window_start[:19] <= wall <= window_last_second[:19]


@dataclass(frozen=True)
class ValuesTimeframe:
    """One ``segment_values`` request timeframe: a Klaviyo key, or a custom window.

    ``label`` is what rows carry in ``timeframe``: the key, or ``start/end`` in company wall time
    with ``end`` exclusive (the next window's start). ``start`` and ``end`` are the same bounds as
    RFC 3339 timestamps with the account's offset (``None`` when its timezone is unknown).
    """

    label: str
    request: dict[str, str]
    start: str | None = None
    end: str | None = None

    def as_partition(self) -> dict[str, Any]:
        return {
            "timeframe": self.label,
            "timeframe_start": self.start,
            "timeframe_end": self.end,
            "request_timeframe": self.request,
        }


def plan_values_timeframes(
    timeframe: str, start: dt.datetime, end: dt.datetime, timezone: str | None = None
) -> list[ValuesTimeframe]:
    """The timeframes a ``segment_values`` sync asks for.

    A key is asked for once. ``custom`` cuts ``[start, end)`` into windows of at most a year and
    at most 365 days (Klaviyo's "1 year", read harshly: a leap year's 366 days may be refused)
    that touch without overlapping, each sent as ``[window_start, window_end - 1 s]`` with the
    account's offsets (``timeframe_bound``).

    >>> [t.label for t in plan_values_timeframes("custom", dt.datetime(2023, 1, 1), dt.datetime(2024, 6, 1))]
    ['2023-01-01T00:00:00/2024-01-01T00:00:00', '2024-01-01T00:00:00/2024-06-01T00:00:00']
    >>> plan_values_timeframes("custom", dt.datetime(2023, 6, 1), dt.datetime(2024, 7, 1))[0].label  # 2024 is a leap year
    '2023-06-01T00:00:00/2024-05-31T00:00:00'
    """
    if timeframe != "custom":
        return [ValuesTimeframe(label=timeframe, request={"key": timeframe})]
    windows = []
    for window_start, window_end in _year_windows(start, end):
        first, last = format_wall_time(window_start), format_wall_time(window_end)
        windows.append(
            ValuesTimeframe(
                label=f"{first}/{last}",
                request={
                    "start": timeframe_bound(window_start, timezone),
                    "end": timeframe_bound(window_end - ONE_SECOND, timezone, last=True),
                },
                # Typed timestamps: without the timezone the instant is unknown, so null (the
                # label keeps the wall times).
                start=timeframe_bound(window_start, timezone) if zone(timezone) else None,
                end=timeframe_bound(window_end, timezone) if zone(timezone) else None,
            )
        )
    return windows


def _year_windows(start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    window_start = start
    while window_start < end:
        year_on = add_months(window_start, 12 * VALUES_WINDOW_YEARS)
        window_end = min(year_on, window_start + dt.timedelta(days=VALUES_WINDOW_DAYS), end)
        yield window_start, window_end
        window_start = window_end


# The westernmost UTC offset (UTC-12): without the account's timezone, a window's end (company wall
# time) lies at most this long after the same wall time read as UTC.
LATEST_OFFSET = dt.timedelta(hours=12)


def _instant(value: str) -> dt.datetime | None:
    """An ISO 8601 date-time with an offset as an aware datetime; ``None`` if it has none or is not one."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None


def latest_instant(wall: dt.datetime, timezone: str | None) -> dt.datetime:
    """The instant a company wall time stands for; without the timezone, the latest it could be.

    >>> latest_instant(dt.datetime(2024, 9, 8), "America/Santiago")  # skipped by the spring-forward
    datetime.datetime(2024, 9, 8, 4, 0, tzinfo=datetime.timezone.utc)
    """
    tz = zone(timezone)
    if tz is not None:
        # A repeated wall time is its later instant; one skipped by a spring-forward, the later reading.
        return max(wall.replace(tzinfo=tz, fold=fold).astimezone(dt.timezone.utc) for fold in (0, 1))
    return wall.replace(tzinfo=dt.timezone.utc) + LATEST_OFFSET


def plan_segment_batches(
    segments: Sequence[tuple[str, str | None]], window_end: dt.datetime | None, timezone: str | None, batch_size: int
) -> list[list[str]]:
    """The batches a report window (ending, exclusive, at company wall time ``window_end``) asks
    about: only the segments created before it ends (a segment has nothing to report before it
    existed), oldest first, ``batch_size`` at a time: ``ceil(existing / batch_size)`` calls, the
    fewest. ``segments`` are ``(id, created)``; a segment whose ``created`` is unknown always takes
    part, and every segment does when ``window_end`` is ``None`` (a timeframe key, relative to
    now). Without the timezone, a window is taken to end as late as any offset allows.

    >>> segments = [("A", "2024-03-01T10:00:00-05:00"), ("B", "2024-01-01T00:00:00+00:00"), ("C", None)]
    >>> plan_segment_batches(segments, dt.datetime(2024, 2, 1), "America/New_York", 2)
    [['C', 'B']]
    >>> plan_segment_batches(segments, dt.datetime(2024, 3, 2), "America/New_York", 2)
    [['C', 'B'], ['A']]
    """
    end = latest_instant(window_end, timezone) if window_end is not None else None
    oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    existing = []
    for segment_id, created in segments:
        at = _instant(created) if created else None
        if at is None or end is None or at < end:
            existing.append((at or oldest, segment_id))
    existing.sort()
    ids = [segment_id for _, segment_id in existing]
    return [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]


def bucket_ended_before(date_time: str, interval: str, created: str | None, timezone: str | None) -> bool:
    """Whether the bucket starting at ``date_time`` ended at or before ``created``: a segment that
    did not exist yet has no row for it. The bucket holding the creation is the first kept.

    >>> bucket_ended_before("2024-03-01T00:00:00-05:00", "daily", "2024-03-01T10:00:00-05:00", "America/New_York")
    False
    >>> bucket_ended_before("2024-02-29T00:00:00-05:00", "daily", "2024-03-01T00:00:00-05:00", "America/New_York")
    True
    >>> # Without the timezone, a day written in UTC ends a day after its UTC start, not at UTC midnight.
    >>> bucket_ended_before("2024-03-01T05:00:00+00:00", "daily", "2024-03-01T20:00:00-05:00", None)
    False
    """
    created_at = _instant(created) if created else None
    start = _instant(date_time)
    if created_at is None or start is None:
        return False
    if interval == "hourly":  # an hour of real time, even the repeated one of a fall-back
        return start + dt.timedelta(hours=1) <= created_at
    # Days, weeks and months end at the same wall time a bucket later, in company time when the
    # timezone is known, else in the offset Klaviyo wrote (a UTC-written start is not floored).
    tz = zone(timezone) or start.tzinfo
    wall = start.astimezone(tz).replace(tzinfo=None)
    step = {"daily": dt.timedelta(days=1), "weekly": dt.timedelta(weeks=1)}
    end = wall + step[interval] if interval in step else add_months(wall, 1)
    return end.replace(tzinfo=tz).astimezone(dt.timezone.utc) <= created_at


# ---------------------------------------------------------------------------------------------
# 4. The plan: every report call a sync will make, decided before the first one, by pure functions.
#    `plan`, the read's plan line, its progress lines and SegmentBatchRetriever use the same value.
# ---------------------------------------------------------------------------------------------


def series_windows(derived: "DerivedSettings", start: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The ``[start, end)`` wall-time windows ``segment_series``' cursor cuts from ``start`` (where
    the sync starts: ``series_start``, or the saved state less the lookback), ``series_step`` at a time.
    These are the state's units; the report calls are planned by ``plan_series_calls``.

    >>> derived = DerivedSettings(series_start="2024-01-01T00:00:00", series_end="2024-04-09T23:59:59", series_step="P60D")
    >>> [(a.date().isoformat(), b.date().isoformat()) for a, b in series_windows(derived, dt.datetime(2024, 1, 1))]
    [('2024-01-01', '2024-03-01'), ('2024-03-01', '2024-04-10')]
    """
    end = derived.end
    windows = []
    while start < end:
        window_end = min(_add_step(start, derived.series_step), end)
        windows.append((start, window_end))
        start = window_end
    return windows


def bucket_boundaries(start: dt.datetime, end: dt.datetime, interval: str) -> list[dt.datetime]:
    """Where a series report window may start or end: ``start`` (a bucket start), each bucket start
    after it, and ``end``. Weeks are counted from ``start`` (``first_series_bucket``), so every
    boundary is a whole number of buckets on whichever day Klaviyo starts its weeks.

    >>> [b.day for b in bucket_boundaries(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 3, 12), "daily")]
    [1, 2, 3, 3]
    """
    unit = {"hourly": "PT1H", "daily": "P1D", "weekly": "P1W", "monthly": "P1M"}[interval]
    boundaries, count = [start], 1
    while boundaries[-1] < end:
        boundaries.append(min(_add_step(start, unit, times=count), end))
        count += 1
    return boundaries


def window_fits(start: dt.datetime, end: dt.datetime, interval: str, timezone: str | None) -> bool:
    """Whether one series call may ask for ``[start, end)``, by Klaviyo's caps as the connector
    reads them (section 1).

    >>> window_fits(dt.datetime(2024, 4, 1), dt.datetime(2024, 4, 8), "hourly", "America/New_York")
    True
    >>> window_fits(dt.datetime(2024, 10, 30), dt.datetime(2024, 11, 6), "hourly", "America/New_York")  # holds a fall-back
    False
    >>> window_fits(dt.datetime(2024, 4, 1), dt.datetime(2024, 4, 8), "hourly", None)
    False
    """
    tz = zone(timezone)
    if tz is None:
        return end <= _add_step(start, SERIES_WINDOW_STEP[interval])
    cap = SERIES_WINDOW_CAP.get(interval, SERIES_WINDOW_STEP[interval])
    if end > _add_step(start, cap):
        return False
    return elapsed(start, end - ONE_SECOND, tz) < SERIES_ELAPSED_CAP[interval]


def plan_series_windows(
    boundaries: Sequence[dt.datetime],
    segments_by: Callable[[dt.datetime], int],
    batch_size: int,
    fits: Callable[[dt.datetime, dt.datetime], bool],
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The series windows that cover ``boundaries[0]`` to ``boundaries[-1]`` in the fewest report
    calls: dynamic programming over window ends.

    A window ``[b_i, b_j)`` costs ``ceil(segments_by(b_j) / batch_size)`` calls: it asks about the
    segments that exist by its end, and that depends on its end only. With ``f(j)`` the fewest calls
    that cover up to ``b_j``, ``f(j) = cost(j) + min f(i)`` over the starts ``i`` whose window fits.
    ``f`` never decreases (cut the last window of a cover of ``b_(j+1)`` back to ``b_j``: it still
    fits and costs no more), and the starts that fit an end are a run ``lo(j) .. j-1``, so the
    minimum is ``f(lo(j))``: each window reaches back as far as the caps allow, and the plan is found
    in one pass. Ties go to the plan whose windows are longest at the end of the range.

    What it does not try, and why: windows of different lengths for different segments (old
    segments in long windows, new ones in their own) could save calls, but every segment would need
    a cursor of its own; the streams keep one shared cursor so that state is one date. Batches stay
    ``batch_size`` ids of the oldest segments first, which for a given window is already the fewest.

    >>> days = [dt.datetime(2024, 1, 1) + dt.timedelta(days=d) for d in range(5)]
    >>> joined = {days[0]: 100, days[1]: 100, days[2]: 100, days[3]: 150, days[4]: 150}  # 50 segments join on day 3
    >>> fits = lambda a, b: (b - a).days <= 3
    >>> [(a.day, b.day) for a, b in plan_series_windows(days, lambda end: joined[end], 100, fits)]
    [(1, 2), (2, 5)]
    """
    count = len(boundaries)
    fewest = [0] * count
    previous = [0] * count
    lo = 0
    for j in range(1, count):
        while not fits(boundaries[lo], boundaries[j]):
            lo += 1
        if lo == j:
            raise ValueError(f"no series window fits between {boundaries[j - 1]} and {boundaries[j]}")
        previous[j] = lo
        fewest[j] = math.ceil(segments_by(boundaries[j]) / batch_size) + fewest[lo]
    windows = []
    j = count - 1
    while j > 0:
        windows.append((boundaries[previous[j]], boundaries[j]))
        j = previous[j]
    return windows[::-1]


def forward_windows(
    boundaries: Sequence[dt.datetime], fits: Callable[[dt.datetime, dt.datetime], bool]
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Windows from ``boundaries[0]`` on, each as long as ``fits`` allows: what a sync that
    ``max_report_requests`` cuts short asks for, so that its calls take it as far as they can.

    >>> days = [dt.datetime(2024, 1, d) for d in range(1, 8)]
    >>> [(a.day, b.day) for a, b in forward_windows(days, lambda a, b: (b - a).days <= 4)]
    [(1, 5), (5, 7)]
    """
    windows, i = [], 0
    while i < len(boundaries) - 1:
        j = i + 1
        while j + 1 < len(boundaries) and fits(boundaries[i], boundaries[j + 1]):
            j += 1
        windows.append((boundaries[i], boundaries[j]))
        i = j
    return windows


@dataclass(frozen=True)
class ReportCall:
    """One report call of a plan: its place in its stream (``number`` of the stream's calls), the
    partition whose rows it gives (a cursor window's start, or a values timeframe's label), what it
    asks for (a series window ``[window_start, window_end)`` in company wall time, or the values
    timeframe), and which segments (``segment_ids``, the ``first_segment``-th of those the window asks
    about onwards, oldest first)."""

    number: int
    partition: str
    segment_ids: tuple[str, ...]
    first_segment: int
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    values_timeframe: Mapping[str, Any] | None = None

    def span(self) -> str:
        if self.window_start is not None and self.window_end is not None:
            return f"{format_wall_time(self.window_start)} → {format_wall_time(self.window_end)}"
        return str((self.values_timeframe or {}).get("timeframe"))

    def segments(self) -> str:
        last = self.first_segment + len(self.segment_ids) - 1
        return f"segment {self.first_segment}" if last == self.first_segment else f"segments {self.first_segment}–{last}"


@dataclass(frozen=True)
class ReportPlan:
    """Every report call one stream will make in this sync, in order (``calls``), and how many of
    them ``max_report_requests`` lets it make (``allowed``, from the first).

    ``start`` is where a series read starts and ``start_reason`` why (the configured start, or the
    saved state less the lookback); both are ``None`` for values timeframes. ``resumable``: the
    stream goes on from its state in the next sync; ``resumed``: this read starts from a saved state
    (the only sign, in every runtime, that the stream is read incrementally). ``cap`` is
    ``max_report_requests`` and ``taken_before`` what the streams planned before this one take of it.
    """

    stream: str
    kind: str
    segments: int
    partitions: tuple[str, ...]
    calls: tuple[ReportCall, ...]
    allowed: int
    start: dt.datetime | None = None
    start_reason: str | None = None
    resumable: bool = False
    resumed: bool = False
    cap: int | None = None
    taken_before: tuple[tuple[str, int], ...] = ()

    def calls_of(self, partition: str) -> list[ReportCall]:
        """The calls whose rows belong to ``partition`` (a cursor window's start, a timeframe's label)."""
        return [call for call in self.calls if call.partition == partition]

    def allowed_calls_of(self, partition: str) -> list[ReportCall]:
        """The calls of ``partition`` that ``max_report_requests`` leaves room for."""
        return [call for call in self.calls_of(partition) if call.number <= self.allowed]

    def first_left_out(self) -> str | None:
        """The partition where ``max_report_requests`` stops this sync, if it does."""
        return next((call.partition for call in self.calls if call.number > self.allowed), None)

    def stop_of(self, partition: str) -> str | None:
        """Where ``max_report_requests`` ends this stream's read, seen from ``partition``: ``"warn"``
        in the partition it cuts when the read resumed from a state (it is incremental: the next sync
        goes on, this one ends cleanly); else (it may be a full refresh, which must not end as if it
        had read everything) ``"before"`` its calls, in the first partition with nothing left to read
        after the cut, so that the state of every partition read is saved, or ``"after"`` them when
        the cut partition is the last one; ``None`` where it does not stop.

        >>> call = lambda n, w: ReportCall(n, f"w{w}", ("A",), 1, dt.datetime(2024, 1, w))
        >>> plan = ReportPlan("s", SERIES_WINDOWS, 1, ("w1", "w2", "w3"), (call(1, 1), call(2, 2), call(3, 2)), 2,
        ...                   resumable=True, cap=2)
        >>> [plan.stop_of(p) for p in plan.partitions], [replace(plan, resumed=True).stop_of(p) for p in plan.partitions]
        ([None, None, 'before'], [None, 'warn', None])
        >>> replace(plan, partitions=("w1", "w2")).stop_of("w2")
        'after'
        """
        cut = self.first_left_out()
        if cut is None or partition not in self.partitions:
            return None
        if self.resumed:
            return "warn" if partition == cut else None
        cut_at = self.partitions.index(cut)
        if self.allowed_calls_of(cut):  # read its whole call windows, then stop at the next partition
            if cut_at == len(self.partitions) - 1:
                return "after" if partition == cut else None
            return "before" if partition == self.partitions[cut_at + 1] else None
        return "before" if partition == cut else None

    def _left(self) -> tuple[int, str]:
        """How many calls ``max_report_requests`` leaves this stream, and what the others took, said."""
        taken = sum(count for _, count in self.taken_before)
        others = " and ".join(f"{count} for {stream}" for stream, count in self.taken_before)
        return (self.cap or 0) - taken, f" after {others}" if others else ""

    def refusal(self) -> str | None:
        """Why ``max_report_requests`` leaves this stream no way to read anything it should, in one
        sentence (``None`` when it leaves one): a stream read whole whose calls do not all fit, or a
        resumable one whose first call window does not.

        >>> call = lambda n, w: ReportCall(n, f"w{w}", ("A",), 1, dt.datetime(2024, 1, w))
        >>> plan = ReportPlan("segment_series", SERIES_WINDOWS, 1, ("w1",), (call(1, 1), call(2, 1)), 0,
        ...                   resumable=True, cap=3, taken_before=(("segment_values", 2),))
        >>> plan.refusal()  # doctest: +NORMALIZE_WHITESPACE
        '`max_report_requests` (3) leaves segment_series 1 report call after 2 for segment_values, fewer than the 2
         its first window needs: raise it to at least 4.'
        """
        if self.cap is None or self.allowed == len(self.calls) or (self.resumable and self.allowed > 0):
            return None
        left, after = self._left()
        taken = self.cap - left
        if self.resumable:
            needed = len(self._first_unit())
            what = f"the {needed} its first window needs"
        else:
            needed = len(self.calls)
            what = f"the {needed} it needs to be read in full"
        return (
            f"`max_report_requests` ({self.cap}) leaves {self.stream} {_count_of(left, 'report call')}{after}, "
            f"fewer than {what}: raise it to at least {taken + needed}."
        )

    def _first_unit(self) -> list[ReportCall]:
        first = self.calls[0]
        return [call for call in self.calls if (call.partition, call.window_start) == (first.partition, first.window_start)]

    def stopped_short(self) -> str:
        """The sentence a sync ends with when ``max_report_requests`` stopped this stream before its
        end and it did not start from a saved state: it may be a full refresh, which must not end
        as if it had read everything (the state saved so far lets an incremental sync go on).

        >>> call = lambda n, w: ReportCall(n, f"w{w}", ("A",), 1, dt.datetime(2024, 1, w), dt.datetime(2024, 1, w + 1))
        >>> ReportPlan("segment_series", SERIES_WINDOWS, 1, ("w1", "w2"), (call(1, 1), call(2, 2)), 1, resumable=True,
        ...            cap=1).stopped_short()  # doctest: +NORMALIZE_WHITESPACE
        '`max_report_requests` (1) stopped segment_series after 1 of its 2 report calls, at 2024-01-02T00:00:00: read
         incrementally, the next sync goes on from the state saved so far; to read it in full in one sync (a full
         refresh), raise it to at least 2.'
        """
        left, _ = self._left()
        taken = (self.cap or 0) - left
        last = self.calls[self.allowed - 1] if self.allowed else None
        at = f", at {format_wall_time(last.window_end)}" if last is not None and last.window_end is not None else ""
        return (
            f"`max_report_requests` ({self.cap}) stopped {self.stream} after {self.allowed} of its {len(self.calls)} "
            f"report calls{at}: read incrementally, the next sync goes on from the state saved so far; to read it in "
            f"full in one sync (a full refresh), raise it to at least {taken + len(self.calls)}."
        )

    def left_for_next_sync(self) -> str:
        """The warning a resumed sync reads on with when ``max_report_requests`` cuts it short."""
        return (
            f"`max_report_requests` ({self.cap}) reached: {self.stream} leaves its last "
            f"{len(self.calls) - self.allowed} report calls for the next sync, which goes on from the saved state."
        )

    def describe(self) -> str:
        what = "timeframe" if self.kind == VALUES_TIMEFRAMES else "window"
        count, calls = len(self.partitions), len(self.calls)
        line = (
            f"{self.stream}: {_count_of(self.segments, 'segment')}, {_count_of(count, what)}, {_count_of(calls, 'report call')}"
        )
        if self.start is not None:
            line += f", from {format_wall_time(self.start)} ({self.start_reason})"
        return line + "."

    def progress(self, call: ReportCall, rows: int) -> str:
        """Where a read stands once ``call`` is answered: a position in this plan."""
        return f"{self.stream}: call {call.number} of {len(self.calls)} ({call.span()}, {call.segments()}), {rows:,} rows so far."


def _count_of(number: int, noun: str) -> str:
    """``number`` ``noun``\\s, said.

    >>> _count_of(1, "report call"), _count_of(1250, "segment")
    ('1 report call', '1,250 segments')
    """
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


# What a report stream's partitions are (manifest.yaml, definitions.report_streams).
VALUES_TIMEFRAMES: Final = "values_timeframes"
SERIES_WINDOWS: Final = "series_windows"


@dataclass(frozen=True)
class ReportStream:
    """A report stream as the plan sees it (``definitions.report_streams`` in the manifest): its
    partitions (``values_timeframes`` or ``series_windows``) and whether it can resume from a saved
    state when read incrementally (``resumable``); a stream that cannot is read whole or not at all."""

    name: str
    partitions: str
    resumable: bool


def report_streams(definition: Mapping[str, Mapping[str, Any]]) -> list[ReportStream]:
    """The manifest's ``report_streams`` definition as ``ReportStream``s, in read order.

    >>> report_streams({"segment_values": {"partitions": "values_timeframes", "resumable": False}})
    [ReportStream(name='segment_values', partitions='values_timeframes', resumable=False)]
    """
    return [ReportStream(name, str(spec["partitions"]), bool(spec.get("resumable"))) for name, spec in definition.items()]


def plan_series_calls(
    derived: "DerivedSettings",
    interval: str,
    segments: Sequence[tuple[str, str | None]],
    batch_size: int,
    start: dt.datetime,
    forward: bool = False,
) -> list[tuple[str, dt.datetime, dt.datetime, list[list[str]]]]:
    """``(partition, window_start, window_end, batches)`` of every series call window from ``start``:
    the fewest calls (``plan_series_windows``), each window given to the cursor window that holds
    its start. A window may read on past its cursor window's end: its rows are written with that
    cursor window, every batch of them before it closes, so the state (the newest bucket written)
    never passes a bucket some segment lacks, and the next cursor window's calls start where it stopped.
    ``forward`` plans ``forward_windows`` instead (a sync that ``max_report_requests`` cuts short)."""
    end = derived.end
    if start >= end:
        return []
    # Oldest first (an unknown creation counts as the oldest), as plan_segment_batches orders them:
    # the segments existing by any end are a prefix of this list.
    oldest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    by_creation = sorted(((_instant(c) if c else None) or oldest, segment_id) for segment_id, c in segments)
    created = [at.timestamp() for at, _ in by_creation]  # plain numbers: aware datetimes compare slowly
    ids = [segment_id for _, segment_id in by_creation]

    def segments_by(window_end: dt.datetime) -> int:
        return bisect.bisect_left(created, latest_instant(window_end, derived.timezone).timestamp())

    def fits(window_start: dt.datetime, window_end: dt.datetime) -> bool:
        return window_fits(window_start, window_end, interval, derived.timezone)

    boundaries = bucket_boundaries(start, end, interval)
    cursor_starts = [window_start for window_start, _ in series_windows(derived, start)]
    planned = []
    windows = forward_windows(boundaries, fits) if forward else plan_series_windows(boundaries, segments_by, batch_size, fits)
    for window_start, window_end in windows:
        holder = cursor_starts[bisect.bisect_right(cursor_starts, window_start) - 1]
        existing = ids[: segments_by(window_end)]
        batches = [existing[i : i + batch_size] for i in range(0, len(existing), batch_size)]
        planned.append((format_wall_time(holder), window_start, window_end, batches))
    return planned


def plan_report_stream(
    stream: ReportStream,
    derived: "DerivedSettings",
    interval: str,
    segments: Sequence[tuple[str, str | None]],
    batch_size: int,
    series_start: dt.datetime | None = None,
    allowance: int | None = None,
    forward: bool = False,
) -> ReportPlan:
    """Every call ``stream`` will make (see ``ReportPlan``). A series starts at ``series_start`` (the
    cursor's first window: the configured start, or the saved state less the lookback), by default
    the configured start; ``allowance`` is its share of ``max_report_requests`` (``None``: no limit).
    A series read the allowance cuts short, or a ``forward`` one (a Connector Builder test read, where
    each cursor window is a slice of its own), plans its windows forward (``forward_windows``).

    >>> derived = DerivedSettings(series_start="2024-01-01T00:00:00", series_end="2025-02-03T23:59:59", series_step="P59D")
    >>> plan = plan_report_stream(ReportStream("segment_series", SERIES_WINDOWS, True), derived, "daily",
    ...                           [(f"S{n}", None) for n in range(250)], 100)
    >>> len(plan.partitions), len(plan.calls), plan.calls[-1].segments()
    (7, 21, 'segments 201–250')
    """
    plan_start = start_reason = None
    windows: list[tuple[str, dt.datetime | None, dt.datetime | None, Mapping[str, Any] | None, list[list[str]]]]
    if stream.partitions == VALUES_TIMEFRAMES:
        partitions = [str(t["timeframe"]) for t in derived.values_timeframes]
        windows = [
            (str(t["timeframe"]), None, None, t, plan_segment_batches(segments, _values_end(t), derived.timezone, batch_size))
            for t in derived.values_timeframes
        ]
    else:
        plan_start = series_start or derived.start
        start_reason = "the configured start" if plan_start <= derived.start else "the saved state less the lookback"
        plan_start = max(plan_start, derived.start)
        partitions = [format_wall_time(window_start) for window_start, _ in series_windows(derived, plan_start)]
        series_calls = plan_series_calls(derived, interval, segments, batch_size, plan_start, forward)
        if allowance is not None and sum(len(batches) for *_, batches in series_calls) > allowance:
            # Cut short: the fewest calls for the whole range may start with a short window, which
            # would get a sync with a small allowance nowhere; read forward as far as the calls go.
            series_calls = plan_series_calls(derived, interval, segments, batch_size, plan_start, forward=True)
        windows = [(partition, start, end, None, batches) for partition, start, end, batches in series_calls]
    calls: list[ReportCall] = []
    for partition, window_start, window_end, timeframe, batches in windows:
        for index, batch in enumerate(batches):
            calls.append(
                ReportCall(len(calls) + 1, partition, tuple(batch), index * batch_size + 1, window_start, window_end, timeframe)
            )
    resumed = plan_start is not None and plan_start > derived.start
    if allowance is None or len(calls) <= allowance:
        allowed = len(calls)
    elif not stream.resumable:
        allowed = 0  # read whole or not at all: a full-refresh table is never replaced by part of itself
    else:
        # The sync may stop after any whole call window: the state is the newest bucket written,
        # which every segment has.
        allowed = _whole_windows_within(calls, allowance)
    return ReportPlan(
        stream.name, stream.partitions, len(segments), tuple(partitions), tuple(calls), allowed, plan_start, start_reason,
        resumable=stream.resumable, resumed=resumed,
    )  # fmt: skip


def _values_end(timeframe: Mapping[str, Any]) -> dt.datetime | None:
    """Where a values timeframe ends in company wall time (``None`` for a key, or when the timezone is unknown)."""
    end = timeframe.get("timeframe_end")
    return wall_time(end) if end else None


def _whole_windows_within(calls: Sequence[ReportCall], allowance: int) -> int:
    """How many calls from the first fit ``allowance`` without cutting a call window in two: a
    window read for some segments only would move the state past the others.

    >>> calls = [ReportCall(n, "p", ("A",), 1, dt.datetime(2024, 1, w)) for n, w in enumerate([1, 1, 2, 2, 3], start=1)]
    >>> _whole_windows_within(calls, 3), _whole_windows_within(calls, 4)
    (2, 4)
    """
    allowed = 0
    for index, call in enumerate(calls[:allowance]):
        following = calls[index + 1] if index + 1 < len(calls) else None
        window = (call.partition, call.window_start, call.values_timeframe)
        if following is None or (following.partition, following.window_start, following.values_timeframe) != window:
            allowed = index + 1
    return allowed


def plan_streams(
    streams: Sequence[ReportStream],
    derived: "DerivedSettings",
    interval: str,
    segments: Sequence[tuple[str, str | None]],
    batch_size: int,
    max_report_requests: int | None,
    series_start: dt.datetime | None = None,
    forward: bool = False,
    taken_before: Sequence[tuple[str, int]] = (),
) -> list[ReportPlan]:
    """The plans of ``streams``, in the order they are read, sharing ``max_report_requests``: each
    takes what the streams read before it left (``taken_before``: those this sync has already read).

    Components never see the configured catalog (the manifest-only runtime hands it to none), so
    nothing here depends on which streams are selected or how each is read: a stream read whole
    (not ``resumable``) is granted every call it needs or none (it then fails rather than replace
    its table with part of it), and a resumable one as many as are left (``plan_report_stream``
    says where it stops short). Airbyte reads the streams in the catalog's order, which is
    discover's (``segment_values`` before ``segment_series``).

    >>> streams = report_streams({"segment_values": {"partitions": VALUES_TIMEFRAMES},
    ...                           "segment_series": {"partitions": SERIES_WINDOWS, "resumable": True}})
    >>> derived = DerivedSettings(series_start="2024-01-01T00:00:00", series_end="2024-06-28T23:59:59", series_step="P60D",
    ...                           values_timeframes=[{"timeframe": "last_30_days"}])
    >>> plans = plan_streams(streams, derived, "daily", [(f"S{n}", None) for n in range(100)], 100, max_report_requests=4)
    >>> [(plan.stream, len(plan.calls), plan.allowed, plan.taken_before) for plan in plans]
    [('segment_values', 1, 1, ()), ('segment_series', 4, 3, (('segment_values', 1),))]
    """
    plans = []
    taken = [(stream, count) for stream, count in taken_before if count]
    for stream in streams:
        left = None if max_report_requests is None else max(max_report_requests - sum(count for _, count in taken), 0)
        plan = plan_report_stream(stream, derived, interval, segments, batch_size, series_start, left, forward)
        plans.append(replace(plan, cap=max_report_requests, taken_before=tuple(taken)))
        if plan.allowed:
            taken.append((stream.name, plan.allowed))
    return plans


def cost_of(calls: int) -> str:
    """What ``calls`` report calls cost: the time at Klaviyo's steady limit and the daily quota's share.

    >>> cost_of(21)
    "about 10 minutes at Klaviyo's 2 report calls a minute, 9% of its 225-call daily quota"
    """
    minutes = max(calls - 1, 0) / REPORT_CALLS_PER_MINUTE
    duration = f"about {minutes:.0f} minute{'s' if round(minutes) != 1 else ''}" if minutes >= 1 else "under a minute"
    return (
        f"{duration} at Klaviyo's {REPORT_CALLS_PER_MINUTE} report calls a minute, "
        f"{calls / DAILY_REPORT_QUOTA:.0%} of its {DAILY_REPORT_QUOTA}-call daily quota"
    )


def describe_plan(plans: Sequence[ReportPlan], max_report_requests: int | None = None) -> list[str]:
    """The plan for a person: a line per stream, then the total, the time it takes at Klaviyo's
    steady limit and its share of the daily quota.

    >>> derived = DerivedSettings(series_start="2024-01-01T00:00:00", series_end="2025-02-03T23:59:59", series_step="P59D")
    >>> plan = plan_report_stream(ReportStream("segment_series", SERIES_WINDOWS, True), derived, "daily",
    ...                           [(f"S{n}", None) for n in range(250)], 100)
    >>> for line in describe_plan([plan]):
    ...     print(line)
    segment_series: 250 segments, 7 windows, 21 report calls, from 2024-01-01T00:00:00 (the configured start).
    In all: 21 report calls, about 10 minutes at Klaviyo's 2 report calls a minute, 9% of its 225-call daily quota.
    """
    total = sum(len(plan.calls) for plan in plans)
    lines = [plan.describe() for plan in plans]
    lines.append(f"In all: {_count_of(total, 'report call')}, {cost_of(total)}.")
    if total > DAILY_REPORT_QUOTA:
        lines.append(
            f"That is {math.ceil(total / DAILY_REPORT_QUOTA)} days of quota: set `max_report_requests` to spread it "
            "over several syncs (a stream read incrementally resumes from its state)."
        )
    allowed = sum(plan.allowed for plan in plans)
    if max_report_requests is not None and allowed < total:
        lines.append(f"`max_report_requests` ({max_report_requests}) stops this sync after {allowed} of them.")
    for plan in plans:
        refusal = plan.refusal()
        if refusal:
            lines.append(refusal)
        elif plan.allowed < len(plan.calls):
            lines.append(plan.left_for_next_sync() if plan.resumed else plan.stopped_short())
    return lines


# ---------------------------------------------------------------------------------------------
# 5. Requests: the source's SyncSession plans each report stream; SegmentBatchRetriever carries out its part.
# ---------------------------------------------------------------------------------------------

# Set by the manifest's `check` (CheckStream.config_overrides): retries back off in a fraction of
# a second, and the report streams list their segments without a report call.
CHECKING = "_checking"


class _SliceWithCachedHash(StreamSlice):
    """A window's slice that hashes once: the cursor looks up every record's slice in a dict, and
    ``StreamSlice`` re-serializes itself for each hash. Equal to (and hashing like) the original."""

    _hash: int

    @classmethod
    def of(cls, original: StreamSlice) -> "_SliceWithCachedHash":
        window = cls(partition=original.partition, cursor_slice=original.cursor_slice, extra_fields=original.extra_fields)
        window._hash = StreamSlice.__hash__(original)
        return window

    def __hash__(self) -> int:
        return self._hash


def partition_key(partition: StreamSlice) -> str:
    """The name a plan gives ``partition``: a cursor window's start, or a values timeframe's label.

    >>> partition_key(StreamSlice(partition={}, cursor_slice={"start_time": "2024-01-01T00:00:00", "end_time": "x"}))
    '2024-01-01T00:00:00'
    """
    start = partition.cursor_slice.get("start_time")
    if start:
        return str(start)
    return str((partition.partition.get("values_timeframe") or {}).get("timeframe"))


def series_timeframe(call: ReportCall, timezone: str | None) -> dict[str, Any]:
    """The ``timeframe`` a series call is sent with: its window's first and last second as RFC 3339
    date-times with the account's offset (``{}`` for a values call, whose timeframe is its partition's).

    >>> call = ReportCall(1, "p", ("A",), 1, dt.datetime(2024, 3, 1), dt.datetime(2024, 4, 30))
    >>> series_timeframe(call, "America/New_York")
    {'timeframe': {'start': '2024-03-01T00:00:00-05:00', 'end': '2024-04-29T23:59:59-04:00'}}
    """
    if call.window_start is None or call.window_end is None:
        return {}
    return {
        "timeframe": {
            "start": timeframe_bound(call.window_start, timezone),
            "end": timeframe_bound(call.window_end - ONE_SECOND, timezone, last=True),
        }
    }


def call_window(call: ReportCall) -> dict[str, str]:
    """A series call's window as the cursor writes one (its first and last second, wall time)."""
    if call.window_start is None or call.window_end is None:
        return {}
    return {"start_time": format_wall_time(call.window_start), "end_time": format_wall_time(call.window_end - ONE_SECOND)}


def request_log(stream_name: str) -> Callable[[requests.Response], Any]:
    """How a report call is shown in the Connector Builder: as a page of ``stream_name``, as the
    CDK's factory shows a ``SimpleRetriever``'s requests (it sets no ``log_formatter`` on a custom
    retriever). The HTTP client calls it lazily, for a DEBUG message that only the Builder's
    message repository keeps: an ordinary sync never formats anything."""
    from airbyte_cdk.sources.http_logger import format_http_message

    def log(response: requests.Response) -> Any:
        title = f"Stream '{stream_name}' request"
        description = f"Request performed in order to extract records for stream '{stream_name}'"
        return format_http_message(response, title, description, stream_name)

    return log


def builder_test_read_limits(config: Mapping[str, Any]) -> Any:
    """The Connector Builder's ``TestLimits`` when ``config`` is a test read's, read as the CDK's
    ``connector_builder.main`` reads them (``__command: test_read``, limits in ``__test_read_config``,
    defaults for any left out); ``None`` otherwise.

    >>> builder_test_read_limits({"__command": "test_read", "__test_read_config": {"max_records": 10}})
    TestLimits(max_records=10, max_pages_per_slice=5, max_slices=5, max_streams=100)
    >>> builder_test_read_limits({"api_key": "pk_x"}) is None
    True
    """
    if config.get("__command") != "test_read" and "__test_read_config" not in config:
        return None
    from airbyte_cdk.connector_builder.connector_builder_handler import get_limits

    return get_limits(config)


def missing_segment_ids(config: Mapping[str, Any], segments: Sequence[tuple[str, str | None]]) -> list[str]:
    """The configured ``segment_ids`` that the listing did not find, in the order configured.

    >>> missing_segment_ids({"segment_ids": ["A", "B"]}, [("A", None)])
    ['B']
    """
    found = {segment_id for segment_id, _ in segments}
    return [segment_id for segment_id in config.get("segment_ids") or [] if segment_id not in found]


def no_segment_found(missing: Sequence[str]) -> str:
    """The sentence a sync stops with when none of the configured ``segment_ids`` is in the account."""
    return (
        f"None of the `segment_ids` is in the Klaviyo account ({', '.join(missing)}): "
        "fix them, or remove the field to read every segment."
    )


def missing_segments_warning(missing: Sequence[str]) -> str:
    """The warning a sync reads on with when some configured ``segment_ids`` are not in the account.

    >>> missing_segments_warning(["B"])
    'B: not in the Klaviyo account, so skipped; remove it from `segment_ids`.'
    """
    them = "them" if len(missing) > 1 else "it"
    return f"{', '.join(missing)}: not in the Klaviyo account, so skipped; remove {them} from `segment_ids`."


NO_SEGMENTS_YET: Final = "The Klaviyo account has no segments yet: there is nothing to report on."


def segment_ids_refusal(config: Mapping[str, Any], segments: Sequence[tuple[str, str | None]], strict: bool) -> str | None:
    """The sentence that stops a command over the configured ``segment_ids``: any id the account
    lacks when ``strict`` (a ``check``: reading on would close every window empty), or all of them.

    >>> segment_ids_refusal({"segment_ids": ["A", "B"]}, [("A", None)], strict=False) is None
    True
    >>> segment_ids_refusal({"segment_ids": ["A", "B"]}, [("A", None)], strict=True)
    'These segment ids are not in the Klaviyo account: B. Fix or remove them in `segment_ids`.'
    """
    missing = missing_segment_ids(config, segments)
    if missing and not segments:
        return no_segment_found(missing)
    if missing and strict:
        return f"These segment ids are not in the Klaviyo account: {', '.join(missing)}. Fix or remove them in `segment_ids`."
    return None


def refused(sentence: str) -> AirbyteTracedException:
    """``sentence`` as the config error the platform shows as it is (the user's to fix, never retried)."""
    return AirbyteTracedException(message=sentence, internal_message=sentence, failure_type=FailureType.config_error)


class SyncSession:
    """What the components of one source share while it runs one command: the segments listed once,
    each report stream's plan (made from that listing when the stream starts, with the planner's
    refusals), the one ``ReportPacer`` that every report call waits for (Klaviyo's limits are per
    account, whichever stream calls), the warnings already said (each is said once), and the hosts
    where nothing answered (later requests there stop at once, with the same sentence).

    ``PrepareSyncConfig`` opens one per source and writes its id into ``config["_derived"]``
    (``DerivedSettings.session``): the CDK builds every component of a source from that one config
    and offers no other way to reach all of them, and an id keeps the config JSON (the CDK writes it
    to a file). ``SyncSession.of(config)`` finds it; a config no source prepared (a component built
    alone) gets a session of its own.
    """

    _open: dict[str, "SyncSession"] = {}
    _open_lock = threading.Lock()

    def __init__(self) -> None:
        self.pacer = ReportPacer()
        self._lock = threading.Lock()
        self._segments: list[tuple[str, str | None]] | None = None
        self._plans: dict[str, ReportPlan] = {}
        self._said: set[str] = set()
        # Hosts where nothing answered, and the sentence that said so (AnswerAwareBackoff).
        self.unanswered: dict[str, str] = {}

    @classmethod
    def open(cls) -> str:
        """A new session, by the id that ``of`` finds it by."""
        session_id = f"{id(object()):x}-{time.monotonic_ns():x}"
        with cls._open_lock:
            cls._open[session_id] = cls()
        return session_id

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> "SyncSession":
        session_id = DerivedSettings.of(config).session
        with cls._open_lock:
            session = cls._open.get(session_id) if session_id else None
        return session or cls()

    def say_once(self, level: int, message: str) -> None:
        """Logs ``message`` the first time this source says it."""
        with self._lock:
            if message in self._said:
                return
            self._said.add(message)
        LOGGER.log(level, message)

    def listed_segments(self, listing: Callable[[], Iterable[tuple[str, str | None]]]) -> list[tuple[str, str | None]]:
        """``(id, created)`` of every segment to report on, listed once (``listing``) for every stream."""
        with self._lock:
            if self._segments is None:
                self._segments = unique_segments(listing())
            return self._segments

    def plan_of(
        self,
        stream: str,
        config: Mapping[str, Any],
        listing: Callable[[], Iterable[tuple[str, str | None]]],
        streams: Sequence[ReportStream],
        batch_size: int,
        series_start: dt.datetime | None,
        test_read: bool = False,
    ) -> ReportPlan:
        """``stream``'s plan (``plan_streams``), made when the stream asks first (a series read asks at
        its first cursor window: ``series_start``) and logged then. Raises the planner's refusals:
        ``segment_ids`` the account lacks (``segment_ids_refusal``), and a ``max_report_requests``
        that leaves the stream nothing it can read (``ReportPlan.refusal``); a Connector Builder
        ``test_read`` is shown what it can be, and refused nothing."""
        checking = bool(config.get(CHECKING))
        segments = self.listed_segments(listing)
        refusal = None if test_read else segment_ids_refusal(config, segments, strict=checking)
        if refusal:
            raise refused(refusal)
        missing = missing_segment_ids(config, segments)
        if missing:
            self.say_once(logging.WARNING, missing_segments_warning(missing))
        elif not segments:
            self.say_once(logging.INFO, NO_SEGMENTS_YET)
        with self._lock:
            plan = self._plans.get(stream)
            made = plan is None
            if plan is None:
                this = [candidate for candidate in streams if candidate.name == stream]
                if not this:
                    raise ValueError(f"{stream} is not among the manifest's report_streams")
                # The streams this sync has read before this one (they are read one at a time).
                taken = [(name, earlier.allowed) for name, earlier in self._plans.items()]
                (plan,) = plan_streams(
                    this, DerivedSettings.of(config), config["interval"], segments, batch_size,
                    config.get("max_report_requests"), series_start, forward=test_read, taken_before=taken,
                )  # fmt: skip
                self._plans[stream] = plan
        if checking:
            return plan
        if made:
            LOGGER.info("Plan: %s It takes %s.", plan.describe(), cost_of(plan.allowed))
        sentence = None if test_read else plan.refusal()
        if sentence:
            raise refused(sentence)
        return plan


class BuilderTestRead:
    """A Connector Builder test read's limits for one stream, as the CDK's ``connector_builder.main``
    reads them from the config (``builder_test_read_limits``): the CDK applies them only to the
    components it builds itself. Each report call is a page, each cursor window a slice."""

    def __init__(self, limits: Any) -> None:
        self.limits = limits
        self.records = 0
        self._lock = threading.Lock()

    def pages(self, calls: Sequence[ReportCall]) -> Sequence[ReportCall]:
        return calls[: self.limits.max_pages_per_slice]

    def full(self) -> bool:
        return bool(self.records >= self.limits.max_records)

    def take_record(self) -> bool:
        """Counts one more record, if the stream's record limit leaves room for it."""
        with self._lock:
            if self.full():
                return False
            self.records += 1
            return True


@dataclass
class SegmentBatchRetriever(SimpleRetriever):
    """Carries out its stream's ``ReportPlan``: for each partition the CDK hands it (a cursor window,
    a values timeframe) it makes the plan's calls for that partition (``ReportPlan.calls_of``), each
    for up to ``batch_size`` segments, paced by its source's ``ReportPacer``, and emits their rows,
    attached to the partition, so that the cursor closes it only when every call of it is read. A
    line after each call says where the read stands in the plan (``ReportPlan.progress``).

    It decides nothing: the plan, and what stops it, come from its source's ``SyncSession``, made
    from the segments listed by ``segments`` (the manifest's cached listing) and the manifest's
    ``report_streams``. What it carries between partitions is what carrying out needs: the rows
    written (for the progress line), whether a report it could not use stopped it (later partitions
    would spend calls the next sync makes again), and a Builder test read's counts.

    In the Connector Builder each partition is a slice and each call a page of it, shown with its
    request and answer (``request_log``), within the test read's limits (``BuilderTestRead``).
    """

    segments: PartitionRouter | None = None
    batch_size: int = 100
    report_streams: Mapping[str, Any] = field(default_factory=dict)
    _session: SyncSession = field(init=False, repr=False)
    _test_read: BuilderTestRead | None = field(init=False, repr=False, default=None)
    _rows: int = field(init=False, repr=False, default=0)
    _stopped: bool = field(init=False, repr=False, default=False)

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        if self.log_formatter is None:
            self.log_formatter = request_log(self.name)
        limits = builder_test_read_limits(self.config)
        self._test_read = BuilderTestRead(limits) if limits is not None else None
        self._session = SyncSession.of(self.config)

    def _listing(self) -> Iterable[tuple[str, str | None]]:
        if self.segments is None:
            raise ValueError("SegmentBatchRetriever needs `segments`")
        return (
            (str(p.partition["segment_id"]), _text((p.extra_fields or {}).get("created"))) for p in self.segments.stream_slices()
        )

    def read_records(self, records_schema: Mapping[str, Any], stream_slice: StreamSlice | None = None) -> Iterable[Any]:
        partition = _SliceWithCachedHash.of(stream_slice or StreamSlice(partition={}, cursor_slice={}))
        start = partition.cursor_slice.get("start_time")
        if self._stopped:
            # A report this stream could not use, or max_report_requests, ended an earlier partition.
            return
        try:
            plan = self._session.plan_of(
                self.name, self.config, self._listing, report_streams(self.report_streams), int(self.batch_size),
                wall_time(start) if start else None, test_read=self._test_read is not None,
            )  # fmt: skip
            if self.config.get(CHECKING):
                return  # `check` lists the segments the reports would ask about, and spends no report call
            key = partition_key(partition)
            allowed = plan.allowed_calls_of(key)
            stop = plan.stop_of(key)
            if stop == "warn":
                self._session.say_once(logging.WARNING, plan.left_for_next_sync())
            elif stop == "before":
                raise refused(plan.stopped_short())
            yield from self._read_calls(records_schema, partition, plan, allowed)
            if stop == "after":
                raise refused(plan.stopped_short())
        except Exception:
            self._stopped = True
            raise

    def _read_calls(
        self, records_schema: Mapping[str, Any], partition: StreamSlice, plan: ReportPlan, calls: Sequence[ReportCall]
    ) -> Iterable[Any]:
        test_read = self._test_read
        if test_read is not None:
            calls = test_read.pages(calls)
        created = dict(self._session.listed_segments(self._listing))
        timezone = DerivedSettings.of(self.config).timezone
        for call in calls:
            if test_read is not None and test_read.full():
                return
            batch_slice = StreamSlice(
                partition={
                    **partition.partition,
                    "segment_id": list(call.segment_ids),
                    "segment_created": {segment_id: created.get(segment_id) for segment_id in call.segment_ids},
                    **series_timeframe(call, timezone),
                },
                cursor_slice=call_window(call) or partition.cursor_slice,
            )
            self._session.pacer.wait_for_report_slot()
            for record in super().read_records(records_schema, batch_slice):
                if test_read is not None and not test_read.take_record():
                    return
                self._rows += 1
                yield of_partition(record, partition)
            LOGGER.info(plan.progress(call, self._rows))


def unique_segments(segments: Iterable[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """The listed segments, each once (the first time it is listed): a listing whose pages repeat a
    segment must not make a call ask about it twice.

    >>> unique_segments([("A", None), ("B", None), ("A", "2024-01-01T00:00:00+00:00")])
    [('A', None), ('B', None)]
    """
    first: dict[str, str | None] = {}
    for segment_id, created in segments:
        first.setdefault(segment_id, created)
    return list(first.items())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def of_partition(record: Any, partition: StreamSlice) -> Any:
    """``record`` (read with a batch's slice) attached to its ``partition``, which the cursor
    observes and closes; anything that is not a record, unchanged."""
    if isinstance(record, Record) and record.associated_slice is not partition:
        return Record(record.data, record.stream_name, associated_slice=partition, file_reference=record.file_reference)
    return record


# ---------------------------------------------------------------------------------------------
# 6. Answers and rows: nothing an answer says is used before it is judged. Of a link, only its
#    cursor is used: every page is asked of base_url; a segment listing must name each segment; a
#    report must answer what its call asked. A report answer becomes one row per segment per bucket
#    (or per timeframe).
# ---------------------------------------------------------------------------------------------


def _call_of(request: Any) -> str:
    """A request as a person names it: ``GET /api/segments``.

    >>> _call_of(requests.Request("GET", "https://a.klaviyo.com/api/segments/?page[cursor]=x").prepare())
    'GET /api/segments/'
    """
    method = getattr(request, "method", None) or "a request to"
    return f"{method} {urlparse(str(getattr(request, 'url', '') or '')).path or '/'}"


# How many pages one segment listing may take. Klaviyo lists at most 10 segments a page, so this is
# 100,000 segments: more than could ever be reported on (1,000 report calls a window at 100 ids a
# call, against Klaviyo's 225 a day), and 20 times the 500 pages of a 5,000-segment account. Only
# an answerer that invents pages reaches it (a broken proxy, a mock), which without a bound would
# never end; at the listing's pace (750 pages a minute) it stops after 13 minutes or more.
MOST_LISTING_PAGES: Final = 10_000

# The query parameter of Klaviyo's links.next that names the page to read.
PAGE_CURSOR: Final = "page[cursor]"


def next_page_url(link: Any, asked: str) -> str | None:
    """The next page of a listing: ``asked`` (the URL of the page just read, on ``base_url``) with its
    query replaced by ``link``'s, which carries Klaviyo's ``page[cursor]`` and the fields the
    connector asked for. Only the query is taken from ``link`` (absolute or relative): not its
    scheme, host, port, path or credentials, so nothing is ever sent where it points. A proxy at
    ``base_url`` passes on Klaviyo's links, which name the host behind it. ``None`` when ``link`` is
    not a URL, or its query names no ``page[cursor]``.

    >>> asked = "https://127.0.0.1:8765/klaviyo/api/segments?fields%5Bsegment%5D=name"
    >>> next_page_url("https://a.klaviyo.com/api/segments/?fields%5Bsegment%5D=name&page%5Bcursor%5D=b2", asked)
    'https://127.0.0.1:8765/klaviyo/api/segments?fields%5Bsegment%5D=name&page%5Bcursor%5D=b2'
    >>> next_page_url("/api/segments?page[cursor]=b2#top", asked)
    'https://127.0.0.1:8765/klaviyo/api/segments?page[cursor]=b2'
    >>> [next_page_url(link, asked) for link in ("https://a.klaviyo.com/api/segments/", "?page%5Bcursor%5D=", "https://[::1", 7)]
    [None, None, None, None]
    """
    if not isinstance(link, str):
        return None
    try:
        query = urlsplit(link.strip()).query
    except ValueError:  # an unclosed [IPv6] host, for one
        return None
    if not any(name == PAGE_CURSOR and value.strip() for name, value in parse_qsl(query, keep_blank_values=True)):
        return None
    return urlunsplit(urlsplit(asked)._replace(query=query, fragment=""))


def unusable_link(call: str, link: Any) -> AirbyteTracedException:
    """The one sentence that ends a listing whose answer names a next page the connector cannot ask
    ``base_url`` for: without a cursor, the only page it could ask for again is the first."""
    message = (
        f"The answer to {call} named as its next page {str(link)[:120]!r}, which carries no {PAGE_CURSOR}, so the "
        "listing stopped: retry the sync, and if it happens again, check that whatever answers at base_url passes "
        "Klaviyo's links.next on whole."
    )
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)


def endless_listing(call: str, pages: int) -> AirbyteTracedException:
    """The one sentence that ends a listing that still names a next page after ``pages`` pages."""
    message = (
        f"The answers to {call} still named a next page after {pages:,} pages, the most one listing may take "
        f"({pages * 10:,} segments at Klaviyo's 10 a page), so the listing stopped: check that whatever answers at "
        "base_url passes Klaviyo's answers on unchanged."
    )
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)


@dataclass
class SameHostCursorPagination(CursorPaginationStrategy):
    """The manifest's ``CursorPagination`` (the next page is ``cursor_value`` until ``stop_condition``)
    that asks every page of the same host as the first, ``base_url``: the next page is the page just
    read with the query of the answer's ``links.next`` (``next_page_url``), whatever host the link
    names. The API key goes with each page request, and a proxy, gateway or stand-in at ``base_url``
    passes on links naming the host behind it: following them would send the key there, refusing
    them would stop every listing at its second page.

    A listing ends with one sentence when an answer names a next page without a ``page[cursor]``
    (``unusable_link``), one this listing has already read (it would never end), or any next page
    after ``max_pages`` pages (``endless_listing``; ``MOST_LISTING_PAGES`` unless the manifest
    says otherwise).
    """

    max_pages: int = MOST_LISTING_PAGES
    # The pages this listing has asked for after its first: asking for one of them again is a loop.
    _followed: set[str] = field(init=False, repr=False, default_factory=set)
    # The pages this listing has read, the one just answered included.
    _pages: int = field(init=False, repr=False, default=0)

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        if not isinstance(self.max_pages, int) or isinstance(self.max_pages, bool) or self.max_pages < 1:
            raise ValueError(f"max_pages must be a whole number of pages, at least 1; got {self.max_pages!r}")

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Record | None,
        last_page_token_value: Any | None = None,
        page_size_override: int | None = None,
        stream_slice: StreamSlice | None = None,
    ) -> Any | None:
        if last_page_token_value is None:  # a listing's first page
            self._followed.clear()
            self._pages = 0
        self._pages += 1
        token = super().next_page_token(
            response, last_page_size, last_record, last_page_token_value, page_size_override, stream_slice
        )
        if token is None:
            return None
        call = _call_of(response.request)
        if self._pages >= self.max_pages:
            raise endless_listing(call, self._pages)
        url = next_page_url(token, str(getattr(response.request, "url", "") or ""))
        if url is None:
            raise unusable_link(call, token)
        if url in self._followed:
            message = (
                f"The answer to {call} named as its next page one already read ({url}): "
                "the listing would never end, so it stopped."
            )
            raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error)
        self._followed.add(url)
        return url


def unreadable_listing(call: str, detail: str) -> AirbyteTracedException:
    return AirbyteTracedException(
        message=f"Klaviyo listed segments the connector cannot use ({call}: {detail}); no report was asked for. "
        "Retry the sync; if it happens again, report it with this message.",
        internal_message=f"{call}: {detail}",
        failure_type=FailureType.system_error,
    )


@dataclass
class SegmentListExtractor(RecordExtractor):
    """A page of ``GET /api/segments`` -> its segments (the ``data`` list), judged whole before any
    is used.

    - Each segment must have an ``id``: a non-empty string.
    - ``attributes.created`` (when the segment was created: a report window asks only about the
      segments created before it ends) must be an RFC 3339 date-time with an offset, the spec's
      ``format: date-time``. ``null`` or absent (the spec allows ``created: null``) is read as
      *unknown*: the segment takes part in every report window, which costs calls but loses no row.
    - Other attributes are passed on as they are (the stream's schema allows more).

    Anything else ends the listing with one sentence naming the call and the segment
    (``unreadable_listing``): no report is asked for with a list the connector cannot trust.

    >>> response = requests.Response()
    >>> response._content, response.request = b'{"data": [{"id": "A", "attributes": {"created": null}}]}', requests.Request(
    ...     "GET", "https://a.klaviyo.com/api/segments").prepare()
    >>> list(SegmentListExtractor(config={}, parameters={}).extract_records(response))
    [{'id': 'A', 'attributes': {'created': None}}]
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        call = _call_of(response.request)
        try:
            body = response.json()
        except ValueError:
            raise unreadable_listing(call, "the body is not JSON") from None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise unreadable_listing(call, "the answer has no data list")
        for position, segment in enumerate(data, start=1):
            if not isinstance(segment, dict):
                raise unreadable_listing(call, f"item {position} of the page is not an object")
            segment_id = segment.get("id")
            if not isinstance(segment_id, str) or not segment_id.strip():
                raise unreadable_listing(call, f"segment {position} of the page has no id")
            attributes = segment.get("attributes")
            if attributes is None:
                continue
            if not isinstance(attributes, dict):
                raise unreadable_listing(call, f"segment {segment_id}'s attributes are not an object")
            created = attributes.get("created")
            if created is not None and (not isinstance(created, str) or _instant(created) is None):
                raise unreadable_listing(
                    call, f"segment {segment_id} was created {str(created)[:60]!r}, which is not a date-time with an offset"
                )
        return data


def malformed_response(detail: str, call: str | None = None) -> AirbyteTracedException:
    where = f"{call}: {detail}" if call else detail
    return AirbyteTracedException(
        message=f"Klaviyo sent a report the connector cannot read ({where}); no rows were written for it. "
        "Retry the sync; if it happens again, report it with this message.",
        internal_message=where,
        failure_type=FailureType.system_error,
    )


@dataclass(frozen=True)
class AskedReport:
    """What one report call asked Klaviyo for, read back from the request as it was sent
    (``asked_report``): its answer is judged against it.

    ``call`` names the call (and its timeframe) in errors; ``segment_ids`` are its filter's ids;
    ``window`` is a custom timeframe's ``(start, last_second)`` in company wall time (Klaviyo
    ignores the offsets), ``None`` for a timeframe key.
    """

    call: str
    segment_ids: frozenset[str]
    window: tuple[dt.datetime, dt.datetime] | None = None


# The connector's own filter: any(segment_id,["A","B"]) or equals(segment_id,"A").
_SEGMENT_FILTER = re.compile(
    r'^\s*(?:any\(\s*segment_id\s*,\s*(\[.*\])\s*\)|equals\(\s*segment_id\s*,\s*("(?:[^"\\]|\\.)*")\s*\))\s*$', re.S
)


def asked_report(request: Any) -> AskedReport:
    """What the report call ``request`` (``response.request``: the call as sent) asked for.

    >>> asked = asked_report(requests.Request("POST", "https://a.klaviyo.com/api/segment-series-reports", json={"data": {
    ...     "attributes": {"filter": 'any(segment_id,["A","B"])', "interval": "daily",
    ...                    "timeframe": {"start": "2024-01-01T00:00:00-05:00", "end": "2024-01-07T23:59:59-05:00"}}}}).prepare())
    >>> sorted(asked.segment_ids), asked.window[1]
    (['A', 'B'], datetime.datetime(2024, 1, 7, 23, 59, 59))
    >>> asked.call
    'POST /api/segment-series-reports for 2024-01-01T00:00:00-05:00 to 2024-01-07T23:59:59-05:00'
    """
    call = _call_of(request)
    try:
        body = getattr(request, "body", None)
        attributes = json.loads(body.decode() if isinstance(body, bytes) else str(body))["data"]["attributes"]
        match = _SEGMENT_FILTER.match(attributes["filter"])
        if match is None:
            raise ValueError(attributes["filter"])
        ids = json.loads(match.group(1)) if match.group(1) else [json.loads(match.group(2))]
        if not all(isinstance(segment_id, str) for segment_id in ids):
            raise ValueError(ids)
        timeframe = attributes.get("timeframe") or {}
        window = None
        if "start" in timeframe and "end" in timeframe:
            window = (wall_time(timeframe["start"]), wall_time(timeframe["end"]))
            call = f"{call} for {timeframe['start']} to {timeframe['end']}"
    except (ValueError, LookupError, TypeError, AttributeError):
        # The connector's own request: a manifest that no longer sends the filter it reads back.
        message = f"The connector could not read back which segments its own call {call} asked about: report this."
        raise AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.system_error) from None
    return AskedReport(call=call, segment_ids=frozenset(ids), window=window)


def _report_attributes(response: requests.Response, call: str | None = None) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise malformed_response("the body is not JSON", call) from None
    data = body.get("data") if isinstance(body, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attributes, dict) or not isinstance(attributes.get("results"), list):
        raise malformed_response("data.attributes.results is missing", call)
    return attributes


def _result_segments(results: list[Any], asked: AskedReport | None) -> list[tuple[str, Mapping[str, Any]]]:
    """``(segment_id, statistics)`` of each result, judged against what was asked: every result
    names a segment the call asked about (``groupings.segment_id``), once, and has a statistics
    object. An asked segment missing from the results is read as Klaviyo having no numbers for it
    there: no row, and a warning naming it (the next sync asks again)."""
    call = asked.call if asked else None
    seen: list[tuple[str, Mapping[str, Any]]] = []
    ids: set[str] = set()
    for result in results:
        groupings = result.get("groupings") if isinstance(result, dict) else None
        segment_id = groupings.get("segment_id") if isinstance(groupings, dict) else None
        if not isinstance(segment_id, str):
            raise malformed_response("a result has no groupings.segment_id", call)
        if asked is not None and segment_id not in asked.segment_ids:
            raise malformed_response(f"it answers about segment {segment_id[:60]!r}, which the call did not ask about", call)
        if segment_id in ids:
            raise malformed_response(f"it answers about segment {segment_id} twice", call)
        ids.add(segment_id)
        statistics = result.get("statistics")
        if not isinstance(statistics, dict):
            raise malformed_response(f"segment {segment_id} has no statistics", call)
        seen.append((segment_id, statistics))
    missing = sorted(asked.segment_ids - ids) if asked else []
    if missing:
        LOGGER.warning(
            "Klaviyo's answer to %s has no results for %s: no rows for %s there.",
            asked.call if asked else "a report call",
            ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""),
            "it" if len(missing) == 1 else "them",
        )
    return seen


def _count(value: Any) -> Union[int, None, str]:
    """A statistic as written: a whole number (``7.0`` read as 7) or null; anything else (a text, a
    bool, a fraction, a list) as the ``str`` that says what it was, for the error."""
    if value is None or type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return f"{json.dumps(value, default=str)[:40]}, not a whole number or null"


def _counts(column: list[Any], where: Callable[[int], str], call: str | None) -> list[Any]:
    # One pass per column, not a call per value: this is the connector's per-row hot path.
    if all(value is None or type(value) is int for value in column):
        return column
    counts = []
    for index, value in enumerate(column):
        count = _count(value)
        if isinstance(count, str):
            raise malformed_response(f"{where(index)} is {count}", call)
        counts.append(count)
    return counts


# How far a bucket start may lie outside the timeframe asked for and still be one of its edge
# buckets: Klaviyo may answer from the bucket holding the start to the first bucket after the end
# (undocumented), so up to a longest bucket on either side, plus the hour a daylight-saving change
# moves wall time against elapsed time.
_EDGE_BUCKET: Final = {
    "hourly": dt.timedelta(hours=2),
    "daily": dt.timedelta(hours=25),
    "weekly": dt.timedelta(days=7, hours=1),
    "monthly": dt.timedelta(days=31, hours=1),
}
# Klaviyo does not say which offset it writes bucket starts in (the company's, UTC's, or the
# company's wall time with another offset): placed in company time, one may move by up to the
# span of UTC offsets (UTC-12 to UTC+14), which BucketWindowFilter's edge rule absorbs.
_ANY_OFFSET: Final = dt.timedelta(hours=26)


def _series_date_times(
    date_times: Any, interval: str, timezone: str | None, asked: AskedReport | None
) -> list[str]:
    """The buckets' starts, placed in company time (``company_date_time``), judged: each an RFC
    3339 date-time with an offset, none twice, and each within an edge bucket (and any offset's
    reach, ``_ANY_OFFSET``) of the timeframe asked for. Buckets near the edges are left to
    ``BucketWindowFilter``; one further off is not an answer to this call."""
    call = asked.call if asked else None
    if not isinstance(date_times, list) or not all(isinstance(d, str) for d in date_times):
        raise malformed_response("data.attributes.date_times is missing or not a list of date-times", call)
    placed = []
    for date_time in date_times:
        if _instant(date_time) is None:
            raise malformed_response(f"date_times holds {date_time[:60]!r}, which is not a date-time with an offset", call)
        try:
            placed.append(company_date_time(date_time, timezone))
        except (ValueError, OverflowError):
            raise malformed_response(f"date_times holds {date_time[:60]!r}, which is out of range", call) from None
    if len(set(placed)) != len(placed):
        raise malformed_response("date_times names a bucket twice", call)
    if asked is not None and asked.window is not None:
        slack = _EDGE_BUCKET.get(interval, _EDGE_BUCKET["monthly"]) + _ANY_OFFSET
        first, last = asked.window
        for date_time in placed:
            wall = wall_time(date_time)
            if not first - slack <= wall <= last + slack:
                raise malformed_response(f"date_times holds {date_time}, outside the timeframe asked for", call)
    return placed


def series_rows(
    attributes: Mapping[str, Any],
    statistics: list[str],
    interval: str,
    timezone: str | None = None,
    asked: AskedReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Turn a series report's ``results`` x ``date_times`` into one row per segment per bucket,
    each ``date_time`` placed in company time when the account's timezone is known (Klaviyo may
    write them with the company's offset or in UTC: it does not say).

    The whole answer is judged before the first row (so a bad one writes none), against
    ``asked`` (what the call asked for) when given: ``date_times`` as ``_series_date_times`` says;
    results as ``_result_segments`` says; each asked statistic a list as long as ``date_times`` of
    whole numbers or nulls (null: a bucket with no number, written as null; ``7.0`` is 7).
    Statistics not asked for are ignored.

    >>> attrs = {"date_times": ["2024-01-01T05:00:00+00:00", "2024-01-02T05:00:00+00:00"],
    ...          "results": [{"groupings": {"segment_id": "A"}, "statistics": {"total_members": [None, 5]}}]}
    >>> list(series_rows(attrs, ["total_members"], "daily", "America/New_York"))  # doctest: +NORMALIZE_WHITESPACE
    [{'segment_id': 'A', 'interval': 'daily', 'date_time': '2024-01-01T00:00:00-05:00', 'total_members': None},
     {'segment_id': 'A', 'interval': 'daily', 'date_time': '2024-01-02T00:00:00-05:00', 'total_members': 5}]
    """
    call = asked.call if asked else None
    date_times = _series_date_times(attributes.get("date_times"), interval, timezone, asked)
    judged = []
    for segment_id, values in _result_segments(attributes["results"], asked):
        columns = []
        for statistic in statistics:
            column = values.get(statistic)
            if not isinstance(column, list) or len(column) != len(date_times):
                raise malformed_response(
                    f"segment {segment_id}'s {statistic} has {len(column) if isinstance(column, list) else 'no'} "
                    f"values for {len(date_times)} date_times",
                    call,
                )
            columns.append(
                _counts(column, lambda i, s=statistic, d=segment_id: f"segment {d}'s {s} at {date_times[i]}", call)  # type: ignore[misc]
            )
        judged.append((segment_id, columns))
    return _series_row_iterator(judged, statistics, interval, date_times)


def _series_row_iterator(
    judged: list[tuple[str, list[list[Any]]]], statistics: list[str], interval: str, date_times: list[str]
) -> Iterator[dict[str, Any]]:
    for segment_id, columns in judged:
        for index, date_time in enumerate(date_times):
            row: dict[str, Any] = {"segment_id": segment_id, "interval": interval, "date_time": date_time}
            for statistic, column in zip(statistics, columns, strict=True):
                row[statistic] = column[index]
            yield row


def values_rows(
    attributes: Mapping[str, Any], statistics: list[str], asked: AskedReport | None = None
) -> Iterator[dict[str, Any]]:
    """Turn a values report's ``results`` into one row per segment (timeframe fields are added
    from the partition by the manifest), the whole answer judged first: results as
    ``_result_segments`` says, each asked statistic a whole number or null.

    >>> list(values_rows({"results": [{"groupings": {"segment_id": "A"},
    ...                                "statistics": {"members_added": 4}}]}, ["members_added"]))
    [{'segment_id': 'A', 'members_added': 4}]
    """
    call = asked.call if asked else None
    rows = []
    for segment_id, values in _result_segments(attributes["results"], asked):
        row: dict[str, Any] = {"segment_id": segment_id}
        for statistic in statistics:
            if statistic not in values:
                raise malformed_response(f"segment {segment_id} has no {statistic}", call)
            count = _count(values[statistic])
            if isinstance(count, str):
                raise malformed_response(f"segment {segment_id}'s {statistic} is {count}", call)
            row[statistic] = count
        rows.append(row)
    return iter(rows)


def no_buckets_warning(asked: AskedReport) -> str:
    """What a read says when a series report holds no bucket at all. Klaviyo may answer a window
    that starts after its own "now" so (its documentation does not say whether it refuses it
    instead): a clock that is behind (a stand-in's, a proxy's) would otherwise read in silence as
    an account without data.

    >>> asked = AskedReport("POST /api/segment-series-reports", frozenset({"A"}),
    ...                     (dt.datetime(2026, 6, 1), dt.datetime(2026, 7, 29, 23, 59, 59)))
    >>> print(no_buckets_warning(asked))  # doctest: +NORMALIZE_WHITESPACE
    Klaviyo had no data at all for 2026-06-01T00:00:00 to 2026-07-29T23:59:59: its series report holds
    no buckets, so that window has no rows. Is the clock at `base_url` behind? (Said for the first such
    window of a read only.)
    """
    where = (
        f"for {format_wall_time(asked.window[0])} to {format_wall_time(asked.window[1])}"
        if asked.window is not None
        else "for the timeframe asked"
    )
    return (
        f"Klaviyo had no data at all {where}: its series report holds no buckets, so that window has no rows. "
        "Is the clock at `base_url` behind? (Said for the first such window of a read only.)"
    )


@dataclass
class SeriesRowExtractor(RecordExtractor):
    """A ``segment-series-report`` response -> rows ``{segment_id, interval, date_time, <statistics>}``,
    judged against what its call asked (``asked_report``, ``series_rows``).

    Without the account's timezone, ``date_times`` written in UTC cannot be placed in company
    time, and the bucket-in-window rule compares company wall times: said once, with the fix.
    A report without a single bucket is said once a read, naming the first such window
    (``no_buckets_warning``); the stream's one extractor reads every window, from two workers.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    _warned_of_utc: bool = field(init=False, repr=False, default=False)
    _warned_of_no_buckets: bool = field(init=False, repr=False, default=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def extract_records(self, response: requests.Response) -> Iterable[Mapping[str, Any]]:
        timezone = DerivedSettings.of(self.config).timezone
        asked = asked_report(response.request)
        attributes = _report_attributes(response, asked.call)
        session = SyncSession.of(self.config)
        session.pacer.update_from_response(response.request, response)
        if timezone is None and not self._warned_of_utc and _written_in_utc(attributes.get("date_times")):
            self._warned_of_utc = True
            LOGGER.warning(
                "Klaviyo wrote bucket starts in UTC and the API key may not read the account's timezone "
                "(scope accounts:read): unless the account is on UTC, a bucket at a window's edge may be "
                "missed. Give the key accounts:read."
            )
        rows = series_rows(attributes, self.config["statistics"], self.config["interval"], timezone, asked)
        if attributes.get("date_times") == []:  # judged by series_rows: a well-formed answer without buckets
            with self._lock:
                first, self._warned_of_no_buckets = not self._warned_of_no_buckets, True
            if first:
                session.say_once(logging.WARNING, no_buckets_warning(asked))
        yield from rows


def _written_in_utc(date_times: Any) -> bool:
    return (
        isinstance(date_times, list)
        and bool(date_times)
        and all(isinstance(d, str) and d.endswith(("Z", "+00:00")) for d in date_times)
    )


@dataclass
class ValuesRowExtractor(RecordExtractor):
    """A ``segment-values-report`` response -> rows ``{segment_id, <statistics>}``, judged against
    what its call asked (``asked_report``, ``values_rows``)."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def extract_records(self, response: requests.Response) -> Iterable[Mapping[str, Any]]:
        asked = asked_report(response.request)
        attributes = _report_attributes(response, asked.call)
        SyncSession.of(self.config).pacer.update_from_response(response.request, response)
        yield from values_rows(attributes, self.config["statistics"], asked)


@dataclass
class BucketWindowFilter(RecordFilter):
    """Keeps a series row only if its bucket starts inside the window of the request, and did not
    end before its segment was created.

    Windows touch without overlapping, so whether Klaviyo treats a timeframe's ``end`` as
    inclusive or exclusive, each bucket is emitted by exactly one window. A segment has no rows
    before the bucket that holds its creation.
    """

    def filter_records(
        self,
        records: Iterable[Mapping[str, Any]],
        stream_state: StreamState,
        stream_slice: StreamSlice | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        window = stream_slice.cursor_slice if stream_slice else {}
        start, last_second = window.get("start_time"), window.get("end_time")
        if not start or not last_second:
            yield from records
            return
        created: Mapping[str, str | None] = (stream_slice.partition if stream_slice else {}).get("segment_created") or {}
        interval, timezone = self.config["interval"], DerivedSettings.of(self.config).timezone
        for record in records:
            if not bucket_in_window(record["date_time"], start, last_second):
                continue
            if bucket_ended_before(record["date_time"], interval, created.get(record["segment_id"]), timezone):
                continue
            yield record


# ---------------------------------------------------------------------------------------------
# 7. Errors and pacing: a failed request's sentence; Klaviyo's burst, steady and daily limits.
# ---------------------------------------------------------------------------------------------


@dataclass
class SentenceErrorHandler(DefaultErrorHandler):
    """The manifest's ``DefaultErrorHandler`` (its response filters, retries and backoff), except
    that a request it fails ends in exactly the one sentence its response filter says, with the API
    key masked, as the error every runtime reports.

    The CDK's HTTP client would log the request and answer (URL, headers, bodies) at ERROR first and
    raise with them as the internal message, and the concurrent read puts a stream's error into its
    trace without the secret filter (``concurrent_read_processor.py:253``): an answer that echoes
    the key would print it. Raised here, before the client builds its own, nothing of the answer
    but the filter's sentence leaves the process.
    """

    def interpret_response(
        self, response_or_exception: Union[requests.Response, Exception] | None
    ) -> ErrorResolution:
        resolution = super().interpret_response(response_or_exception)
        if resolution.response_action != ResponseAction.FAIL:
            return resolution
        request = getattr(response_or_exception, "request", None)
        status = getattr(response_or_exception, "status_code", None)
        sentence = filter_secrets(resolution.error_message or f"{_call_of(request)} failed ({status or 'no answer'}).")
        # The internal message is what the CDK's summary of the failed streams quotes.
        where = f"{_call_of(request)} answered {status}" if status else f"{_call_of(request)} failed"
        internal = filter_secrets(f"{sentence} ({where})")
        raise AirbyteTracedException(message=sentence, internal_message=internal, failure_type=resolution.failure_type)


@dataclass
class RetryAfterBackoff(BackoffStrategy):
    """Waits the ``Retry-After`` seconds of a 429; a longer wait than ``max_waiting_time_in_seconds``
    is Klaviyo's daily quota, so the sync ends (keeping the state of finished windows) with a
    transient error saying when to run it again. Without the header, defers to the next strategy.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    max_waiting_time_in_seconds: float = MAX_RATE_LIMIT_WAIT_SECONDS

    def backoff_time(
        self,
        response_or_exception: Union[requests.Response, requests.RequestException] | None,
        attempt_count: int,
    ) -> float | None:
        if not isinstance(response_or_exception, requests.Response):
            return None
        if response_or_exception.status_code == 429:  # a 429 uses up no slot of the source's pacer
            SyncSession.of(self.config).pacer.update_from_response(response_or_exception.request, response_or_exception)
        header = response_or_exception.headers.get("Retry-After", "")
        try:
            wait = float(header)
        except ValueError:
            return None
        if wait > float(self.max_waiting_time_in_seconds):
            retry_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=wait)
            response = response_or_exception
            # Only report calls have a daily quota; any other long wait is said as it is.
            quota = response.status_code == 429 and ReportPacer.is_report_call(response.request)
            what = (
                "Klaviyo's daily report quota is used up; it frees up"
                if quota
                else (f"Klaviyo asked the connector ({response.status_code}) to come back")
            )
            raise AirbyteTracedException(
                message=(
                    f"{what} in {_duration(wait)} (at {retry_at:%Y-%m-%d %H:%M} UTC). "
                    "Run the sync again then: it resumes from the last saved window."
                ),
                internal_message=f"{response.status_code} with Retry-After: {header}",
                failure_type=FailureType.transient_error,
            )
        return max(wait, 0.0)


# The connector's own lines while a host fails to answer, one per retry: a child of the CDK's
# logger "airbyte", so every runtime prints them as Airbyte LOG messages, and `plan` (which keeps
# the CDK's log out of a person's output) can route just these to stderr.
RETRY_LOG: Final = logging.getLogger("airbyte").getChild("retries")


def seconds_said(seconds: float) -> str:
    """A wait as a person reads it: whole seconds, tenths below ten.

    >>> seconds_said(1.02), seconds_said(0.5), seconds_said(2.5), seconds_said(65)
    ('1 s', '0.5 s', '2.5 s', '65 s')
    """
    shown = f"{seconds:.0f}" if seconds >= 9.5 else f"{seconds:.1f}".rstrip("0").rstrip(".")
    return f"{shown} s"


def retry_line(what: str, attempt: int, attempts: int, wait: float) -> str:
    """The line said before a retry: what happened where, the wait, and the attempt to come out of
    how many the request gets.

    >>> retry_line("Nothing answered at https://a.klaviyo.com (ConnectionError)", 2, 6, 1)
    'Nothing answered at https://a.klaviyo.com (ConnectionError); trying again in 1 s (attempt 2 of 6).'
    """
    return f"{what}; trying again in {seconds_said(wait)} (attempt {attempt} of {attempts})."


def answered_with(host: str, status: int) -> str:
    """What happened, for a retry after an answer: the host and the status, named when HTTP names it.

    >>> answered_with("https://a.klaviyo.com", 503), answered_with("https://a.klaviyo.com", 524)
    ('https://a.klaviyo.com answered 503 Service Unavailable', 'https://a.klaviyo.com answered 524')
    """
    try:
        return f"{host} answered {status} {HTTPStatus(status).phrase}"
    except ValueError:  # a proxy's own code (Cloudflare's 524)
        return f"{host} answered {status}"


@dataclass
class _Unanswered:
    """A request's attempts without an answer so far, and the last of them (attempts count from 1)."""

    count: int = 0
    last_attempt: int = 0


@dataclass
class AnswerAwareBackoff(BackoffStrategy):
    """Exponential backoff (``factor`` x 2^attempt seconds) after an answer that asks for a retry
    (a 5XX, a 429 without ``Retry-After``). After *no* answer (a refused or reset connection, a
    name that does not resolve, a timeout) it names no wait, so the CDK's own retry handles it
    (1, 2, 4, 8, 16 s), and the CDK's log calls it the error it is: any wait a strategy names, the
    CDK logs as "Rate limit exceeded". The ``attempts_without_answer``-th attempt without an answer
    ends the request with one sentence naming the host, before the CDK's own retry budget ends it
    with a traceback in the log.

    Before each retry it says one line on ``RETRY_LOG`` (``retry_line``), so that a dead or failing
    host is said while it happens, not only after half a minute: what happened at which host, the
    wait the CDK is about to sleep, and the attempt to come, out of ``attempts_without_answer``
    (no answer) or ``attempts_with_answer`` (the error handler's ``max_retries`` + 1, which a
    strategy is not told). A 429 with ``Retry-After`` is ``RetryAfterBackoff``'s, and the CDK says
    that one as the rate limit it is.

    >>> backoff = AnswerAwareBackoff(config={}, parameters={}, factor=2, attempts_without_answer=3)
    >>> answered = requests.Response()
    >>> answered.status_code = 503
    >>> answered.request = requests.Request("GET", "https://a.klaviyo.com/api/segments").prepare()
    >>> refused = requests.ConnectionError("refused", request=requests.Request("GET", "https://127.0.0.1:9/api/segments").prepare())
    >>> backoff.backoff_time(answered, 2), backoff.backoff_time(refused, 2)
    (8.0, None)
    >>> backoff.backoff_time(refused, 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    airbyte_cdk...AirbyteTracedException: Nothing answered at https://127.0.0.1:9 in 3 attempts (ConnectionError): check ...
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    factor: Union[float, str] = 2
    attempts_without_answer: Union[int, str] = 6
    attempts_with_answer: Union[int, str] = 6

    # How the CDK's HttpClient retries (airbyte_cdk/sources/streams/http/http_client.py and
    # rate_limiting.py), which each line must tell truly: a request without an answer is retried by
    # `backoff.expo` (1, 2, 4, ... s, no jitter), its n-th wait counting only those retries; a wait a
    # strategy names is slept plus one second, in a loop of its own that allows max_retries + 1
    # tries and starts afresh after each retry without an answer.
    CDK_FIRST_WAIT_WITHOUT_ANSWER = 1.0
    CDK_ADDED_SECONDS = 1.0

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._after_answer = ExponentialBackoffStrategy(parameters=parameters, config=self.config, factor=str(self.factor))
        self._attempts = InterpolatedString.create(str(self.attempts_without_answer), parameters=parameters)
        self._attempts_answered = InterpolatedString.create(str(self.attempts_with_answer), parameters=parameters)
        # Keyed by the request object the CDK sends again on each retry (and forgets after it).
        self._unanswered: weakref.WeakKeyDictionary[Any, _Unanswered] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _allowed(self, attempts: InterpolatedString) -> int:
        return int(float(attempts.eval(self.config)))

    def _host(self, request: Any) -> str:
        url = getattr(request, "url", None) or str(self.config.get("base_url", ""))
        where = urlparse(url)
        return f"{where.scheme}://{where.netloc}"

    def _unanswered_of(self, request: Any, attempt: int | None = None) -> _Unanswered:
        """``request``'s attempts without an answer, counting ``attempt`` as one if given."""
        with self._lock:
            known = self._unanswered.get(request) if request is not None else None
            tally = replace(known) if known is not None else _Unanswered()
            if attempt is not None:
                tally = _Unanswered(tally.count + 1, attempt)
                if request is not None:
                    self._unanswered[request] = tally
            return tally

    def backoff_time(
        self,
        response_or_exception: Union[requests.Response, requests.RequestException] | None,
        attempt_count: int,
    ) -> float | None:
        if isinstance(response_or_exception, requests.Response):
            wait = self._after_answer.backoff_time(response_or_exception, attempt_count)
            if wait:
                self._say_answered_retry(response_or_exception, attempt_count, wait)
            return wait
        if not isinstance(response_or_exception, requests.RequestException):
            return None
        request = response_or_exception.request
        host = self._host(request)
        session = SyncSession.of(self.config)
        said = session.unanswered.get(host)
        allowed = self._allowed(self._attempts)
        if said is None and attempt_count >= allowed:
            said = (
                f"Nothing answered at {host} in {attempt_count} attempts "
                f"({type(response_or_exception).__name__}): check `base_url` and the network."
            )
            session.unanswered[host] = said
        if said is not None:
            # Said once per source: every later request to that host (another stream's listing, the
            # next stream) stops at its first unanswered attempt with the same sentence.
            raise AirbyteTracedException(message=said, internal_message=said, failure_type=FailureType.transient_error)
        tally = self._unanswered_of(request, attempt_count)
        wait = self.CDK_FIRST_WAIT_WITHOUT_ANSWER * 2 ** (tally.count - 1)
        what = f"Nothing answered at {host} ({type(response_or_exception).__name__})"
        RETRY_LOG.warning(retry_line(what, attempt_count + 1, allowed, wait))
        return None

    def _say_answered_retry(self, response: requests.Response, attempt_count: int, wait: float) -> None:
        # The CDK's loop for answered retries allows max_retries + 1 tries and starts afresh after
        # each attempt without an answer: so many answers in a row end the request.
        in_a_row = attempt_count - self._unanswered_of(response.request).last_attempt
        allowed = self._allowed(self._attempts_answered)
        if in_a_row >= allowed:
            return  # the CDK gives up here instead of retrying: its error says so
        what = answered_with(self._host(response.request), response.status_code)
        attempts = attempt_count + allowed - in_a_row
        RETRY_LOG.warning(retry_line(what, attempt_count + 1, attempts, wait + self.CDK_ADDED_SECONDS))


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


class ReportPacer:
    """Spaces report calls so that they stay within Klaviyo's published limits *before* they are
    sent, instead of learning them from 429s.

    - Burst (1 call a second): a report call goes out at least ``burst_gap_seconds`` after the
      start of the previous one.
    - Steady (2 calls per fixed minute): after an answer whose ``RateLimit-Remaining`` is 0, the
      next report call waits the ``RateLimit-Reset`` seconds it named (Klaviyo sends seconds from
      now; the CDK's ``HttpAPIBudget`` reads that header as an epoch time, hence this class).

    One per source (``SyncSession``), so that both report streams wait for the same account's
    limits: ``SegmentBatchRetriever`` waits for a slot before each report call, the row extractors
    pass it each answer's headers, and ``RetryAfterBackoff`` each 429. A stream that starts after
    another has spent the minute waits for it instead of earning a 429.
    - A 429 uses up no slot: its ``Retry-After`` is waited out by the error handler
      (``RetryAfterBackoff``), the remaining count is forgotten, and the next answer's headers set
      it again.

    Nothing is paced until the server shows that it limits report calls (a ``RateLimit-*`` header
    or a 429): Klaviyo always does, and a stand-in without limits is then read at full speed.
    Other requests (``GET /api/segments``, ``GET /api/accounts``) are never held back.

    >>> clock = iter([0.0, 0.0, 0.4, 0.4, 0.4, 1.0]).__next__
    >>> pacer = ReportPacer(clock=clock, sleep=lambda s: print(f"sleep {s:.1f}"))
    >>> pacer.wait_for_report_slot()  # the first call goes at once
    >>> pacer.note_limits(remaining=1, reset_seconds=40)
    >>> pacer.wait_for_report_slot()  # 0.4 s after the first one started: the burst limit holds it
    sleep 0.6
    """

    # Above this, a wait is worth a line in the log: a person should know why nothing moves.
    LOGGED_WAIT_SECONDS = 5.0

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
        burst_gap_seconds: float = 1.0,
    ) -> None:
        # Looked up at call time, so tests that fake time.sleep / time.monotonic reach these too.
        self.clock: Callable[[], float] = clock or (lambda: time.monotonic())
        self.sleep: Callable[[float], Any] = sleep or (lambda seconds: time.sleep(seconds))
        self.burst_gap_seconds = burst_gap_seconds
        self._limited = False
        self._last_start: float | None = None
        self._remaining: int | None = None
        self._reset_at = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def is_report_call(request: Any) -> bool:
        path = urlparse(str(getattr(request, "url", "") or "")).path.rstrip("/")
        return path.endswith("-reports")

    def note_limits(self, remaining: int, reset_seconds: float) -> None:
        """What an answer's ``RateLimit-Remaining`` / ``RateLimit-Reset`` headers said."""
        with self._lock:
            self._limited = True
            self._remaining = remaining
            self._reset_at = self.clock() + reset_seconds

    def note_throttled(self) -> None:
        """A 429: the attempt counts for nothing; the next answer's headers tell the truth."""
        with self._lock:
            self._limited = True
            self._remaining = None

    def next_slot_wait(self, now: float) -> tuple[float, str]:
        """How long a report call starting at ``now`` must wait, and why ("" when it need not)."""
        if not self._limited:
            return 0.0, ""
        steady = self._reset_at - now if self._remaining is not None and self._remaining <= 0 else 0.0
        burst = self._last_start + self.burst_gap_seconds - now if self._last_start is not None else 0.0
        if steady >= burst and steady > 0:
            return steady, f"Klaviyo's report calls for this minute are used up ({REPORT_CALLS_PER_MINUTE} a minute)"
        if burst > 0:
            return burst, "Klaviyo allows 1 report call a second"
        return 0.0, ""

    def wait_for_report_slot(self) -> None:
        # Sleeping under the lock holds back every other report call too: none may go out early.
        with self._lock:
            wait, why = self.next_slot_wait(self.clock())
            if wait > 0:
                if wait > self.LOGGED_WAIT_SECONDS:
                    LOGGER.info("Waiting %.0f s before the next report call: %s.", wait, why)
                self.sleep(wait)
                if self._remaining is not None and self._remaining <= 0:
                    self._remaining = None  # a new window: unknown until its first answer
            self._last_start = self.clock()
            if self._remaining is not None:
                self._remaining -= 1

    def update_from_response(self, request: Any, response: Any) -> None:
        if not self.is_report_call(request) or not isinstance(response, requests.Response):
            return
        if response.status_code == 429:
            self.note_throttled()
            return
        try:
            remaining = int(response.headers["RateLimit-Remaining"])
            reset_seconds = float(response.headers["RateLimit-Reset"])
        except (KeyError, ValueError):
            return
        self.note_limits(remaining, reset_seconds)
