"""Request validation: the official SDK request models first, then the rules they do not carry.

Every violation raises ApiError(400, "invalid") whose `detail` says exactly what is wrong and whose
`source.pointer` names the offending member, mirroring Klaviyo's JSON:API error objects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Union

from openapi_client.models.segment_series_request_dto import SegmentSeriesRequestDTO
from openapi_client.models.segment_values_request_dto import SegmentValuesRequestDTO
from pydantic import ValidationError

from .data import DATA_START, STATISTICS, TIMEFRAME_KEYS, add_years, resolve_timeframe_key

MAX_FILTER_IDS = 100
SERIES_TYPE = "segment-series-report"
VALUES_TYPE = "segment-values-report"
# Longest allowed span (end - start, wall time) per series interval.
INTERVAL_CAPS: dict[str, tuple[timedelta, str]] = {
    "hourly": (timedelta(days=7), "7 days"),
    "daily": (timedelta(days=60), "60 days"),
    "weekly": (timedelta(weeks=52), "52 weeks"),
    "monthly": (timedelta(weeks=52), "52 weeks"),
}
# Pointer prefix of each SDK model, so a nested model's error lands on the right member.
_MODEL_POINTERS = {
    "SegmentSeriesRequestDTO": "",
    "SegmentValuesRequestDTO": "",
    "SegmentSeriesRequestDTOResourceObject": "/data",
    "SegmentValuesRequestDTOResourceObject": "/data",
    "SegmentSeriesRequestDTOResourceObjectAttributes": "/data/attributes",
    "SegmentValuesRequestDTOResourceObjectAttributes": "/data/attributes",
}


class ApiError(Exception):
    """An error answer: HTTP status plus one JSON:API error object."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        source: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.source = source or {}
        self.headers = headers or {}


def invalid(detail: str, pointer: str | None = None, parameter: str | None = None) -> ApiError:
    """A 400 `invalid` error at a body pointer or a query/header parameter."""
    source = {"pointer": pointer} if pointer is not None else {"parameter": parameter or ""}
    return ApiError(400, "invalid", "Invalid input.", detail, source)


# ---------------------------------------------------------------------------------------------
# Filter strings: cond ("," cond)*, cond = op "(" attr "," value ")",
# value = "str" | 'str' | bare | [v, ...] (Klaviyo's own examples use single quotes too)


@dataclass(frozen=True)
class Literal:
    """One filter value: its text and whether it was a quoted string (double or single quotes)."""

    text: str
    quoted: bool


FilterValue = Union[Literal, list[Literal]]


