"""Test-only local emulator of Klaviyo's segment reporting API (pipeline: server.py; data: data.py).

    from klaviyo_emulator import Emulator, EmulatorConfig, RateLimits, Faults
    with Emulator(EmulatorConfig(segments=25, now=datetime(2025, 3, 1, 12))) as emu:
        requests.post(f"{emu.base_url}/api/segment-series-reports/", ...)

Routes: POST /api/segment-series-reports, POST /api/segment-values-reports, GET /api/segments,
GET /api/accounts (one account; attributes.timezone = config.timezone; `fields[account]` sparse
fieldsets as in the spec), each with or without a trailing slash; /__admin/ routes for subprocesses.

Accepted as Klaviyo accepts them: `revision` = a known revision or its pre-release (`2026-07-15.pre`);
report POST bodies as `application/vnd.api+json` or `application/json` (anything else: 415); filter
values double- or single-quoted (`any(segment_id,['A','B'])`, `equals(segment_id,'A')`).

Defaults follow the published material; where Klaviyo's documentation is silent or the emulator has
to pick, EmulatorConfig has a mode for each reading (CLI flag in brackets):

- require_offset=True [--require-offset/--no-require-offset]: a custom timeframe's start/end must be
  an RFC 3339 date-time with an offset (`...-05:00`, `...Z`, `+00:00`), as the spec types them; a naive
  one gets 400 `invalid` at /data/attributes/timeframe/start (or /end). The offset is ignored either
  way: the wall time is read in the company timezone. False: naive values are accepted too.
- cap_mode="elapsed" [--cap-mode]: interval caps (hourly 7 days, daily 60 days, weekly and monthly 52
  weeks) apply to keys and custom timeframes alike and measure end - start in elapsed time in the
  company zone (a window holding a DST fall-back is an hour longer than its wall times). "wall":
  end - start in wall time.
- accounts_scope=True [--accounts-scope/--no-accounts-scope]: False = the main key lacks
  accounts:read: GET /api/accounts answers 403 `permission_denied` (reports and segments still work).
  The no-scope key gets 403 on every route.
- week_start="monday" [--week-start monday|sunday]: first day of weekly buckets (serving path and
  oracle) and of the this_week / last_week keys.
- date_times_in="company" [--date-times-in company|utc]: series date_times carry the company offset
  (`2024-01-05T00:00:00-05:00`); "utc" writes the same instants in UTC (`2024-01-05T05:00:00+00:00`).
  The oracle writes its keys in the form of the current mode; Emulator.bucket_key(s) maps a string in
  any form (any offset) to that form, bucket_key(s, "company") to the company-offset form.
- created_spread=None [--created-spread FIRST LAST]: None = every segment was created 30 to 900 days
  before the data starts (2023-06-01) and the data is the historical one. (first, last) naive
  company-local: segment i of N (sorted ids keep their order) is created at first + (last - first) *
  i / (N - 1) in elapsed time, whole seconds, `created` written with the company offset; `updated`
  follows it. A segment created at or after 2023-06-01 has no members and no changes before its
  creation: hours starting before its creation hour count 0, the hour holding the creation and later
  ones count, total_members grows from 0 (an hour never removes more members than the segment holds).
  Segments created before 2023-06-01 keep the historical data.
- before_creation="zero" [--before-creation zero|null]: a bucket (or a values timeframe) ending at or
  before the creation instant reports 0 for every statistic (total_members 0 too, for segments
  created after the data starts); "null": it reports null for every statistic. A bucket holding the
  creation counts only the hours from the creation hour on, in both modes.
- edges="inclusive" [--edges inclusive|strict|generous]: which series buckets a custom timeframe
  returns, by bucket start wall time t: "inclusive" floor_bucket(start) <= t <= end; "strict"
  start <= t <= end (no rounding down); "generous" floor_bucket(start) <= t <= the first bucket start
  after end (one bucket past the window). Values reports aggregate hours by the same rule with hours
  as buckets: [floor_hour(start), end], [start, end], or [floor_hour(start), floor_hour(end) + 1 hour].
  Timeframe keys resolve to [start, end) (end exclusive) at `now` in every mode; only the start rule
  ("strict": no rounding down to the bucket) applies to them.
- now [--now]: naive company-local wall time the data ends at (None = the real clock). Buckets
  starting after now are absent; the bucket holding now carries its hours so far.
- future_timeframe="empty" [--future-timeframe empty|refuse]: what a custom timeframe whose start
  is after now gets (Klaviyo's documentation is silent). "empty": served like any other, so a series
  report has date_times [] and an empty list per statistic, and a values report counts over the part
  up to now (none: 0 added, removed and net; total_members as at now). "refuse": 400 `invalid` at
  /data/attributes/timeframe/start whose detail says the timeframe is in the future (start and now
  compared as instants in the company zone). A timeframe starting at or before now is served up to
  now in both modes; keys resolve at now and never start after it.

Other choices made where Klaviyo's documentation is silent (the harsher reading where there is one):
- A report without a filter returns every segment of the account.
- Weeks start on week_start; last_N_days = the N whole days before today; last_N_months = the N whole
  months before the current one.
- "No data before 2023-06-01" is enforced for custom timeframes; keys reaching earlier are answered
  (hours before then are 0).
- Series and values calls share one rate-limit quota (RateLimits.shared_report_quota); throttled calls
  consume none. Windows are fixed, aligned to the emulator's start on the injected clock. GET
  /api/segments (75/s, 750/min) and GET /api/accounts (1/s, 15/min) have buckets of their own.
  RateLimits.klaviyo(time_scale, burst_time_scale) divides the steady and daily windows by time_scale
  and the burst window by burst_time_scale (default: time_scale) [--time-scale, --burst-time-scale].
- With limits configured, every answer except a 429 (200s, and 400/503 answers that passed
  admission) carries RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset (steady window); a 429
  carries Retry-After. An unlimited emulator sends none of them.
- UTC offset changes are assumed to be whole hours (all US/EU/AU zones; not Lord Howe).

The truth oracle (Emulator.truth_series / truth_values) groups single hours by wall time and sums
them directly; it shares only the hourly generator with the serving path and follows every mode above
except edges (it takes [start, end) on bucket start times; map a request's window to it yourself).
"""

from .config import EmulatorConfig, Faults
from .ratelimit import RateLimits
from .server import CallRecord, Emulator

__all__ = ["CallRecord", "Emulator", "EmulatorConfig", "Faults", "RateLimits"]
