"""The emulator: an HTTP server on 127.0.0.1 answering like Klaviyo's segment endpoints.

Request pipeline (API routes): drop fault -> slow fault -> route (404/405) -> auth (401/403) ->
revision (400) -> [reports: content type (415)] -> rate limits / daily_exhausted (429) ->
[reports: body validation (400; with future_timeframe="refuse", a start after now too) -> fail
fault (503)] -> answer (-> malformed fault); the refuse_endpoint fault answers 400 right after the
revision check.
Every answer given after admission (200, 400, 503) carries RateLimit-Limit/Remaining/Reset when
limits are configured; a 429 carries Retry-After instead.
Every API request, whatever its outcome, is recorded as a CallRecord (status 0 = dropped).
Admin routes under /__admin/ bypass all of it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import random
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Sequence, Union
from urllib.parse import parse_qsl, urlencode

from .config import EmulatorConfig, Faults, limits_from_json
from .data import STATISTICS, DataStore, Segment, Stats
from .data import resolve_timeframe_key as _resolve_key
from .ratelimit import (
    ACCOUNTS_BUCKET,
    SEGMENTS_BUCKET,
    SERIES_BUCKET,
    VALUES_BUCKET,
    Decision,
    FixedWindowLimiter,
    RateLimits,
)
from .validation import (
    SERIES_TYPE,
    VALUES_TYPE,
    ApiError,
    Condition,
    Literal,
    ReportRequest,
    invalid,
    parse_filter,
    refuse_future_start,
    report_filter_ids,
    validate_report,
)

KNOWN_REVISIONS = frozenset({
    "2024-10-15", "2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15",
    "2026-01-15", "2026-04-15", "2026-07-15", "2026-10-15",
})
PRE_RELEASE_SUFFIX = ".pre"  # "2026-07-15.pre": the pre-release of a known revision
JSON_API = "application/vnd.api+json"
# Report POST bodies may be sent as JSON:API or as plain JSON (Klaviyo's guide's curl uses the latter).
REPORT_CONTENT_TYPES = frozenset({JSON_API, "application/json"})
# path (no trailing slash) -> (method, endpoint name)
ROUTES = {
    "/api/accounts": ("GET", "accounts"),
    "/api/segments": ("GET", "segments"),
    "/api/segment-values-reports": ("POST", "values"),
    "/api/segment-series-reports": ("POST", "series"),
}
SEGMENT_FIELDS = ("name", "definition", "created", "updated", "is_active", "is_processing", "is_starred")
ALLOWED_SEGMENT_FIELDS = frozenset(SEGMENT_FIELDS) | {"id", "definition.condition_groups"}
SEGMENT_SORTS = ("id", "name", "created", "updated")
# fields[account] values allowed by the spec (accounts-2026-07-15.json)
ACCOUNT_FIELDS = frozenset({
    "contact_information", "contact_information.default_sender_email", "contact_information.default_sender_name",
    "contact_information.organization_name", "contact_information.street_address",
    "contact_information.street_address.address1", "contact_information.street_address.address2",
    "contact_information.street_address.city", "contact_information.street_address.country",
    "contact_information.street_address.region", "contact_information.street_address.zip",
    "contact_information.website_url", "id", "industry", "locale", "preferred_currency", "public_api_key",
    "test_account", "timezone",
})


@dataclass
class CallRecord:
    """One API request and its outcome. status 0 means the socket was dropped without an answer.

    segment_ids are the ids named by a report body's filter ([] when absent or unparseable); body is
    the parsed JSON body or None; headers are the raw request headers (Authorization included).
    """

    method: str
    path: str
    query: str
    endpoint: str  # "accounts" | "segments" | "series" | "values" | "unknown"
    status: int
    segment_ids: list[str]
    body: Any
    timeframe: dict[str, Any] | None
    interval: str | None
    headers: dict[str, str]
    at: float


@dataclass
class Request:
    """An HTTP request, decoupled from http.server so the pipeline is easy to reason about."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    """An HTTP answer."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_API


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), headers or {})


def _header(headers: dict[str, str], name: str) -> str | None:
    """Case-insensitive header lookup."""
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _route(path: str) -> tuple[str, str] | None:
    """(method, endpoint) for a path, with or without a trailing slash."""
    return ROUTES.get(path.rstrip("/") or "/")