@dataclass(frozen=True)
class Condition:
    """One parsed filter condition, e.g. any(segment_id,["a","b"])."""

    op: str
    attr: str
    value: FilterValue


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<sstr>\'(?:[^\'\\]|\\.)*\')|(?P<punct>[(),\[\]])'
    r'|(?P<word>[^\s"\'(),\[\]]+))')


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens; raises ValueError on anything unscannable (e.g. an open quote)."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"unexpected character at position {pos}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _FilterParser:
    """Recursive-descent parser over _tokens (the grammar above)."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def _next(self, expected_kind: str, expected_text: str | None = None) -> str:
        if self.pos >= len(self.tokens):
            raise ValueError(f"unexpected end of filter, expected {expected_text or expected_kind}")
        kind, text = self.tokens[self.pos]
        if kind != expected_kind or (expected_text is not None and text != expected_text):
            raise ValueError(f"unexpected {text!r}, expected {expected_text or expected_kind}")
        self.pos += 1
        return text

    def _peek(self, text: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos] == ("punct", text)

    def _literal(self) -> Literal:
        kind = self.tokens[self.pos][0] if self.pos < len(self.tokens) else ""
        if kind == "str":
            return Literal(json.loads(self._next("str")), True)
        if kind == "sstr":
            # 'text': a backslash escapes the next character (\' is a quote).
            return Literal(re.sub(r"\\(.)", r"\1", self._next("sstr")[1:-1]), True)
        return Literal(self._next("word"), False)

    def _value(self) -> FilterValue:
        if not self._peek("["):
            return self._literal()
        self._next("punct", "[")
        items: list[Literal] = []
        while not self._peek("]"):
            if items:
                self._next("punct", ",")
            items.append(self._literal())
        self._next("punct", "]")
        return items

    def _condition(self) -> Condition:
        op = self._next("word")
        self._next("punct", "(")
        attr = self._next("word")
        self._next("punct", ",")
        value = self._value()
        self._next("punct", ")")
        return Condition(op, attr, value)

    def parse(self) -> list[Condition]:
        conditions = [self._condition()]
        while self.pos < len(self.tokens):
            self._next("punct", ",")
            conditions.append(self._condition())
        return conditions


def parse_filter(text: str) -> list[Condition]:
    """Parse a Klaviyo filter string; raises ValueError with a reason when it is malformed."""
    if not text.strip():
        raise ValueError("filter is empty")
    return _FilterParser(text).parse()


def _quoted(value: FilterValue, what: str) -> str:
    """The text of a quoted string value ("X" or 'X'), else ValueError."""
    if not isinstance(value, Literal) or not value.quoted:
        raise ValueError(f"{what} must be a quoted string")
    if not value.text:
        raise ValueError(f"{what} must not be empty")
    return value.text


def report_filter_ids(text: str) -> list[str]:
    """Segment ids selected by a report filter; raises ApiError(400) for anything but exactly one
    equals(segment_id,"X") or any(segment_id,["A",...]) with 1..100 non-empty ids (single quotes,
    'X', are accepted as well)."""
    pointer = "/data/attributes/filter"
    try:
        conditions = parse_filter(text)
    except ValueError as exc:
        raise invalid(f"Invalid filter provided: {text!r}: {exc}.", pointer) from None
    for cond in conditions:
        if cond.attr != "segment_id":
            raise invalid(f"'{cond.attr}' is not a valid filter field. Allowed filters are segment_id.", pointer)
        if cond.op not in ("equals", "any"):
            raise invalid(f"'{cond.op}' is not a valid operator for segment_id. Allowed operators are equals, any.",
                          pointer)
    if len(conditions) > 1:
        raise invalid("Only one filter can be used per attribute: segment_id is filtered more than once.", pointer)
    cond = conditions[0]
    try:
        if cond.op == "equals":
            return [_quoted(cond.value, "the equals(segment_id, ...) value")]
        if not isinstance(cond.value, list):
            raise ValueError('any(segment_id, ...) takes a list like ["A","B"]')
        if not cond.value:
            raise ValueError("any(segment_id, ...) list must not be empty")
        ids = [_quoted(item, "each any(segment_id, ...) item") for item in cond.value]
    except ValueError as exc:
        raise invalid(f"Invalid filter provided: {exc}.", pointer) from None
    if len(ids) > MAX_FILTER_IDS:
        raise invalid(f"Max of {MAX_FILTER_IDS} segment ids per ANY filter; got {len(ids)}.", pointer)
    return ids


# ---------------------------------------------------------------------------------------------
# Report bodies


@dataclass(frozen=True)
class ReportRequest:
    """A validated report request. start/end are naive company-local wall times; `end_inclusive`
    is True for custom timeframes (end treated as inclusive) and False for keys ([start, end))."""

    kind: str  # "series" or "values"
    statistics: tuple[str, ...]
    interval: str | None
    timeframe: dict[str, Any]
    timeframe_key: str | None
    start: datetime
    end: datetime
    end_inclusive: bool
    segment_ids: list[str] | None  # None: no filter, every segment


def _sdk_validate(kind: str, body: Any) -> None:
    """Run the official SDK model's from_dict; any failure becomes a 400."""
    model = SegmentSeriesRequestDTO if kind == "series" else SegmentValuesRequestDTO
    try:
        model.from_dict(body)
    except ValidationError as exc:
        prefix = _MODEL_POINTERS.get(exc.title, "")
        first = exc.errors()[0]
        pointer = prefix + "".join(f"/{part}" for part in first["loc"])
        messages = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        raise invalid(f"Request body does not match {model.__name__}: {messages}", pointer or "/data") from None
    except (TypeError, KeyError, AttributeError) as exc:
        raise invalid(f"Request body does not match {model.__name__}: {exc}", "/data") from None


