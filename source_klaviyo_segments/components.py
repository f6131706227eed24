"""Everything the Klaviyo Segments connector decides, in the order data flows.

With ``manifest.yaml`` this file is the whole connector: the CDK's ``source-declarative-manifest``
runs the two unchanged (Airbyte's manifest-only form), and the ``source_klaviyo_segments`` package
runs the same two files. So it imports only the standard library and what ``airbyte-cdk`` itself
depends on, and it avoids ``from __future__ import annotations`` (the CDK's loader for injected
code runs a module before registering it, and dataclasses would look it up).

1. **Klaviyo's facts**: statistics, intervals, timeframe keys, window caps, each stated once.
2. **Config**: ``config_problem`` says in one sentence why a config cannot be used;
   ``prepare_config`` adds the derived settings the manifest reads (``config["_derived"]``);
   ``PrepareSyncConfig`` (a ``CustomConfigTransformation``) runs both once per source, after asking
   Klaviyo for the account's timezone, and creates the sync's pacer and report-call allowance;
   ``RefuseConfigProblem`` (a validation strategy) refuses the config with that sentence.
3. **Windows**: wall-time arithmetic in the account's timezone: bucket alignment, the cursor's
   step and each report call's window (``report_window_end``: the full cap, one bucket less for a
   window holding a DST fall-back), custom values timeframes, which segments a window asks about.
4. **Requests**: ``SegmentBatchRetriever`` reads each of the cursor's windows once per batch of up
   to 100 segments, with the report windows that cover it.
5. **Answers and rows**: nothing an answer says is used unjudged. ``SameHostCursorPagination``
   follows a segment page's ``links.next`` only to ``base_url``'s host; ``SegmentListExtractor``
   refuses a listed segment without an id or with an unreadable ``created``;
   ``SeriesRowExtractor`` / ``ValuesRowExtractor`` check a report against what its call asked
   (``asked_report``) and turn it into rows; ``TimeframeFields`` stamps a values row;
   ``BucketWindowFilter`` keeps each bucket once.
6. **Pacing and quota**: ``RetryAfterBackoff`` waits what a 429 asks (or ends the sync on the daily
   quota); ``ReportPacer`` spaces report calls within Klaviyo's burst and steady limits;
   ``ReportCallAllowance`` holds a sync to ``max_report_requests``.
"""

import calendar
import datetime as dt
import json
import logging
import math
import re
import threading
import time
from dataclasses import InitVar, dataclass, field
from typing import Any, Callable, Final, Iterable, Iterator, Mapping, MutableMapping, Sequence, Union
from urllib.parse import urljoin, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.extractors.record_filter import RecordFilter
from airbyte_cdk.sources.declarative.models.declarative_component_schema import HttpRequester as HttpRequesterModel
from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory
from airbyte_cdk.sources.declarative.partition_routers.partition_router import PartitionRouter
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.cursor_pagination_strategy import (
    CursorPaginationStrategy,
)
from airbyte_cdk.sources.declarative.retrievers.simple_retriever import SimpleRetriever
from airbyte_cdk.sources.declarative.transformations import RecordTransformation
from airbyte_cdk.sources.declarative.transformations.config_transformations.config_transformation import (
    ConfigTransformation,
)
from airbyte_cdk.sources.declarative.validators.validation_strategy import ValidationStrategy
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.types import Config, Record, StreamSlice, StreamState
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

LOGGER = logging.getLogger("airbyte")


# ---------------------------------------------------------------------------------------------
# 1. Klaviyo's facts. The API revision and the 100-id batch size live in manifest.yaml, where the
#    requests are made.
# ---------------------------------------------------------------------------------------------

STATISTICS: Final = ("total_members", "members_added", "members_removed", "net_members_changed")
INTERVALS: Final = ("hourly", "daily", "weekly", "monthly")
TIMEFRAME_KEYS: Final = (
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "this_year",
    "last_year",
    "last_7_days",
    "last_30_days",
    "last_90_days",
    "last_365_days",
    "last_3_months",
    "last_12_months",
)
CUSTOM_TIMEFRAME: Final = "custom"

# Klaviyo holds no segment report data before this day (company-local time).
FIRST_DATA_DAY: Final = dt.datetime(2023, 6, 1)

DEFAULT_BASE_URL: Final = "https://a.klaviyo.com"
DEFAULT_INTERVAL: Final = "daily"
DEFAULT_VALUES_TIMEFRAME: Final = "last_30_days"
DEFAULT_LOOKBACK_WINDOW_DAYS: Final = 1

# Longest timeframe one series call asks for, per interval, as an ISO 8601 duration that the
# CDK's cursor uses as its step. Klaviyo caps hourly at 7 days and daily at 60 days without saying
# whether in wall time or elapsed time; a window holding a DST fall-back is an hour longer in
# elapsed time, so hourly and daily keep an hour (a bucket-aligned day) of margin: a refused window
# would fail every sync. Monthly is documented as "at most 52 weeks"; 11 whole months is the most
# that always fits (12 months can be 366 days). Weekly is undocumented; 52 weeks is the figure
# reported by third parties and the same as monthly's cap (a 52-week window holds both DST changes).
SERIES_WINDOW_STEP: Final = {
    "hourly": "PT167H",
    "daily": "P59D",
    "weekly": "P52W",
    "monthly": "P11M",
}

# Klaviyo's own caps: the step when the account's timezone is known (series_window_step), and
# every report call's length but the one holding a fall-back (report_window_end). Weekly and
# monthly keep SERIES_WINDOW_STEP.
SERIES_WINDOW_CAP: Final = {"hourly": "P7D", "daily": "P60D"}

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
# 2. Config: defaults, the checks a JSON schema cannot express, the derived settings, and the
#    per-sync objects.
# ---------------------------------------------------------------------------------------------

DERIVED = "_derived"


def _utc_now() -> dt.datetime:
    return company_now(None)


def _spec_pattern(spec: Mapping[str, Any], field: str) -> "re.Pattern[str]":
    """The ``pattern`` the spec gives ``field``: the one statement of the date format."""
    return re.compile(spec["properties"][field]["pattern"])


# What each field must be, said to a person; the spec's JSON-schema type errors become these.
_FIELD_SHAPES = {
    "api_key": "text: a Klaviyo private API key with the segments:read scope",
    "start_date": "a date such as 2024-01-31 or a date-time such as 2024-01-31T00:00:00Z",
    "end_date": "a date such as 2024-01-31 or a date-time such as 2024-01-31T00:00:00Z",
    "segment_ids": 'a list of segment ids, such as ["RpKvCF"]',
    "interval": "one of hourly, daily, weekly or monthly",
    "statistics": 'a list of statistics, such as ["total_members", "members_added"]',
    "values_timeframe": "a Klaviyo timeframe key such as last_30_days, or custom",
    "lookback_window_days": "a whole number of days, 0 or more",
    "max_report_requests": "a whole number of report calls, 1 or more",
    "base_url": f"an http(s) URL such as {DEFAULT_BASE_URL}",
}