def _describe_body(raw: bytes) -> tuple[Any, list[str], dict[str, Any] | None, str | None]:
    """Best-effort (parsed body, filter ids, timeframe, interval) for the call log; never raises."""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None, [], None, None
    data = body.get("data") if isinstance(body, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attributes, dict):
        return body, [], None, None
    ids: list[str] = []
    if isinstance(attributes.get("filter"), str):
        try:
            ids = report_filter_ids(attributes["filter"])
        except ApiError:
            ids = []
    timeframe = attributes.get("timeframe") if isinstance(attributes.get("timeframe"), dict) else None
    interval = attributes.get("interval") if isinstance(attributes.get("interval"), str) else None
    return body, ids, timeframe, interval


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    """Offset encoded in a page cursor; ApiError(400) when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "offset" or not number.isdigit():
            raise ValueError
        return int(number)
    except ValueError:
        raise invalid(f"Invalid page cursor {cursor!r}.", parameter="page[cursor]") from None


def _segment_matches(segment: Segment, cond: Condition, tz_instant: Callable[[str], float]) -> bool:
    """Whether `segment` satisfies one GET /api/segments filter condition (ValueError if unsupported)."""
    values = cond.value if isinstance(cond.value, list) else [cond.value]
    texts = [v.text for v in values]
    if cond.attr in ("id", "name") and cond.op in ("equals", "any"):
        if not all(v.quoted for v in values):
            raise ValueError(f"{cond.attr} values must be double-quoted strings")
        return (segment.id if cond.attr == "id" else segment.name) in texts
    if cond.attr == "is_active" and cond.op in ("equals", "any") or cond.attr == "is_starred" and cond.op == "equals":
        if any(t not in ("true", "false") for t in texts):
            raise ValueError(f"{cond.attr} takes true or false")
        return str(getattr(segment, cond.attr)).lower() in texts
    if cond.attr in ("created", "updated") and cond.op == "greater-than" and isinstance(cond.value, Literal):
        return bool(tz_instant(getattr(segment, cond.attr)) > tz_instant(cond.value.text))
    raise ValueError(f"unsupported filter {cond.op}({cond.attr}, ...)")


def _sparse(attributes: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """Only the dotted `paths` of `attributes` (a.b keeps attributes["a"]["b"] under "a")."""
    out: dict[str, Any] = {}
    for path in paths:
        source: Any = attributes
        target = out
        parts = path.split(".")
        for part in parts[:-1]:
            source = source[part]
            target = target.setdefault(part, {})
        target[parts[-1]] = source[parts[-1]]
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections must not make server_close() wait.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # reap idle keep-alive connections
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature is inherited
        """Silence per-request logging; emu.calls is the log."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path, _, query = self.path.partition("?")
        emulator = self.server.emulator
        if path.startswith("/__admin/"):
            response: Response | None = emulator.handle_admin(self.command, path, body)
        else:
            request = Request(self.command, path, query, dict(self.headers.items()), body)
            response = emulator.handle(request)
        if response is None:
            self._drop()
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _drop(self) -> None:
        """Close the socket without writing a single byte (a connection reset for the client)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class Emulator:
    """A local Klaviyo segment-reporting API. Use as a context manager or call start()/stop()."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        cfg = self.config
        self.data = DataStore(cfg.seed, cfg.segments, cfg.timezone, week_start=cfg.week_start,
                              date_times_in=cfg.date_times_in, created_spread=cfg.created_spread,
                              created_times=cfg.created_times,
                              before_creation=cfg.before_creation)
        self._clock = self.config.clock
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []
        self._shuffle_rng = random.Random(f"{self.config.seed}:shuffle")
        self._origin = self._clock()  # daily window origin when no limits are configured
        self._faults = self.config.faults
        self._fault_rng = random.Random(self._faults.seed)
        self._limiter: FixedWindowLimiter | None = None
        self.set_limits(self.config.limits)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is None:
            self._server = _Server((self.config.host, self.config.port), self)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="klaviyo-emulator", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- public state ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def segment_ids(self) -> list[str]:
        """All segment ids, sorted."""
        return [s.id for s in self.data.segments]

    @property
    def calls(self) -> list[CallRecord]:
        """Snapshot of every API request so far, in arrival order."""
        with self._lock:
            return list(self._calls)

    def report_calls(self, status: int | None = 200) -> list[CallRecord]:
        """Report calls (series and values) answered with `status` (None: all of them)."""
        return [c for c in self.calls if c.endpoint in ("series", "values") and (status is None or c.status == status)]

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults; the fault random stream restarts from faults.seed."""
        with self._lock:
            self._faults = faults
            self._fault_rng = random.Random(faults.seed)

    @property
    def limits(self) -> RateLimits | None:
        return self._limiter.limits if self._limiter else None

    def set_limits(self, limits: RateLimits | None) -> None:
        """Replace the limits (None: unlimited); windows restart at the current clock."""
        with self._lock:
            self._limiter = FixedWindowLimiter(limits, self._clock) if limits else None

    # -- time and truth --------------------------------------------------------------------

    def now_instant(self) -> float:
        """POSIX time of 'now': config.now in the company zone, or the real clock."""
        if self.config.now is not None:
            return self.data.time.instant(self.config.now)
        return time.time()

    def now_wall(self) -> datetime:
        """Naive company-local wall time of 'now'."""
        return self.config.now or self.data.time.now_wall(time.time())

    def resolve_timeframe_key(self, key: str) -> tuple[datetime, datetime]:
        """Naive local [start, end) of a timeframe key at now (weeks start on config.week_start)."""
        return _resolve_key(key, self.now_wall(), self.config.week_start)

    def bucket_key(self, date_time: str, form: str | None = None) -> str:
        """The oracle's key for a bucket-start string in either form the series endpoint may write.

        `date_time` is an ISO 8601 string with an offset (company offset, UTC, or any other); the
        result is the same instant written as the oracle writes keys in `form` ("company" or "utc";
        default: config.date_times_in, the form truth_series uses). A naive string is read as
        company-local wall time."""
        parsed = datetime.fromisoformat(date_time)
        instant = parsed.timestamp() if parsed.tzinfo else self.data.time.instant(parsed)
        if (form or self.config.date_times_in) == "utc":
            return datetime.fromtimestamp(instant, timezone.utc).isoformat()
        return datetime.fromtimestamp(instant, self.data.time.tz).isoformat()

    def truth_series(
        self,
        interval: str,
        start: datetime,
        end: datetime,
        segment_ids: Sequence[str] | None = None,
        statistics: Sequence[str] | None = None,
    ) -> dict[tuple[str, str], dict[str, int | None]]:
        """{(segment_id, date_time): stats} for buckets with start <= bucket start wall time < end.

        Independent of config.edges (map a request's window to [start, end) yourself). Follows
        week_start (bucket boundaries), date_times_in (date_time is written in the form the series
        endpoint writes; bucket_key() maps any form to it) and before_creation/created_spread
        (statistics are None for buckets ending at or before creation in "null" mode)."""
        return self.data.truth_series(interval, start, end, segment_ids, statistics or STATISTICS, self.now_instant())

    def truth_values(
        self,
        timeframe: Union[str, tuple[datetime, datetime]],
        segment_ids: Sequence[str] | None = None,
        statistics: Sequence[str] | None = None,
    ) -> dict[str, dict[str, int | None]]:
        """{segment_id: stats} over hours with start <= hour start wall time < end (key: its range,
        following week_start). None statistics: before_creation="null" and the last such hour ends at
        or before the segment's creation."""
        start, end = self.resolve_timeframe_key(timeframe) if isinstance(timeframe, str) else timeframe
        return self.data.truth_values(start, end, segment_ids, statistics or STATISTICS, self.now_instant())

    # -- request pipeline ------------------------------------------------------------------

    def _draw(self, rate: float) -> bool:
        """One seeded Bernoulli draw (no draw, hence no stream advance, when rate is 0)."""
        if rate <= 0:
            return False
        with self._lock:
            return self._fault_rng.random() < rate

    def handle(self, request: Request) -> Response | None:
        """Answer one API request (None: drop the connection) and record it."""
        faults = self._faults
        route = _route(request.path)
        endpoint = route[1] if route else "unknown"
        response: Response | None
        if self._draw(faults.drop_rate):
            response = None
        else:
            if faults.slow_seconds:
                time.sleep(faults.slow_seconds)
            try:
                response = self._dispatch(request, route, faults)
            except ApiError as err:
                response = self._error(err, request, faults)
        self._record(request, endpoint, response.status if response else 0)
        return response

    def _record(self, request: Request, endpoint: str, status: int) -> None:
        body, ids, timeframe, interval = _describe_body(request.body)
        record = CallRecord(request.method, request.path, request.query, endpoint, status, ids, body,
                            timeframe, interval, dict(request.headers), self._clock())
        with self._lock:
            self._calls.append(record)

    def _error(self, err: ApiError, request: Request, faults: Faults) -> Response:
        """JSON:API error document for `err` (echoing request headers when that fault is on)."""
        detail, meta = err.detail, {}
        if faults.echo_request_in_errors:
            meta = {"request_headers": dict(request.headers)}
            detail = f"{detail} Request headers: {json.dumps(request.headers)}"
        error = {"id": str(uuid.uuid4()), "status": err.status, "code": err.code, "title": err.title,
                 "detail": detail, "source": err.source, "meta": meta}
        return _json_response(err.status, {"errors": [error]}, err.headers)

    def _dispatch(self, request: Request, route: tuple[str, str] | None, faults: Faults) -> Response:
        if route is None:
            raise ApiError(404, "not_found", "Not found.", f"No endpoint matches {request.method} {request.path}.")
        method, endpoint = route
        if request.method != method:
            raise ApiError(405, "method_not_allowed", "Method not allowed.",
                           f'Method "{request.method}" not allowed on {request.path}.')
        self._authenticate(request.headers, endpoint)
        self._check_revision(request.headers)
        if faults.refuse_endpoint == endpoint:
            raise invalid(f"Refused by the emulator's refuse_endpoint fault ({endpoint}).")
        if endpoint in ("segments", "accounts"):
            bucket = SEGMENTS_BUCKET if endpoint == "segments" else ACCOUNTS_BUCKET
            decision = self._admit(bucket, faults, report=False)
            with self._rate_headers_on_error(decision):
                answer = self._list_segments(request) if endpoint == "segments" else self._accounts(request)
            return self._with_rate_headers(answer, decision)
        self._check_content_type(request.headers)
        bucket = SERIES_BUCKET if endpoint == "series" else VALUES_BUCKET
        decision = self._admit(bucket, faults, report=True)
        with self._rate_headers_on_error(decision):
            cfg = self.config
            report = validate_report(endpoint, request.body, self.now_wall(), self.data.time.instant,
                                     require_offset=cfg.require_offset, cap_mode=cfg.cap_mode,
                                     week_start=cfg.week_start)
            if cfg.future_timeframe == "refuse":
                # Instants, not wall times: around a fall-back the wall clock repeats an hour.
                refuse_future_start(report, self.data.time.instant(report.start), self.now_instant(), self.now_wall())
            if self._draw(faults.fail_rate):
                raise ApiError(503, "service_unavailable", "Service unavailable.",
                               "MetricServiceRetryableError: the reporting service is temporarily unavailable. "
                               "Please retry the request.")
        response = self._series(report) if endpoint == "series" else self._values(report)
        return self._with_rate_headers(self._corrupt(response, report, faults.malformed), decision)

    @contextlib.contextmanager
    def _rate_headers_on_error(self, decision: Decision | None) -> Iterator[None]:
        """An ApiError raised after admission carries the RateLimit-* headers too."""
        try:
            yield
        except ApiError as err:
            err.headers.update(self._rate_headers(decision))
            raise

    def _authenticate(self, headers: dict[str, str], endpoint: str) -> None:
        value = _header(headers, "Authorization")
        if value is None:
            raise ApiError(401, "not_authenticated", "Authentication credentials were not provided.",
                           "Missing Authorization header; send 'Authorization: Klaviyo-API-Key <private key>'.")
        scheme, _, key = value.partition(" ")
        if scheme == "Klaviyo-API-Key" and key == self.config.api_key:
            if endpoint == "accounts" and not self.config.accounts_scope:
                raise ApiError(403, "permission_denied", "You do not have permission to perform this action.",
                               "This API key is missing required scopes: accounts:read.")
            return
        if scheme == "Klaviyo-API-Key" and key == self.config.no_scope_api_key:
            scope = "accounts:read" if endpoint == "accounts" else "segments:read"
            raise ApiError(403, "permission_denied", "You do not have permission to perform this action.",
                           f"This API key is missing required scopes: {scope}.")
        raise ApiError(401, "not_authenticated", "Incorrect authentication credentials.",
                       "The Authorization header does not carry a valid private API key.")

    @staticmethod
    def _check_revision(headers: dict[str, str]) -> None:
        revision = _header(headers, "revision")
        if revision is None:
            raise invalid("Missing required header 'revision'.", parameter="revision")
        if revision.removesuffix(PRE_RELEASE_SUFFIX) not in KNOWN_REVISIONS:
            raise invalid(f"Invalid revision {revision!r}; supported revisions: {', '.join(sorted(KNOWN_REVISIONS))}.",
                          parameter="revision")

    @staticmethod
    def _check_content_type(headers: dict[str, str]) -> None:
        content_type = _header(headers, "Content-Type") or ""
        if content_type.split(";")[0].strip().lower() not in REPORT_CONTENT_TYPES:
            raise ApiError(415, "unsupported_media_type", "Unsupported media type.",
                           f'Unsupported media type "{content_type}" in request; use {JSON_API}.')

    def _daily_reset_seconds(self) -> float:
        if self._limiter is not None:
            return self._limiter.seconds_until_daily_reset()
        elapsed = (self._clock() - self._origin) % 86400.0
        return 86400.0 - elapsed

    def _admit(self, bucket: str, faults: Faults, *, report: bool) -> Decision | None:
        """Apply daily_exhausted and rate limits; raises the 429, else returns the decision (None: unlimited)."""
        if report and faults.daily_exhausted:
            self._throttle(max(1, math.ceil(self._daily_reset_seconds())))
        limiter = self._limiter
        if limiter is None:
            return None
        decision = limiter.check(limiter.limits.report_bucket(bucket) if report else bucket)
        if not decision.allowed:
            self._throttle(decision.retry_after)
        return decision

    @staticmethod
    def _throttle(seconds: int) -> None:
        unit = "second" if seconds == 1 else "seconds"
        raise ApiError(429, "throttled", "Request was throttled.",
                       f"Request was throttled. Expected available in {seconds} {unit}.",
                       headers={"Retry-After": str(seconds)})

    @staticmethod
    def _rate_headers(decision: Decision | None) -> dict[str, str]:
        """RateLimit-* headers of an admitted call (none when the emulator is unlimited)."""
        if decision is None:
            return {}
        return {"RateLimit-Limit": str(decision.limit), "RateLimit-Remaining": str(decision.remaining),
                "RateLimit-Reset": str(decision.reset)}

    def _with_rate_headers(self, response: Response, decision: Decision | None) -> Response:
        response.headers.update(self._rate_headers(decision))
        return response

    # -- reports ---------------------------------------------------------------------------

    def _shuffled(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Results in a seeded random order: the API does not specify one."""
        with self._lock:
            self._shuffle_rng.shuffle(items)
        return items

    def _series(self, report: ReportRequest) -> dict[str, Any]:
        assert report.interval is not None
        date_times, results = self.data.series_report(
            report.segment_ids, report.interval, report.start, report.end, inclusive=report.end_inclusive,
            statistics=report.statistics, now_instant=self.now_instant(), edges=self.config.edges)
        items = [{"groupings": {"segment_id": sid}, "statistics": stats} for sid, stats in results.items()]
        attributes = {"results": self._shuffled(items), "date_times": date_times}
        return {"data": {"type": SERIES_TYPE, "id": str(uuid.uuid4()), "attributes": attributes},
                "links": {"self": f"{self.base_url}/api/segment-series-reports/"}}

    def _values(self, report: ReportRequest) -> dict[str, Any]:
        results: dict[str, Stats] = self.data.values_report(
            report.segment_ids, report.start, report.end, inclusive=report.end_inclusive,
            statistics=report.statistics, now_instant=self.now_instant(), edges=self.config.edges)
        items = [{"groupings": {"segment_id": sid}, "statistics": stats} for sid, stats in results.items()]
        return {"data": {"type": VALUES_TYPE, "id": str(uuid.uuid4()), "attributes": {"results": self._shuffled(items)}},
                "links": {"self": f"{self.base_url}/api/segment-values-reports/"}}

    @staticmethod
    def _corrupt(document: dict[str, Any], report: ReportRequest, malformed: str | None) -> Response:
        """Serialize a report document, damaged as the `malformed` fault asks."""
        attributes = document["data"]["attributes"]
        if malformed == "not_json":
            return Response(200, b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        if malformed == "missing_statistic":
            for item in attributes["results"]:
                item["statistics"].pop(report.statistics[0], None)
        elif malformed == "short_date_times" and "date_times" in attributes:
            attributes["date_times"] = attributes["date_times"][:-1]
        elif malformed == "wrong_type":
            for item in attributes["results"]:
                item["statistics"] = {name: "n/a" for name in item["statistics"]}
        return _json_response(200, document)

    # -- GET /api/accounts -----------------------------------------------------------------

    def account_id(self) -> str:
        """The account's id (Klaviyo uses the 6-character public API key)."""
        return "".join(random.Random(f"{self.config.seed}:account").choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
                       for _ in range(6))

    def _account_attributes(self) -> dict[str, Any]:
        return {
            "test_account": False,
            "contact_information": {
                "default_sender_name": "Emulated Store", "default_sender_email": "hello@emulated-store.example",
                "website_url": "https://emulated-store.example", "organization_name": "Emulated Store",
                "street_address": {"address1": "125 Summer Street", "address2": None, "city": "Boston",
                                   "region": "MA", "country": "US", "zip": "02110"},
            },
            "industry": "Retail",
            "timezone": self.config.timezone,
            "preferred_currency": "USD",
            "public_api_key": self.account_id(),
            "locale": "en-US",
        }

    def _accounts(self, request: Request) -> Response:
        """GET /api/accounts: the one account of the key, sparse fieldsets per fields[account]."""
        params = dict(parse_qsl(request.query, keep_blank_values=True))
        attributes = self._account_attributes()
        if "fields[account]" in params:
            wanted = [f for f in params["fields[account]"].split(",") if f]
            unknown = sorted(set(wanted) - ACCOUNT_FIELDS)
            if unknown or not wanted:
                raise invalid(f"Invalid fields[account] value(s): {', '.join(unknown) or '(empty)'}.",
                              parameter="fields[account]")
            attributes = _sparse(attributes, [f for f in wanted if f != "id"])
        account_id = self.account_id()
        resource = {"type": "account", "id": account_id, "attributes": attributes,
                    "links": {"self": f"{self.base_url}/api/accounts/{account_id}/"}}
        self_link = f"{self.base_url}{request.path}" + (f"?{request.query}" if request.query else "")
        return _json_response(200, {"data": [resource], "links": {"self": self_link}})

    # -- GET /api/segments -----------------------------------------------------------------

    def _segment_resource(self, segment: Segment, fields: set[str] | None) -> dict[str, Any]:
        values: dict[str, Any] = {
            "name": segment.name, "definition": segment.definition, "created": segment.created,
            "updated": segment.updated, "is_active": segment.is_active,
            "is_processing": segment.is_processing, "is_starred": segment.is_starred,
        }
        wanted = SEGMENT_FIELDS if fields is None else [
            f for f in SEGMENT_FIELDS if f in fields or (f == "definition" and "definition.condition_groups" in fields)]
        return {"type": "segment", "id": segment.id, "attributes": {f: values[f] for f in wanted},
                "links": {"self": f"{self.base_url}/api/segments/{segment.id}/"}}

    def _select_segments(self, params: dict[str, str]) -> list[Segment]:
        """Segments passing `filter`, ordered by `sort` (default id)."""
        segments = list(self.data.segments)
        if "filter" in params:
            try:
                conditions = parse_filter(params["filter"])
                segments = [s for s in segments
                            if all(_segment_matches(s, c, self._iso_instant) for c in conditions)]
            except ValueError as exc:
                raise invalid(f"Invalid filter provided: {params['filter']!r}: {exc}.", parameter="filter") from None
        sort = params.get("sort", "id")
        if sort.lstrip("-") not in SEGMENT_SORTS:
            raise invalid(f"Invalid sort {sort!r}; use one of {', '.join(SEGMENT_SORTS)} (optionally '-').",
                          parameter="sort")
        field_name = sort.lstrip("-")
        key = (lambda s: self._iso_instant(getattr(s, field_name))) if field_name in ("created", "updated") \
            else (lambda s: getattr(s, field_name))
        return sorted(segments, key=key, reverse=sort.startswith("-"))

    def _iso_instant(self, text: str) -> float:
        """POSIX time of an ISO datetime; naive values are company-local."""
        parsed = datetime.fromisoformat(text)
        return parsed.timestamp() if parsed.tzinfo else self.data.time.instant(parsed)

    def _page_size(self, params: dict[str, str]) -> int:
        if "page[size]" not in params:
            return self.config.page_size
        maximum = max(10, self.config.page_size)
        text = params["page[size]"]
        if not text.isdigit() or not 1 <= int(text) <= maximum:
            raise invalid(f"page[size] must be an integer between 1 and {maximum}; got {text!r}.",
                          parameter="page[size]")
        return int(text)

    def _list_segments(self, request: Request) -> Response:
        pairs = parse_qsl(request.query, keep_blank_values=True)
        params = dict(pairs)
        fields: set[str] | None = None
        if "fields[segment]" in params:
            fields = {f for f in params["fields[segment]"].split(",") if f}
            unknown = sorted(fields - ALLOWED_SEGMENT_FIELDS)
            if unknown:
                raise invalid(f"Invalid fields[segment] value(s): {', '.join(unknown)}.", parameter="fields[segment]")
        selected = self._select_segments(params)
        size = self._page_size(params)
        offset = _decode_cursor(params["page[cursor]"]) if "page[cursor]" in params else 0
        page = selected[offset:offset + size]
        others = [(k, v) for k, v in pairs if k != "page[cursor]"]

        base_url = self._faults.next_link_base or self.base_url

        def link(at: int) -> str:
            query = urlencode(others + ([("page[cursor]", _encode_cursor(at))] if at else []))
            return f"{base_url}/api/segments/" + (f"?{query}" if query else "")

        links = {
            "self": f"{self.base_url}{request.path}" + (f"?{request.query}" if request.query else ""),
            "next": link(offset + size) if offset + size < len(selected) else None,
            "prev": link(max(0, offset - size)) if offset > 0 else None,
        }
        return _json_response(200, {"data": [self._segment_resource(s, fields) for s in page], "links": links})

    # -- admin -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts per endpoint and status plus a digest of every report call."""
        counts: dict[str, dict[str, int]] = {}
        reports = []
        for call in self.calls:
            route = f"{call.method} {call.path.rstrip('/') or '/'}"
            per_status = counts.setdefault(route, {})
            per_status[str(call.status)] = per_status.get(str(call.status), 0) + 1
            if call.endpoint in ("series", "values"):
                reports.append({"endpoint": call.endpoint, "status": call.status, "segment_ids": len(call.segment_ids),
                                "timeframe": call.timeframe, "interval": call.interval, "at": call.at})
        return {"counts": counts, "report_calls": reports, "total_calls": sum(sum(c.values()) for c in counts.values()),
                "faults": asdict(self._faults), "limits": asdict(self.limits) if self.limits else None}

    def handle_admin(self, method: str, path: str, raw: bytes) -> Response:
        """Unauthenticated control routes for subprocess use."""
        route = (method, path.rstrip("/"))
        try:
            body = json.loads(raw) if raw.strip() else None
            if route == ("GET", "/__admin/stats"):
                return _json_response(200, self.stats(), {})
            if route == ("POST", "/__admin/faults"):
                self.set_faults(Faults.from_json(body or {}))
                return _json_response(200, {"faults": asdict(self._faults)})
            if route == ("POST", "/__admin/limits"):
                self.set_limits(limits_from_json(body))
                return _json_response(200, {"limits": asdict(self.limits) if self.limits else None})
            if route == ("POST", "/__admin/reset"):
                self.reset_calls()
                self.set_limits(self.limits)
                return _json_response(200, {"reset": True})
        except (ValueError, TypeError) as exc:
            return _json_response(400, {"error": str(exc)})
        return _json_response(404, {"error": f"no admin route {method} {path}"})