def _check_type(kind: str, body: Any) -> None:
    """data.type must name this endpoint's report (checked first for a precise detail)."""
    expected = SERIES_TYPE if kind == "series" else VALUES_TYPE
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict) and isinstance(data.get("type"), str) and data["type"] != expected:
        raise invalid(f"Invalid type '{data['type']}' for this endpoint; expected '{expected}'.", "/data/type")


def _check_statistics(statistics: list[str]) -> tuple[str, ...]:
    pointer = "/data/attributes/statistics"
    if not statistics:
        raise invalid(f"statistics must not be empty; choose from {', '.join(STATISTICS)}.", pointer)
    repeated = sorted({s for s in statistics if statistics.count(s) > 1})
    if repeated:
        raise invalid(f"statistics must not repeat: {', '.join(repeated)}.", pointer)
    unknown = [s for s in statistics if s not in STATISTICS]
    if unknown:  # the SDK enum catches these already; kept so this module stands on its own
        raise invalid(f"Unknown statistic(s): {', '.join(unknown)}.", pointer)
    return tuple(statistics)


def _parse_wall(value: Any, name: str, require_offset: bool = True) -> datetime:
    """An ISO 8601 string as a naive wall time; any offset is dropped (company timezone applies).

    With `require_offset`, a value without a UTC offset (RFC 3339 requires one) is refused."""
    pointer = f"/data/attributes/timeframe/{name}"
    if not isinstance(value, str):
        raise invalid(f"timeframe.{name} must be an ISO 8601 datetime string.", pointer)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"timeframe.{name} {value!r} is not a valid ISO 8601 datetime.", pointer) from None
    if require_offset and parsed.tzinfo is None:
        raise invalid(f"timeframe.{name} {value!r} is not a valid RFC 3339 date-time: it has no UTC offset "
                      f"(e.g. {parsed.isoformat()}+00:00 or {parsed.isoformat()}Z).", pointer)
    return parsed.replace(tzinfo=None)


def _check_custom_timeframe(timeframe: dict[str, Any], require_offset: bool = True) -> tuple[datetime, datetime]:
    pointer = "/data/attributes/timeframe"
    start = _parse_wall(timeframe["start"], "start", require_offset)
    end = _parse_wall(timeframe["end"], "end", require_offset)
    if start >= end:
        raise invalid(f"timeframe.start ({start.isoformat()}) must be before timeframe.end ({end.isoformat()}).",
                      pointer)
    if start < DATA_START:
        raise invalid(
            f"Data is unavailable before June 1st, 2023; timeframe.start is {start.isoformat()}. "
            "Please use a time frame after this date.",
            pointer + "/start",
        )
    if end > add_years(start, 1):
        raise invalid(f"The timeframe cannot be longer than 1 year ({start.isoformat()} to {end.isoformat()}).",
                      pointer)
    return start, end