def _type_problem(config: Mapping[str, Any], spec: Mapping[str, Any]) -> str | None:
    """A field of the wrong JSON type (a text where a list belongs, a list where a number does),
    found by validating against the spec, as one sentence naming the field. Other schema errors
    are left to the checks below, whose sentences say more."""
    validator = jsonschema.Draft7Validator(spec)
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator != "type" or not error.absolute_path:
            continue
        field = str(error.absolute_path[0])
        if field in _FIELD_SHAPES:
            return f"`{field}` must be {_FIELD_SHAPES[field]}."
    return None


def _parse_date(config: Mapping[str, Any], spec: Mapping[str, Any], field: str) -> dt.datetime | None:
    value = config.get(field)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"`{field}` must be a date such as 2024-01-31 or a date-time such as 2024-01-31T00:00:00Z.")
    try:
        # Python parses more forms (20240131) than the spec admits; refuse what the spec refuses.
        if not _spec_pattern(spec, field).search(value):
            raise ValueError(value)
        return wall_time(value)
    except ValueError:
        raise ValueError(
            f"`{field}` is {value!r}, which is not a date such as 2024-01-31 or a date-time such as 2024-01-31T00:00:00Z."
        ) from None


def config_problem(config: Mapping[str, Any], spec: Mapping[str, Any], now: Callable[[], dt.datetime] = _utc_now) -> str | None:
    """One sentence saying why ``config`` cannot be used, or ``None`` when it can.

    >>> config_problem({"api_key": "pk_x", "segment_ids": "RpKvCF"}, {"properties": {"segment_ids": {"type": "array"}}})
    '`segment_ids` must be a list of segment ids, such as ["RpKvCF"].'
    """
    problem = _type_problem(config, spec)
    if problem:
        return problem
    try:
        _resolve_range(config, spec, now)
    except ValueError as error:
        return str(error)
    api_key = config.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        return "`api_key` is empty: paste a Klaviyo private API key with the segments:read scope."
    if any(character.isspace() or not character.isprintable() for character in api_key.strip()):
        return "`api_key` has a space, a line break or a control character inside it: paste the key alone."
    checks: list[Callable[[Mapping[str, Any]], str | None]] = [
        _segment_ids_problem,
        _choice_problems,
        _number_problems,
        _base_url_problem,
    ]
    for check in checks:
        problem = check(config)
        if problem:
            return problem
    return None


def _resolve_range(
    config: Mapping[str, Any], spec: Mapping[str, Any], now: Callable[[], dt.datetime]
) -> tuple[dt.datetime, dt.datetime]:
    """The wall-time range to report on: ``start_date`` raised to Klaviyo's first day of data,
    ``end_date`` (exclusive) lowered to now, since a report call on the future spends quota on nothing."""
    start = _parse_date(config, spec, "start_date") or FIRST_DATA_DAY
    start = max(start, FIRST_DATA_DAY)
    configured_end = _parse_date(config, spec, "end_date")
    if configured_end is not None and configured_end <= FIRST_DATA_DAY:
        raise ValueError(
            f"`end_date` ({format_wall_time(configured_end)}) is not after {FIRST_DATA_DAY:%Y-%m-%d}, "
            "the first day Klaviyo has segment data for: set a later one."
        )
    if configured_end is not None and configured_end <= start:
        raise ValueError(
            f"`end_date` ({format_wall_time(configured_end)}) must be later than `start_date` ({format_wall_time(start)})."
        )
    end = min(configured_end or now(), now())
    if end <= start:
        raise ValueError(f"`start_date` ({format_wall_time(start)}) is in the future: Klaviyo has no segment data for it yet.")
    return start, end


