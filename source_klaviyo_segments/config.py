"""Config defaults, the checks a JSON schema cannot express, and the settings derived from them.

``prepare_config`` is the one place that turns what a user typed into what the manifest reads:
defaults filled in, ``start_date`` raised to Klaviyo's first day of data, and the series window
bounds computed under ``config["_derived"]``. ``config_problem`` says, in one sentence, why a
config cannot be used.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import pkgutil
import re
import uuid
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

import jsonschema
import yaml

from .constants import (
    CUSTOM_TIMEFRAME,
    DEFAULT_BASE_URL,
    DEFAULT_INTERVAL,
    DEFAULT_LOOKBACK_WINDOW_DAYS,
    DEFAULT_VALUES_TIMEFRAME,
    FIRST_DATA_DAY,
    INTERVALS,
    STATISTICS,
    TIMEFRAME_KEYS,
)
from .windows import (
    ONE_SECOND,
    company_now,
    first_series_bucket,
    format_wall_time,
    lookback_duration,
    plan_values_timeframes,
    series_window_step,
    wall_time,
    zone,
)

logger = logging.getLogger("airbyte")

DERIVED = "_derived"
# Set while `check` runs: retries back off in a fraction of a second instead of seconds.
FAST_RETRIES = "_fast_retries"


def _utc_now() -> dt.datetime:
    return company_now(None)


@functools.cache
def _spec() -> dict[str, Any]:
    """The connection specification in ``manifest.yaml``: the one statement of the config's shape."""
    manifest = yaml.safe_load(pkgutil.get_data(__package__, "manifest.yaml") or b"")
    return dict(manifest["spec"]["connection_specification"])


def _spec_pattern(field: str) -> re.Pattern[str]:
    """The ``pattern`` the spec gives ``field``: the one statement of the date format."""
    return re.compile(_spec()["properties"][field]["pattern"])


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


def _type_problem(config: Mapping[str, Any]) -> str | None:
    """A field of the wrong JSON type (a text where a list belongs, a list where a number does),
    found by validating against the spec, as one sentence naming the field. Other schema errors
    are left to the checks below, whose sentences say more."""
    validator = jsonschema.Draft7Validator(_spec())
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator != "type" or not error.absolute_path:
            continue
        field = str(error.absolute_path[0])
        if field in _FIELD_SHAPES:
            return f"`{field}` must be {_FIELD_SHAPES[field]}."
    return None


def _parse_date(config: Mapping[str, Any], field: str) -> dt.datetime | None:
    value = config.get(field)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"`{field}` must be a date such as 2024-01-31 or a date-time such as 2024-01-31T00:00:00Z.")
    try:
        # Python parses more forms (20240131) than the spec admits; refuse what the spec refuses.
        if not _spec_pattern(field).search(value):
            raise ValueError(value)
        return wall_time(value)
    except ValueError:
        raise ValueError(
            f"`{field}` is {value!r}, which is not a date such as 2024-01-31 or a date-time such as 2024-01-31T00:00:00Z."
        ) from None


def config_problem(config: Mapping[str, Any], now: Callable[[], dt.datetime] = _utc_now) -> str | None:
    """One sentence saying why ``config`` cannot be used, or ``None`` when it can.

    >>> config_problem({"api_key": "pk_x", "segment_ids": "RpKvCF"})
    '`segment_ids` must be a list of segment ids, such as ["RpKvCF"].'
    """
    problem = _type_problem(config)
    if problem:
        return problem
    try:
        _resolve_range(config, now)
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


def _resolve_range(config: Mapping[str, Any], now: Callable[[], dt.datetime]) -> tuple[dt.datetime, dt.datetime]:
    """The wall-time range to report on: ``start_date`` raised to Klaviyo's first day of data,
    ``end_date`` (exclusive) lowered to now, since a report call on the future spends quota on nothing."""
    start = _parse_date(config, "start_date") or FIRST_DATA_DAY
    start = max(start, FIRST_DATA_DAY)
    configured_end = _parse_date(config, "end_date")
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
    config: Mapping[str, Any], now: Callable[[], dt.datetime] | None = None, timezone: str | None = None
) -> dict[str, Any]:
    """``config`` with defaults filled in and ``_derived`` settings added for the manifest.

    ``timezone`` is the account's (``GET /api/accounts``), or ``None`` when the key may not read
    it: it sets "now" (the company's), the offsets timeframes are sent with, and whether windows
    may take Klaviyo's full caps. A config that ``config_problem`` refuses is returned with
    defaults only: the refusal is reported by ``check`` and ``read``, not raised while the source
    is being built.
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
    if config_problem(prepared, now):
        return prepared
    for field in ("lookback_window_days", "max_report_requests"):
        if prepared.get(field) is not None:
            prepared[field] = _whole_number(prepared[field])
    start, end = _resolve_range(prepared, now)
    requested_start = _parse_date(prepared, "start_date")
    if requested_start and requested_start < FIRST_DATA_DAY:
        logger.warning(
            "start_date %s is before %s, the first day Klaviyo has segment data for; starting there instead.",
            format_wall_time(requested_start),
            f"{FIRST_DATA_DAY:%Y-%m-%d}",
        )
    interval = prepared["interval"]
    first = first_series_bucket(start, interval)
    prepared[DERIVED] = {
        "timezone": timezone,
        "series_start": format_wall_time(first),
        # The cursor's end is the last second read: [start, end) in config terms.
        "series_end": format_wall_time(end - ONE_SECOND),
        "series_step": series_window_step(interval, first, end, timezone),
        "series_lookback": lookback_duration(interval, prepared["lookback_window_days"]),
        # Names this sync's report-call allowance (components.ReportCallAllowance.for_sync).
        "sync_id": uuid.uuid4().hex,
        "values_timeframes": [
            t.as_partition() for t in plan_values_timeframes(prepared["values_timeframe"], start, end, timezone)
        ],
    }
    return prepared