def _check_timeframe(
    timeframe: dict[str, Any], now_wall: datetime, *, require_offset: bool = True, week_start: str = "monday"
) -> tuple[str | None, datetime, datetime]:
    """(key or None, start, end) of a timeframe that is exactly {key} or exactly {start, end}."""
    pointer = "/data/attributes/timeframe"
    members = set(timeframe)
    if "key" in members and members & {"start", "end"}:
        raise invalid("timeframe must have either 'key' or 'start' and 'end', not both.", pointer)
    if members == {"key"}:
        key = timeframe["key"]
        if key not in TIMEFRAME_KEYS:
            raise invalid(f"Invalid timeframe key {key!r}; expected one of {', '.join(TIMEFRAME_KEYS)}.",
                          pointer + "/key")
        start, end = resolve_timeframe_key(key, now_wall, week_start)
        return key, start, end
    if members == {"start", "end"}:
        return (None, *_check_custom_timeframe(timeframe, require_offset))
    missing = sorted({"start", "end"} - members) if members & {"start", "end"} else ["key or start/end"]
    extra = sorted(members - {"key", "start", "end"})
    problem = f"unexpected member(s) {', '.join(extra)}" if extra else f"missing {', '.join(missing)}"
    raise invalid(f"timeframe must be {{'key': ...}} or {{'start': ..., 'end': ...}}: {problem}.", pointer)


def _check_interval_cap(
    interval: str, start: datetime, end: datetime, instant: Callable[[datetime], float] | None, cap_mode: str
) -> None:
    """Refuse end - start longer than the interval's cap: in elapsed time in the company zone
    (cap_mode "elapsed" with `instant`; a window holding a DST fall-back is an hour longer than its
    wall times say) or in wall time (cap_mode "wall", or no `instant`)."""
    cap, label = INTERVAL_CAPS[interval]
    use_elapsed = cap_mode == "elapsed" and instant is not None
    elapsed = timedelta(seconds=instant(end) - instant(start)) if use_elapsed and instant else end - start
    if elapsed > cap:
        raise invalid(
            f"If {interval} is used, the timeframe cannot be longer than {label}; "
            f"requested {start.isoformat()} to {end.isoformat()}.",
            "/data/attributes/timeframe",
        )


def refuse_future_start(report: ReportRequest, start_instant: float, now_instant: float, now_wall: datetime) -> None:
    """future_timeframe="refuse": a custom timeframe whose start (`start_instant`, POSIX time) is after
    now is refused. Keys resolve at now, so they never start after it; a timeframe that starts at or
    before now and ends after it is served up to now, as in the "empty" reading."""
    if report.timeframe_key is None and start_instant > now_instant:
        raise invalid(
            f"The timeframe is in the future: timeframe.start is {report.start.isoformat()}, after the account's "
            f"current time {now_wall.replace(microsecond=0).isoformat()}. Please use a time frame that starts "
            "before now.",
            "/data/attributes/timeframe/start",
        )


def validate_report(
    kind: str,
    raw: bytes,
    now_wall: datetime,
    instant: Callable[[datetime], float] | None = None,
    *,
    require_offset: bool = True,
    cap_mode: str = "elapsed",
    week_start: str = "monday",
) -> ReportRequest:
    """Validate a report body for endpoint `kind` ("series"/"values") at company wall time `now_wall`;
    `instant` turns a company wall time into POSIX time, to measure interval caps in elapsed time
    (cap_mode "elapsed"). `require_offset`, `cap_mode`, `week_start`: see EmulatorConfig.

    Returns the normalized request; raises ApiError(400) naming the first problem found.
    """
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(f"Malformed JSON request body: {exc}.", "/") from None
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object with a 'data' member.", "/")
    _check_type(kind, body)
    _sdk_validate(kind, body)
    attributes: dict[str, Any] = body["data"]["attributes"]
    statistics = _check_statistics(attributes["statistics"])
    timeframe = attributes["timeframe"]
    key, start, end = _check_timeframe(timeframe, now_wall, require_offset=require_offset, week_start=week_start)
    interval: str | None = attributes.get("interval") if kind == "series" else None
    if interval is not None:
        _check_interval_cap(interval, start, end, instant, cap_mode)
    text = attributes.get("filter")
    ids = report_filter_ids(text) if text is not None else None
    return ReportRequest(kind, statistics, interval, timeframe, key, start, end, key is None, ids)