def _segment_ids_problem(config: Mapping[str, Any]) -> str | None:
    ids = config.get("segment_ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not ids:
        return "`segment_ids` is empty: list at least one segment id, or remove the field to sync every segment."
    if not all(isinstance(i, str) and i.strip() for i in ids):
        return '`segment_ids` must contain only non-empty segment ids, such as "RpKvCF".'
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        return f"`segment_ids` lists {', '.join(duplicates)} more than once: list each segment once."
    return None


def _choice_problems(config: Mapping[str, Any]) -> str | None:
    interval = config.get("interval", DEFAULT_INTERVAL)
    if interval not in INTERVALS:
        return f"`interval` is {interval!r}; use one of {', '.join(INTERVALS)}."
    timeframe = config.get("values_timeframe", DEFAULT_VALUES_TIMEFRAME)
    if timeframe not in (*TIMEFRAME_KEYS, CUSTOM_TIMEFRAME):
        return f"`values_timeframe` is {timeframe!r}; use one of {', '.join(TIMEFRAME_KEYS)} or custom."
    statistics = config.get("statistics", list(STATISTICS))
    if not isinstance(statistics, list) or not statistics:
        return f"`statistics` is empty: choose one or more of {', '.join(STATISTICS)}, or remove the field for all four."
    unknown = [s for s in statistics if s not in STATISTICS]
    if unknown:
        return f"`statistics` has {unknown[0]!r}, which Klaviyo does not know; use {', '.join(STATISTICS)}."
    if len(set(statistics)) != len(statistics):
        return "`statistics` lists a statistic more than once: list each once."
    return None


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


def _number_problems(config: Mapping[str, Any]) -> str | None:
    lookback = config.get("lookback_window_days", DEFAULT_LOOKBACK_WINDOW_DAYS)
    whole_lookback = _whole_number(lookback)
    if whole_lookback is None or whole_lookback < 0:
        return f"`lookback_window_days` is {lookback!r}; use a whole number of days, 0 or more."
    budget = config.get("max_report_requests")
    whole_budget = _whole_number(budget)
    if budget is not None and (whole_budget is None or whole_budget < 1):
        return f"`max_report_requests` is {budget!r}; use a whole number of calls, 1 or more, or remove it."
    return None


def _base_url_problem(config: Mapping[str, Any]) -> str | None:
    base_url = config.get("base_url", DEFAULT_BASE_URL)
    parsed = urlparse(base_url) if isinstance(base_url, str) else None
    if not parsed or parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f"`base_url` is {base_url!r}, which is not an http(s) URL such as {DEFAULT_BASE_URL}."
    return None


def prepare_config(
    config: Mapping[str, Any],
    spec: Mapping[str, Any],
    now: Callable[[], dt.datetime] | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    """``config`` with defaults filled in and the settings the manifest reads under ``_derived``.

    ``timezone`` is the account's (``GET /api/accounts``), or ``None`` when the key may not read
    it: it sets "now" (the company's; UTC's when unknown), the offsets timeframes are sent with,
    and whether windows may take Klaviyo's full caps. A config that ``config_problem`` refuses gets
    only ``_derived.problem``, the sentence ``RefuseConfigProblem`` refuses it with before any
    stream is built.

    >>> spec = {"properties": {"start_date": {"pattern": "^\\d{4}-\\d{2}-\\d{2}$"}}}
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
    prepared = dict(config)
    if isinstance(prepared.get("api_key"), str):
        # A key pasted with a trailing newline would make `requests` refuse the header, quoting it.
        prepared["api_key"] = prepared["api_key"].strip()
    prepared.setdefault("interval", DEFAULT_INTERVAL)
    prepared.setdefault("statistics", list(STATISTICS))
    prepared.setdefault("values_timeframe", DEFAULT_VALUES_TIMEFRAME)
    prepared.setdefault("lookback_window_days", DEFAULT_LOOKBACK_WINDOW_DAYS)
    prepared["base_url"] = str(prepared.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    problem = config_problem(prepared, spec, now)
    if problem:
        prepared[DERIVED] = {"timezone": timezone, "problem": problem}
        return prepared
    for field_name in ("lookback_window_days", "max_report_requests"):
        if prepared.get(field_name) is not None:
            prepared[field_name] = _whole_number(prepared[field_name])
    start, end = _resolve_range(prepared, spec, now)
    requested_start = _parse_date(prepared, spec, "start_date")
    if requested_start and requested_start < FIRST_DATA_DAY:
        LOGGER.warning(
            "start_date %s is before %s, the first day Klaviyo has segment data for; starting there instead.",
            format_wall_time(requested_start),
            f"{FIRST_DATA_DAY:%Y-%m-%d}",
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


# Where the package tells the manifest which report streams a sync reads and how (from the
# configured catalog, which components never see); without it, both, as Airbyte reads them by default.
CATALOG_MODES = "_catalog_modes"
DEFAULT_CATALOG_MODES: Final = {"segment_values": "full_refresh", "segment_series": "incremental"}


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
        timezone = None
        if not _unusable_for_requests(config, spec):
            timezone = account_timezone(self.parameters["account_requester"], config)
        prepared = prepare_config(config, spec, timezone=timezone)
        config.clear()
        config.update(prepared)


def _unusable_for_requests(config: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """Whether no request can be sent with this config (no key, no URL, a field of the wrong type)."""
    api_key = config.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip() or _type_problem(config, spec):
        return True
    return _base_url_problem({**config, "base_url": config.get("base_url") or DEFAULT_BASE_URL}) is not None


@dataclass
class RefuseConfigProblem(ValidationStrategy):
    """Refuses a config with ``_derived.problem``, the one sentence ``config_problem`` found, as a
    config error the platform shows as it is (``spec.config_normalization_rules.validations``)."""

    def validate(self, value: Any) -> None:
        if value:
            raise AirbyteTracedException(message=str(value), internal_message=str(value), failure_type=FailureType.config_error)


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
    month_index = value.month - 1 + months
    year, month = value.year + month_index // 12, month_index % 12 + 1
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


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
    (SERIES_WINDOW_STEP's, SERIES_WINDOW_CAP's, ``lookback_duration``'s), in wall time.

    >>> _add_step(dt.datetime(2024, 3, 31), "P1M", times=-1)
    datetime.datetime(2024, 2, 29, 0, 0)
    """
    if step.endswith("M") and not step.startswith("PT"):
        return add_months(start, int(step[1:-1]) * times)
    amount, unit = int(step.lstrip("PT")[:-1]), step[-1]
    hours = {"H": 1, "D": 24, "W": 24 * 7}[unit] * amount * times
    return start + dt.timedelta(hours=hours)


def resumed_series_start(derived: Mapping[str, Any], cursor: str | None) -> dt.datetime | None:
    """Where a ``segment_series`` sync resumed from a saved ``date_time`` starts: the lookback
    before it (``None`` for a first sync).

    >>> resumed_series_start({"series_lookback": "P1D"}, "2024-03-05T00:00:00")
    datetime.datetime(2024, 3, 4, 0, 0)
    """
    if not cursor:
        return None
    return _add_step(wall_time(cursor), derived["series_lookback"], times=-1)


def elapsed(start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> dt.timedelta:
    """Real time between two company wall times; a repeated (fall-back) wall time is read the way
    that makes the span longest."""
    first = start.replace(tzinfo=tz, fold=0).astimezone(dt.timezone.utc)
    last = end.replace(tzinfo=tz, fold=1).astimezone(dt.timezone.utc)
    return last - first


def series_window_step(interval: str, timezone: str | None) -> str:
    """The manifest cursor's step for ``interval``, as an ISO 8601 duration: Klaviyo's full cap
    (7 days hourly, 60 days daily) when the account's timezone is known, else one bucket less.

    The step cuts the *state's* windows (what a partition closes). What each report call asks for
    is ``report_window_end``'s: the same window unless it holds a fall-back, which the timezone
    shows. Without it any window might hold one, so every window keeps the margin.

    >>> series_window_step("hourly", "America/New_York"), series_window_step("hourly", None)
    ('P7D', 'PT167H')
    """
    cap = SERIES_WINDOW_CAP.get(interval)
    return cap if cap is not None and zone(timezone) is not None else SERIES_WINDOW_STEP[interval]


# A full cap's step -> one bucket less: the step of a window that the full cap would stretch past
# Klaviyo's cap in elapsed time (one holding a fall-back).
_MARGIN_OF_CAP: Final = {cap: SERIES_WINDOW_STEP[interval] for interval, cap in SERIES_WINDOW_CAP.items()}


def report_window_end(start: dt.datetime, end: dt.datetime, step: str, timezone: str | None) -> dt.datetime:
    """Where a series report call starting at ``start`` ends (exclusive, at most ``end``): ``step``
    on, unless that window would be longer than Klaviyo's cap in elapsed time (it holds a DST
    fall-back in the account's timezone), then one bucket less. Klaviyo does not say whether it
    measures its caps in wall or elapsed time, so every call fits both; only the window holding
    the fall-back gives up its bucket, and the calls after it go on from where it stopped.

    >>> report_window_end(dt.datetime(2024, 4, 1), dt.datetime(2024, 5, 1), "P7D", "America/New_York")
    datetime.datetime(2024, 4, 8, 0, 0)
    >>> report_window_end(dt.datetime(2024, 10, 30), dt.datetime(2024, 12, 1), "P7D", "America/New_York")
    datetime.datetime(2024, 11, 5, 23, 0)
    """
    full = min(_add_step(start, step), end)
    tz = zone(timezone)
    margin = _MARGIN_OF_CAP.get(step)
    if tz is None or margin is None:
        return full
    cap = _add_step(start, step) - start
    if elapsed(start, full - ONE_SECOND, tz) <= cap:
        return full
    return min(_add_step(start, margin), end)


def report_windows(
    start: dt.datetime, end: dt.datetime, step: str, timezone: str | None
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """The ``[start, end)`` windows the series report calls ask for, one after the other, each as
    long as ``report_window_end`` allows: the fewest that fit Klaviyo's caps.

    >>> [(a.isoformat(), b.isoformat()) for a, b in report_windows(
    ...     dt.datetime(2024, 10, 30), dt.datetime(2024, 11, 13), "P7D", "America/New_York")]  # doctest: +NORMALIZE_WHITESPACE
    [('2024-10-30T00:00:00', '2024-11-05T23:00:00'), ('2024-11-05T23:00:00', '2024-11-12T23:00:00'),
     ('2024-11-12T23:00:00', '2024-11-13T00:00:00')]
    """
    while start < end:
        window_end = report_window_end(start, end, step, timezone)
        yield start, window_end
        start = window_end


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
# 4. Requests: each window (or values timeframe) once per batch of the segments that existed by
#    its end.
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

    def __eq__(self, other: Any) -> bool:
        return StreamSlice.__eq__(self, other)


def series_timeframe(window: Mapping[str, Any], timezone: str | None) -> dict[str, Any]:
    """The ``timeframe`` a series window is asked for: its first and last second as RFC 3339
    date-times with the account's offset (``{}`` for a partition that is not a window).

    >>> series_timeframe({"start_time": "2024-03-01T00:00:00", "end_time": "2024-04-29T23:59:59"}, "America/New_York")
    {'timeframe': {'start': '2024-03-01T00:00:00-05:00', 'end': '2024-04-29T23:59:59-04:00'}}
    """
    start, last_second = window.get("start_time"), window.get("end_time")
    if not start or not last_second:
        return {}
    bounds = {
        "start": timeframe_bound(wall_time(start), timezone),
        "end": timeframe_bound(wall_time(last_second), timezone, last=True),
    }
    return {"timeframe": bounds}


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


@dataclass
class SegmentBatchRetriever(SimpleRetriever):
    """Reads one partition (a series window, a values timeframe) once per batch of the segments
    that existed by its end.

    The segments and their ``created`` are listed once per sync, on first use, from ``segments``.
    Each partition asks only about the segments created before it ends (a timeframe key, relative
    to now, asks about all of them), oldest first, ``batch_size`` at a time
    (``plan_segment_batches``): a segment costs nothing before it existed. The partition is merged
    with each batch's ``segment_id`` list and their ``created`` (for ``BucketWindowFilter``), and
    every record is re-attached to the partition itself, so the cursor closes a window only when
    every batch of it has been read.

    A series partition is the cursor's window; the calls ask for the report windows that cover it
    (``_report_calls``): the same window, unless a DST fall-back makes one call a bucket shorter and
    the last call of a window read on into the next.

    In the Connector Builder each partition is a slice and each batch's report call a page of it,
    shown with its request (the ``filter`` of the batch's ids, the window's ``timeframe``) and its
    answer (``request_log``). The CDK holds a test read's slice limit itself, around any retriever;
    this class holds the page limit (batches per partition) and the record limit
    (``builder_test_read_limits``), which the CDK applies only to the paginators and partitions it
    builds itself.
    """

    segments: PartitionRouter | None = None
    batch_size: int = 100
    _segments: list[tuple[str, str | None]] | None = field(init=False, repr=False, default=None)
    _segments_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _stream_allowance: Any | None = field(init=False, repr=False, default=None)
    _granted_whole: bool = field(init=False, repr=False, default=False)
    _allowance_lock: threading.RLock = field(init=False, repr=False, default_factory=threading.RLock)
    # This stream's ReportPacer (defined with the pacing, below).
    pacer: Any = field(init=False, repr=False, default=None)
    # A Connector Builder test read's TestLimits (None in a sync), and the records given so far.
    _test_read_limits: Any | None = field(init=False, repr=False, default=None)
    _test_read_records: int = field(init=False, repr=False, default=0)
    _test_read_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    # Set once a report this stream could not use has ended a partition with an error.
    _stopped: bool = field(init=False, repr=False, default=False)
    # This stream's StreamProgress (defined with the plan, below), made at its first partition.
    _progress: Any | None = field(init=False, repr=False, default=None)
    # (the next window's start, where the series calls have read to) when a window's last call read
    # past its end: the next window's calls begin there.
    _read_ahead: tuple[str, dt.datetime] | None = field(init=False, repr=False, default=None)

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        if self.log_formatter is None:
            self.log_formatter = request_log(self.name)
        self._test_read_limits = builder_test_read_limits(self.config)
        self.pacer = ReportPacer()
        # The pacer hears of every report answer: its RateLimit-* headers from the row extractor,
        # and each 429 from RetryAfterBackoff (both run inside the requester, out of this class's sight).
        extractor = getattr(self.record_selector, "extractor", None)
        if isinstance(extractor, (SeriesRowExtractor, ValuesRowExtractor)):
            extractor.pacer = self.pacer
        error_handler = getattr(self.requester, "error_handler", None)
        for strategy in getattr(error_handler, "backoff_strategies", None) or []:
            if isinstance(strategy, RetryAfterBackoff):
                strategy.pacer = self.pacer

    def _listed_segments(self) -> list[tuple[str, str | None]]:
        """``(id, created)`` of every segment to report on, listed once."""
        with self._segments_lock:
            if self._segments is None:
                if self.segments is None:
                    raise ValueError("SegmentBatchRetriever needs `segments`")
                listed = []
                for partition in self.segments.stream_slices():
                    created = (partition.extra_fields or {}).get("created")
                    listed.append((str(partition.partition["segment_id"]), created if isinstance(created, str) else None))
                self._segments = listed
                self._warn_of_missing_segments(listed)
            if self._segments == [] and self.config.get("segment_ids") and self._test_read_limits is None:
                # Reading on would close every window empty and move the state past them.
                message = "None of the `segment_ids` are in the Klaviyo account: fix them, or remove the field."
                raise AirbyteTracedException(message=message, failure_type=FailureType.config_error)
            return self._segments

    def _warn_of_missing_segments(self, segments: list[tuple[str, str | None]]) -> None:
        """A configured segment that is gone (deleted since setup) is skipped, with a warning."""
        found = {segment_id for segment_id, _ in segments}
        missing = [segment_id for segment_id in self.config.get("segment_ids") or [] if segment_id not in found]
        if missing and self.config.get(CHECKING):
            message = (
                f"These segment ids are not in the Klaviyo account: {', '.join(missing)}. Fix or remove them in `segment_ids`."
            )
            raise AirbyteTracedException(message=message, failure_type=FailureType.config_error)
        if missing and self._test_read_limits is not None:
            # The CDK lists a test read's parent stream up to its page limit, not the whole account.
            LOGGER.warning(
                "%s: not in the first %s pages of segments a Connector Builder test read lists, so skipped.",
                ", ".join(missing),
                self._test_read_limits.max_pages_per_slice,
            )
        elif missing:
            LOGGER.warning("%s: not in the Klaviyo account, so skipped; remove them from `segment_ids`.", ", ".join(missing))

    def _values_calls(self) -> int:
        """Every call the values timeframes of this sync need (they are known from the config and
        the segments): what ``segment_values`` must be granted at once to be read whole."""
        timeframes = self.config.get("_derived", {}).get("values_timeframes") or []
        partitions = [StreamSlice(partition={"values_timeframe": timeframe}, cursor_slice={}) for timeframe in timeframes]
        return sum(len(self._batches(partition)) for partition in partitions)

    def _catalog_modes(self) -> Mapping[str, str]:
        return self.config.get(CATALOG_MODES) or DEFAULT_CATALOG_MODES

    def _allowance(self) -> "ReportCallAllowance":
        """This stream's share of ``max_report_requests`` (``report_call_shares``), decided once."""
        with self._allowance_lock:
            if self._stream_allowance is None:
                shares = report_call_shares(self.config.get("max_report_requests"), self._catalog_modes(), self._values_calls())
                self._stream_allowance = ReportCallAllowance(shares.get(self.name))
            return self._stream_allowance

    def _batches(self, partition: StreamSlice) -> list[list[str]]:
        """The batches ``partition`` asks about: the segments that existed by its end."""
        return self._batches_until(partition_end(partition))

    def _batches_until(self, end: dt.datetime | None) -> list[list[str]]:
        """The batches a report window ending at ``end`` asks about: the segments that existed by then."""
        timezone = self.config.get("_derived", {}).get("timezone")
        return plan_segment_batches(self._listed_segments(), end, timezone, int(self.batch_size))

    def _report_calls(self, partition: StreamSlice) -> tuple[list[tuple[Mapping[str, Any], list[str]]], dt.datetime | None]:
        """``partition``'s report calls as ``(window, batch)`` (a values partition's with no window of
        its own), and where they read to (``None`` for a values partition).

        A series partition is one of the cursor's windows. Its calls ask for ``report_window_end``'s
        windows from where the calls so far have read to (its start, or further when the window
        before read past it) until they cover it. Without a fall-back in the range they are the
        cursor's windows. After one, they run a bucket behind, and the last call of a window reads
        on into the next, up to the full cap: its rows are written with this window, every batch of
        them before it closes, so the state (the newest bucket written) never passes a bucket that
        some segment lacks, and the next window's calls begin where these stopped.
        """
        read_ahead, self._read_ahead = self._read_ahead, None
        start, last_second = partition.cursor_slice.get("start_time"), partition.cursor_slice.get("end_time")
        if not start or not last_second:
            return [({}, batch) for batch in self._batches(partition)], None
        derived = self.config.get("_derived", {})
        end = wall_time(last_second) + ONE_SECOND
        series_end = max(wall_time(derived["series_end"]) + ONE_SECOND, end)
        calls: list[tuple[Mapping[str, Any], list[str]]] = []
        at = read_ahead[1] if read_ahead is not None and read_ahead[0] == start else wall_time(start)
        for window_start, window_end in report_windows(at, series_end, derived["series_step"], derived.get("timezone")):
            if window_start >= end:
                break
            window = {"start_time": format_wall_time(window_start), "end_time": format_wall_time(window_end - ONE_SECOND)}
            calls.extend((window, batch) for batch in self._batches_until(window_end))
            at = window_end
        return calls, at

    def _log_allowance_spent(self, allowance: "ReportCallAllowance") -> None:
        if allowance.spent_logged:
            return
        allowance.spent_logged = True
        LOGGER.warning(
            "max_report_requests (%s) reached: %s left its last %s report calls for the next sync, "
            "which resumes from the saved state.",
            self.config.get("max_report_requests"),
            self.name,
            allowance.reserved,
        )

    def _cut_short(self) -> AirbyteTracedException:
        """The error that ends a stream which cannot resume, so that its table is not replaced by
        the part of it read so far (the stream ends incomplete)."""
        message = (
            f"`max_report_requests` ({self.config.get('max_report_requests')}) leaves too few report calls to read "
            f"{self.name} in full in one sync: raise it, or read the stream incrementally if it can be."
        )
        return AirbyteTracedException(message=message, failure_type=FailureType.config_error)

    def _granted(self, batches: int) -> bool:
        """Whether this partition's ``batches`` may be read: ``segment_values`` is granted every
        call of its timeframes at its first partition, or none; a window stream, each window's."""
        allowance = self._allowance()
        if self.name != "segment_values":
            return allowance.reserve(batches)
        with self._allowance_lock:
            if not self._granted_whole:
                self._granted_whole = allowance.reserve(self._values_calls())
            return self._granted_whole

    def read_records(
        self,
        records_schema: Mapping[str, Any],
        stream_slice: StreamSlice | None = None,
    ) -> Iterable[Any]:
        partition = _SliceWithCachedHash.of(stream_slice or StreamSlice(partition={}, cursor_slice={}))
        created = dict(self._listed_segments())
        if self.config.get(CHECKING):
            return  # `check` lists the segments the reports would ask about, and spends no report call
        limits = self._test_read_limits
        if limits is not None and not self._test_read_room():
            return
        if self._stopped:
            # A report this stream could not use (malformed, refused, the daily quota) ended an
            # earlier partition: later ones would only spend calls that the next sync, resuming
            # from the state, makes again.
            if self._catalog_modes().get(self.name) != "incremental":
                message = f"{self.name} was not read in full: a report it could not use stopped it (see the error above)."
                raise AirbyteTracedException(message=message, failure_type=FailureType.transient_error)
            return
        calls, read_until = self._report_calls(partition)
        if limits is not None:
            # A Connector Builder test read: each report call is a page of the partition, and each
            # partition is read on its own (its pages may be cut short), so none reads ahead.
            calls, read_until = calls[: limits.max_pages_per_slice], None
        progress = self._stream_progress(partition)
        if not self._granted(len(calls)):
            if self._catalog_modes().get(self.name) != "incremental":
                raise self._cut_short()
            # Left for the next sync: the state stays at the last window read in full.
            self._log_allowance_spent(self._allowance())
            return
        timezone = self.config.get("_derived", {}).get("timezone")
        rows = 0
        try:
            for window, batch in calls:
                if limits is not None and not self._test_read_room():
                    return
                batch_slice = StreamSlice(
                    partition={
                        **partition.partition,
                        "segment_id": batch,
                        "segment_created": {segment_id: created.get(segment_id) for segment_id in batch},
                        **series_timeframe(window, timezone),
                    },
                    cursor_slice=window or partition.cursor_slice,
                )
                self.pacer.wait_for_report_slot()
                for record in super().read_records(records_schema, batch_slice):
                    if limits is not None and not self._take_test_read_record():
                        return
                    rows += 1
                    yield of_partition(record, partition)
        except Exception:
            self._stopped = True
            raise
        end = partition_end(partition)
        if read_until is not None and end is not None and read_until > end:
            self._read_ahead = (format_wall_time(end), read_until)
        LOGGER.info(progress.partition_read(partition, calls=len(calls), rows=rows))

    def _stream_progress(self, partition: StreamSlice) -> "StreamProgress":
        """This stream's progress against its plan, planned at its first partition (a resumed
        series starts where its cursor does) with the functions ``plan`` uses."""
        with self._allowance_lock:
            if self._progress is None:
                start = partition.cursor_slice.get("start_time")
                plan = plan_stream(
                    self.name,
                    self.config.get("_derived", {}),
                    self._listed_segments(),
                    int(self.batch_size),
                    wall_time(start) if start else None,
                )
                self._progress = StreamProgress(plan)
            return self._progress

    def _test_read_room(self) -> bool:
        """Whether a test read may still give a record (the limit counts the whole stream)."""
        with self._test_read_lock:
            return self._test_read_limits is None or self._test_read_records < self._test_read_limits.max_records

    def _take_test_read_record(self) -> bool:
        """Counts one more record of a test read, if the record limit leaves room for it."""
        with self._test_read_lock:
            if self._test_read_limits is not None and self._test_read_records >= self._test_read_limits.max_records:
                return False
            self._test_read_records += 1
            return True


def of_partition(record: Any, partition: StreamSlice) -> Any:
    """``record`` (read with a batch's slice) attached to its ``partition``, which the cursor
    observes and closes; anything that is not a record, unchanged."""
    if isinstance(record, Record) and record.associated_slice is not partition:
        return Record(record.data, record.stream_name, associated_slice=partition, file_reference=record.file_reference)
    return record


def partition_end(partition: StreamSlice) -> dt.datetime | None:
    """Where a partition's data ends, exclusive, in company wall time: a series window's last
    second plus one, a custom values window's end; ``None`` for a timeframe key.

    >>> window = {"start_time": "2024-01-01T00:00:00", "end_time": "2024-02-29T23:59:59"}
    >>> partition_end(StreamSlice(partition={}, cursor_slice=window))
    datetime.datetime(2024, 3, 1, 0, 0)
    """
    last_second = partition.cursor_slice.get("end_time")
    if last_second:
        return wall_time(last_second) + dt.timedelta(seconds=1)
    timeframe_end = (partition.partition.get("values_timeframe") or {}).get("timeframe_end")
    return wall_time(timeframe_end) if timeframe_end else None


# ---------------------------------------------------------------------------------------------
# 5. Answers and rows: nothing an answer says is used before it is judged. A link is followed only
#    to base_url's host; a segment listing must name each segment; a report must answer what its
#    call asked. A report answer becomes one row per segment per bucket (or per timeframe).
# ---------------------------------------------------------------------------------------------


def _call_of(request: Any) -> str:
    """A request as a person names it: ``GET /api/segments``.

    >>> _call_of(requests.Request("GET", "https://a.klaviyo.com/api/segments/?page[cursor]=x").prepare())
    'GET /api/segments/'
    """
    method = getattr(request, "method", None) or "a request to"
    return f"{method} {urlparse(str(getattr(request, 'url', '') or '')).path or '/'}"


def origin(url: str) -> tuple[str, str, int] | None:
    """Where ``requests`` connects to send ``url``: ``(scheme, host, port)``, the default port filled
    in; ``None`` when ``url`` is not an http(s) URL it would send. Judged on the URL as ``requests``
    prepares it (its parser, its IDNA encoding), so what is checked is where the request would go.

    >>> origin("https://A.klaviyo.com/api/segments?page[cursor]=x")
    ('https', 'a.klaviyo.com', 443)
    >>> origin("http://127.0.0.2:8080/api/segments"), origin("a.klaviyo.com/api"), origin("http://[::1")
    (('http', '127.0.0.2', 8080), None, None)
    """
    try:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        parsed = urlparse(str(prepared.url))
        port = parsed.port
    except (requests.RequestException, ValueError, UnicodeError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    return parsed.scheme, parsed.hostname, port or (443 if parsed.scheme == "https" else 80)


def _host_named(where: tuple[str, str, int]) -> str:
    scheme, host, port = where
    return f"{scheme}://{host}:{port}"


def link_on_base_url(link: Any, base_url: str) -> str | None:
    """``link`` (taken from an answer; relative links are read against ``base_url``) as the URL
    ``requests`` would send, if it goes to ``base_url``'s scheme, host and port and carries no
    credentials of its own (``requests`` would send them instead of the API key); else ``None``.

    >>> link_on_base_url("https://a.klaviyo.com/api/segments/?page%5Bcursor%5D=x", "https://a.klaviyo.com")
    'https://a.klaviyo.com/api/segments/?page%5Bcursor%5D=x'
    >>> link_on_base_url("/api/segments/?page[cursor]=x", "http://127.0.0.1:8080")
    'http://127.0.0.1:8080/api/segments/?page%5Bcursor%5D=x'
    >>> [link_on_base_url(other, "http://127.0.0.1:8080") for other in
    ...  ("http://127.0.0.2:8080/api", "//127.0.0.2:8080/api", "https://127.0.0.1:8080/api", "http://u:p@127.0.0.1:8080/")]
    [None, None, None, None]
    """
    url = _resolved(link, base_url)
    home = origin(base_url)
    if url is None or home is None or origin(url) != home:
        return None
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    parsed = urlparse(str(prepared.url))
    if parsed.username is not None or parsed.password is not None:
        return None
    return str(prepared.url)


def _resolved(link: Any, base_url: str) -> str | None:
    """``link`` read against ``base_url``, as the requester joins a path; ``None`` if it cannot be."""
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        return urljoin(base_url.rstrip("/") + "/", link.strip())
    except ValueError:  # an unclosed [IPv6] host, for one
        return None


def foreign_link_refused(call: str, link: Any, base_url: str) -> AirbyteTracedException:
    """The one sentence that ends a listing whose answer links off ``base_url``'s host: a config
    error, since retrying changes nothing and the fix lies with whoever answers at ``base_url``
    (a proxy or stand-in that passes on another host's links)."""
    resolved = _resolved(link, base_url)
    where = origin(resolved) if resolved else None
    named = f"on {_host_named(where)}" if where else f"as {str(link)[:120]!r}, which is not a URL on that host"
    message = (
        f"The answer to {call} named its next page {named}, not on base_url ({base_url}): the connector sends the "
        "API key only to base_url, so it stopped; if base_url is a proxy, make it rewrite links.next to its own address."
    )
    return AirbyteTracedException(message=message, internal_message=message, failure_type=FailureType.config_error)


@dataclass
class SameHostCursorPagination(CursorPaginationStrategy):
    """The manifest's ``CursorPagination`` (the next page is ``cursor_value`` until ``stop_condition``)
    that follows a link only to ``config['base_url']``'s scheme, host and port, where every request
    of the connector goes: the API key is sent with each page request, and ``requests`` drops it on
    a cross-host *redirect* but not on a link. A link elsewhere (or one that is not a URL) ends the
    stream with ``foreign_link_refused``'s sentence before anything is sent there; so does a link
    to a page this listing has already read (it would never end). A relative link is read against
    ``base_url``, as the requester joins it.
    """

    # The links this listing has followed: a link to one of them again is a loop.
    _followed: set[str] = field(init=False, repr=False, default_factory=set)

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Record | None,
        last_page_token_value: Any | None = None,
        page_size_override: int | None = None,
        stream_slice: StreamSlice | None = None,
    ) -> Any | None:
        if last_page_token_value is None:
            self._followed.clear()  # a listing's first page
        token = super().next_page_token(
            response, last_page_size, last_record, last_page_token_value, page_size_override, stream_slice
        )
        if token is None:
            return None
        base_url = str(self.config.get("base_url") or DEFAULT_BASE_URL)
        call = _call_of(response.request)
        url = link_on_base_url(token, base_url)
        if url is None:
            raise foreign_link_refused(call, token, base_url)
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


@dataclass
class SeriesRowExtractor(RecordExtractor):
    """A ``segment-series-report`` response -> rows ``{segment_id, interval, date_time, <statistics>}``,
    judged against what its call asked (``asked_report``, ``series_rows``).

    Without the account's timezone, ``date_times`` written in UTC cannot be placed in company
    time, and the bucket-in-window rule compares company wall times: said once, with the fix.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    _warned_of_utc: bool = field(init=False, repr=False, default=False)
    # The stream's ReportPacer, set by SegmentBatchRetriever: it reads each answer's RateLimit-* headers.
    pacer: Any = field(init=False, repr=False, default=None)

    def extract_records(self, response: requests.Response) -> Iterable[Mapping[str, Any]]:
        timezone = self.config.get("_derived", {}).get("timezone")
        asked = asked_report(response.request)
        attributes = _report_attributes(response, asked.call)
        if self.pacer is not None:
            self.pacer.update_from_response(response.request, response)
        if timezone is None and not self._warned_of_utc and _written_in_utc(attributes.get("date_times")):
            self._warned_of_utc = True
            LOGGER.warning(
                "Klaviyo wrote bucket starts in UTC and the API key may not read the account's timezone "
                "(scope accounts:read): unless the account is on UTC, a bucket at a window's edge may be "
                "missed. Give the key accounts:read."
            )
        yield from series_rows(attributes, self.config["statistics"], self.config["interval"], timezone, asked)


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
    # The stream's ReportPacer, set by SegmentBatchRetriever: it reads each answer's RateLimit-* headers.
    pacer: Any = field(init=False, repr=False, default=None)

    def extract_records(self, response: requests.Response) -> Iterable[Mapping[str, Any]]:
        asked = asked_report(response.request)
        attributes = _report_attributes(response, asked.call)
        if self.pacer is not None:
            self.pacer.update_from_response(response.request, response)
        yield from values_rows(attributes, self.config["statistics"], asked)


@dataclass
class TimeframeFields(RecordTransformation):
    """Stamps a values row with its partition's ``timeframe``, ``timeframe_start`` and
    ``timeframe_end`` (null for a Klaviyo key; AddFields would drop a null)."""

    def transform(
        self,
        record: dict[str, Any],
        config: Config | None = None,
        stream_state: StreamState | None = None,
        stream_slice: StreamSlice | None = None,
    ) -> None:
        timeframe = (stream_slice.partition if stream_slice else {}).get("values_timeframe") or {}
        for key in ("timeframe", "timeframe_start", "timeframe_end"):
            record[key] = timeframe.get(key)


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
        interval, timezone = self.config["interval"], self.config.get("_derived", {}).get("timezone")
        for record in records:
            if not bucket_in_window(record["date_time"], start, last_second):
                continue
            if bucket_ended_before(record["date_time"], interval, created.get(record["segment_id"]), timezone):
                continue
            yield record


# ---------------------------------------------------------------------------------------------
# 6. Pacing and quota.
# ---------------------------------------------------------------------------------------------


@dataclass
class RetryAfterBackoff(BackoffStrategy):
    """Waits the ``Retry-After`` seconds of a 429; a longer wait than ``max_waiting_time_in_seconds``
    is Klaviyo's daily quota, so the sync ends (keeping the state of finished windows) with a
    transient error saying when to run it again. Without the header, defers to the next strategy.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    max_waiting_time_in_seconds: float = MAX_RATE_LIMIT_WAIT_SECONDS
    # The stream's ReportPacer, set by SegmentBatchRetriever: a 429 uses up no slot.
    pacer: Any = field(init=False, repr=False, default=None)

    def backoff_time(
        self,
        response_or_exception: Union[requests.Response, requests.RequestException] | None,
        attempt_count: int,
    ) -> float | None:
        if not isinstance(response_or_exception, requests.Response):
            return None
        if response_or_exception.status_code == 429 and self.pacer is not None:
            self.pacer.update_from_response(response_or_exception.request, response_or_exception)
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

    Each report stream's ``SegmentBatchRetriever`` owns one: it waits for a slot before each report
    call, its row extractor passes it each answer's headers, and its ``RetryAfterBackoff`` each
    429. The streams are read one after the other (``concurrency_level`` 1), so the second one's
    first call may meet the first one's spent minute: one 429, whose ``Retry-After`` is the wait the
    pacer would have made.
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
            return steady, "Klaviyo's report calls for this minute are used up (2 a minute)"
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

    def acquire_call(self, request: Any) -> None:
        """Waits until ``request`` may go, if it is a report call; other requests never wait."""
        if self.is_report_call(request):
            self.wait_for_report_slot()

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


def report_call_shares(limit: int | None, modes: Mapping[str, str], values_calls: int) -> dict[str, int | None]:
    """How many of a sync's ``max_report_requests`` each report stream may make, decided the same
    way by both streams, so that neither needs to know what the other has spent.

    ``segment_values`` is read whole or not at all (a full-refresh table is never replaced by part
    of itself): it is given the ``values_calls`` its timeframes need, if they fit. ``segment_series``
    gets the rest; read incrementally, it resumes from its state in the next sync.

    >>> report_call_shares(6, {"segment_values": "full_refresh", "segment_series": "incremental"}, 2)
    {'segment_values': 2, 'segment_series': 4}
    >>> report_call_shares(6, {"segment_series": "incremental"}, 2)  # segment_values not selected
    {'segment_values': 0, 'segment_series': 6}
    >>> report_call_shares(1, {"segment_values": "full_refresh", "segment_series": "incremental"}, 2)
    {'segment_values': 0, 'segment_series': 1}
    """
    if limit is None:
        return {"segment_values": None, "segment_series": None}
    values = values_calls if "segment_values" in modes and values_calls <= limit else 0
    return {"segment_values": values, "segment_series": limit - values}


class ReportCallAllowance:
    """How many report calls one stream may still make in this sync (its ``report_call_shares``
    share); unlimited if ``None``.

    A partition is read whole or not at all: ``reserve`` grants all of its batches or none, so a
    window is never half-read (which would move the state past the batches left out).

    >>> allowance = ReportCallAllowance(3)
    >>> allowance.reserve(2), allowance.reserve(2), allowance.reserve(1)
    (True, False, True)
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.reserved = 0
        self.spent_logged = False
        self._lock = threading.Lock()

    def reserve(self, calls: int) -> bool:
        """Grants the ``calls`` of the next partition (its batches), if they all fit."""
        with self._lock:
            if self.limit is not None and self.reserved + calls > self.limit:
                return False
            self.reserved += calls
            return True

    def __repr__(self) -> str:
        return f"ReportCallAllowance(limit={self.limit}, reserved={self.reserved})"


# ---------------------------------------------------------------------------------------------
# 7. The plan: what a sync will cost, from the same functions the read uses.
# ---------------------------------------------------------------------------------------------


def series_windows(derived: Mapping[str, Any], resume_from: dt.datetime | None = None) -> list[tuple[dt.datetime, dt.datetime]]:
    """The ``[start, end)`` wall-time windows ``segment_series`` reads, as the manifest's cursor cuts
    them: from ``series_start`` (or ``resume_from``, where a resumed cursor starts) to the end,
    ``series_step`` at a time.

    >>> derived = {"series_start": "2024-01-01T00:00:00", "series_end": "2024-04-09T23:59:59", "series_step": "P60D"}
    >>> [(start.date().isoformat(), end.date().isoformat()) for start, end in series_windows(derived)]
    [('2024-01-01', '2024-03-01'), ('2024-03-01', '2024-04-10')]
    """
    start = max(resume_from, wall_time(derived["series_start"])) if resume_from else wall_time(derived["series_start"])
    end = wall_time(derived["series_end"]) + ONE_SECOND
    windows = []
    while start < end:
        window_end = min(_add_step(start, derived["series_step"]), end)
        windows.append((start, window_end))
        start = window_end
    return windows


def stream_partitions(stream: str, derived: Mapping[str, Any], resume_from: dt.datetime | None = None) -> list[StreamSlice]:
    """The partitions a report stream reads, shaped as the CDK hands them to ``SegmentBatchRetriever``."""
    if stream == "segment_values":
        return [StreamSlice(partition={"values_timeframe": t}, cursor_slice={}) for t in derived.get("values_timeframes") or []]
    return [
        StreamSlice(
            partition={},
            cursor_slice={"start_time": format_wall_time(start), "end_time": format_wall_time(end - ONE_SECOND)},
        )
        for start, end in series_windows(derived, resume_from)
    ]


@dataclass(frozen=True)
class StreamPlan:
    """What one report stream will ask Klaviyo for: ``calls`` report calls over ``partitions``
    windows (or values timeframes), for ``segments`` segments."""

    stream: str
    segments: int
    partitions: int
    calls: int

    def describe(self) -> str:
        what = "timeframe" if self.stream == "segment_values" else "window"
        return (
            f"{self.stream}: {self.segments:,} segments, {self.partitions:,} {what}{'s' if self.partitions != 1 else ''}, "
            f"{self.calls:,} report call{'s' if self.calls != 1 else ''}."
        )


def plan_stream(
    stream: str,
    derived: Mapping[str, Any],
    segments: Sequence[tuple[str, str | None]],
    batch_size: int,
    resume_from: dt.datetime | None = None,
) -> StreamPlan:
    """The report calls ``stream`` will make: for each window the calls ask for (a values
    timeframe; for the series, ``report_windows``), the batches of the segments that existed by
    its end (``plan_segment_batches``, as ``SegmentBatchRetriever`` asks).

    >>> derived = {"timezone": None, "series_start": "2024-01-01T00:00:00", "series_end": "2025-02-03T23:59:59",
    ...            "series_step": "P59D"}
    >>> plan_stream("segment_series", derived, [(f"S{n}", None) for n in range(250)], 100)
    StreamPlan(stream='segment_series', segments=250, partitions=7, calls=21)
    """
    partitions = stream_partitions(stream, derived, resume_from)
    timezone = derived.get("timezone")
    if stream == "segment_values":
        ends = [partition_end(p) for p in partitions]
    else:
        windows = series_windows(derived, resume_from)
        if windows:
            ends = [end for _, end in report_windows(windows[0][0], windows[-1][1], derived["series_step"], timezone)]
        else:
            ends = []
    calls = sum(len(plan_segment_batches(segments, end, timezone, batch_size)) for end in ends)
    return StreamPlan(stream=stream, segments=len(segments), partitions=len(partitions), calls=calls)


def describe_plan(plans: Sequence[StreamPlan], max_report_requests: int | None = None) -> list[str]:
    """The plan for a person: a line per stream, then the total, the time it takes at Klaviyo's
    steady limit and its share of the daily quota.

    >>> for line in describe_plan([StreamPlan("segment_series", 250, 7, 21)]):
    ...     print(line)
    segment_series: 250 segments, 7 windows, 21 report calls.
    In all: 21 report calls, about 10 minutes at Klaviyo's 2 report calls a minute, 9% of its 225-call daily quota.
    """
    total = sum(plan.calls for plan in plans)
    minutes = max(total - 1, 0) / REPORT_CALLS_PER_MINUTE
    duration = f"about {minutes:.0f} minute{'s' if round(minutes) != 1 else ''}" if minutes >= 1 else "under a minute"
    lines = [plan.describe() for plan in plans]
    lines.append(
        f"In all: {total:,} report call{'s' if total != 1 else ''}, {duration} at Klaviyo's {REPORT_CALLS_PER_MINUTE} "
        f"report calls a minute, {total / DAILY_REPORT_QUOTA:.0%} of its {DAILY_REPORT_QUOTA}-call daily quota."
    )
    if total > DAILY_REPORT_QUOTA:
        lines.append(
            f"That is {math.ceil(total / DAILY_REPORT_QUOTA)} days of quota: set `max_report_requests` to spread it "
            "over several syncs (segment_series resumes from its state)."
        )
    if max_report_requests is not None and total > max_report_requests:
        lines.append(f"`max_report_requests` ({max_report_requests}) stops this sync after {max_report_requests} of them.")
    return lines


@dataclass
class StreamProgress:
    """A report stream's windows, calls and rows so far against its ``StreamPlan``: one line a window.

    >>> progress = StreamProgress(StreamPlan("segment_series", 250, 7, 21))
    >>> window = StreamSlice(partition={}, cursor_slice={"start_time": "2024-01-01T00:00:00", "end_time": "2024-02-28T23:59:59"})
    >>> progress.partition_read(window, calls=3, rows=14750)
    'segment_series: window 1 of 7 (2024-01-01T00:00:00 to 2024-02-29T00:00:00) read: 3 of 21 report calls, 14,750 rows so far.'
    """

    plan: StreamPlan
    partitions: int = 0
    calls: int = 0
    rows: int = 0

    def partition_read(self, partition: StreamSlice, calls: int, rows: int) -> str:
        self.partitions += 1
        self.calls += calls
        self.rows += rows
        start = partition.cursor_slice.get("start_time")
        if start:
            what, span = "window", f"{start} to {format_wall_time(wall_time(partition.cursor_slice['end_time']) + ONE_SECOND)}"
        else:
            what, span = "timeframe", str((partition.partition.get("values_timeframe") or {}).get("timeframe"))
        return (
            f"{self.plan.stream}: {what} {self.partitions} of {self.plan.partitions} ({span}) read: "
            f"{self.calls} of {self.plan.calls} report calls, {self.rows:,} rows so far."
        )
